//! What instances say about themselves (parent, labels, build, endpoints, health,
//! progress), the topology graph over REST, and the MCP resources.

use reqwest::{Method, StatusCode};
use rmcp::model::{ReadResourceRequestParams, ResourceContents};
use serde_json::{Map, Value, json};

use crate::helpers::{TestApp, assert_error, assert_json};

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn heartbeat(app: &TestApp, id: &str, body: Value, status: StatusCode) -> Value {
    app.post(
        &format!("/api/instances/{id}/heartbeat"),
        Some(body),
        status,
    )
    .await
}

async fn health_events(app: &TestApp) -> Vec<Value> {
    app.get_json("/api/events/history?topic=agent.health")
        .await
        .as_array()
        .unwrap()
        .clone()
}

#[actix_web::test]
async fn registration_and_heartbeats_carry_what_an_agent_says_about_itself() {
    let app = TestApp::spawn().await;
    let parent = id_of(&app.register("lead", Value::Null).await);
    let child = app
        .register(
            "worker",
            json!({
                "parent_id": parent,
                "labels": {"team": "core", "role": "tests"},
                "build": {"commit": "abc123", "branch": "main", "version": "1.2.0"},
                "endpoints": {"health": "http://127.0.0.1:8080/health"},
                "health": {"status": "failing"},
            }),
        )
        .await;
    assert_eq!(child["parent_id"], json!(parent));
    assert_eq!(child["labels"], json!({"role": "tests", "team": "core"}));
    assert_eq!(child["build"]["commit"], "abc123");
    assert_eq!(
        child["health"],
        Value::Null,
        "health comes with heartbeats only"
    );
    let id = id_of(&child);

    let fresh = app.get_json(&format!("/api/instances/{parent}")).await;
    for field in ["parent_id", "build", "health", "progress"] {
        assert_eq!(fresh[field], Value::Null, "{field}");
    }
    assert_eq!(fresh["labels"], json!({}));

    // Health and progress come with heartbeats; a change of health is announced once.
    let beat = json!({
        "health": {"status": "degraded", "components": {"db": "failing", "cache": "ok"}},
        "progress": {"phase": "tests", "done": 3, "total": 10},
    });
    let ack = heartbeat(&app, &id, beat.clone(), StatusCode::OK).await;
    assert_eq!(ack, json!({"id": id, "status": "ok"}));
    heartbeat(&app, &id, beat, StatusCode::OK).await;
    let got = app.get_json(&format!("/api/instances/{id}")).await;
    assert_eq!(got["health"]["status"], "degraded");
    assert_eq!(got["health"]["components"]["db"], "failing");
    assert_eq!(
        got["progress"],
        json!({"phase": "tests", "done": 3, "total": 10})
    );
    assert_eq!(got["labels"]["team"], "core", "absent fields are kept");
    let events = health_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["instance_id"], json!(id));
    assert_eq!(events[0]["data"]["health"]["status"], "degraded");

    heartbeat(
        &app,
        &id,
        json!({"health": {"status": "ok"}}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(health_events(&app).await.len(), 2);
    // A body-less heartbeat changes nothing but last_seen.
    app.post(
        &format!("/api/instances/{id}/heartbeat"),
        None,
        StatusCode::OK,
    )
    .await;
    let got = app.get_json(&format!("/api/instances/{id}")).await;
    assert_eq!(got["health"]["status"], "ok");
    assert_eq!(got["progress"]["done"], 3);
    // Null clears.
    heartbeat(
        &app,
        &id,
        json!({"labels": null, "progress": null}),
        StatusCode::OK,
    )
    .await;
    let got = app.get_json(&format!("/api/instances/{id}")).await;
    assert_eq!(
        (got["labels"].clone(), got["progress"].clone()),
        (json!({}), Value::Null)
    );
    // The list shows the same objects.
    let listed = app.get_json("/api/instances?name=worker").await;
    assert_eq!(listed[0]["build"]["version"], "1.2.0");
}

#[actix_web::test]
async fn bad_profiles_are_400s_that_change_nothing() {
    let app = TestApp::spawn().await;
    let a = id_of(&app.register("a", Value::Null).await);
    let b = id_of(&app.register("b", json!({"parent_id": a})).await);
    let many: Map<String, Value> = (0..33).map(|n| (format!("k{n}"), json!("v"))).collect();
    let endpoints: Map<String, Value> = (0..17)
        .map(|n| (format!("e{n}"), json!("http://127.0.0.1/")))
        .collect();
    for (body, says) in [
        (json!({"parent_id": "no-such-instance"}), "parent_id"),
        (
            json!({"labels": ["team", "core"]}),
            "labels must be an object",
        ),
        (json!({"labels": "team=core"}), "labels must be an object"),
        (
            json!({"labels": {"team": 1}}),
            "labels.team must be a string",
        ),
        (json!({"labels": many}), "more than 32"),
        (json!({"labels": {"k": "v".repeat(513)}}), "longer than 512"),
        (json!({"endpoints": endpoints}), "more than 16"),
        (
            json!({"endpoints": {"health": "localhost:80"}}),
            "endpoints.health",
        ),
        (json!({"build": "abc"}), "build must be an object"),
    ] {
        let mut full = json!({"name": "x"});
        full.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let resp = app
            .request(Method::POST, "/api/instances/register")
            .json(&full)
            .send()
            .await
            .unwrap();
        let err = assert_error(resp, StatusCode::BAD_REQUEST).await;
        assert!(
            err["error"].as_str().unwrap().contains(says),
            "{body}: {err}"
        );
        let err = heartbeat(&app, &b, body.clone(), StatusCode::BAD_REQUEST).await;
        assert!(
            err["error"].as_str().unwrap().contains(says),
            "{body}: {err}"
        );
    }
    for body in [
        json!({"health": {"status": "fine"}}),
        json!({"health": {"status": "ok", "components": ["db"]}}),
        json!({"progress": {"done": 4, "total": 3}}),
        json!({"progress": "half"}),
        // A parent chain never loops.
        json!({"parent_id": b}),
    ] {
        heartbeat(&app, &b, body.clone(), StatusCode::BAD_REQUEST).await;
    }
    let a_now = heartbeat(&app, &a, json!({"parent_id": b}), StatusCode::BAD_REQUEST).await;
    assert!(
        a_now["error"].as_str().unwrap().contains("cycle"),
        "{a_now}"
    );
    // Bad input is a 400 before an unknown id is a 404; a good body to an unknown id is a 404.
    heartbeat(&app, "nope", json!({"labels": []}), StatusCode::BAD_REQUEST).await;
    heartbeat(&app, "nope", json!({"labels": {}}), StatusCode::NOT_FOUND).await;
    // Only instances a and b exist, unchanged.
    assert_eq!(
        app.get_json("/api/instances")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let b_now = app.get_json(&format!("/api/instances/{b}")).await;
    assert_eq!(b_now["parent_id"], json!(a));
    assert_eq!(b_now["labels"], json!({}));
    assert_eq!(b_now["health"], Value::Null);
    // A heartbeat body is empty or a JSON object.
    for body in ["not json", "[]", "7"] {
        let resp = app
            .request(Method::POST, &format!("/api/instances/{b}/heartbeat"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    let resp = app
        .request(Method::POST, &format!("/api/instances/{b}/heartbeat"))
        .body(" \n")
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
}

/// Publishes `topic` as the agent `id`.
async fn publish_as(app: &TestApp, id: &str, topic: &str) {
    let resp = app
        .request(Method::POST, "/api/events/publish")
        .header("X-Koor-Instance", id)
        .json(&json!({"topic": topic, "data": {}}))
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
}

#[actix_web::test]
async fn the_topology_shows_a_parent_chain_and_who_consumes_whose_events() {
    let app = TestApp::spawn().await;
    let lead = id_of(&app.register("lead", Value::Null).await);
    let planner = id_of(&app.register("planner", json!({"parent_id": lead})).await);
    let tester = id_of(&app.register("tester", json!({"parent_id": planner})).await);
    heartbeat(
        &app,
        &tester,
        json!({"health": {"status": "failing"}}),
        StatusCode::OK,
    )
    .await;

    // The tester subscribes to api.* over the WebSocket, as itself.
    let url = format!(
        "ws://127.0.0.1:{}/api/events/subscribe?pattern=api.*",
        app.port
    );
    let (resp, _socket) = awc::Client::new()
        .ws(url)
        .header("X-Koor-Instance", tester.as_str())
        .connect()
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    // The planner publishes on a topic the tester consumes, and on one nobody does.
    publish_as(&app, &planner, "api.change").await;
    publish_as(&app, &planner, "api.change").await;
    publish_as(&app, &planner, "deploy.done").await;
    // An anonymous publish is no interaction.
    app.publish("api.change", json!({})).await;

    let g = app.get_json("/api/topology").await;
    let nodes = g["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let node = |id: &str| nodes.iter().find(|n| n["id"] == json!(id)).unwrap().clone();
    assert_eq!(node(&tester)["health"], "failing");
    assert_eq!(node(&tester)["status"], "pending");
    assert_eq!(node(&planner)["parent_id"], json!(lead));
    let mut parents: Vec<Value> = g["edges"].as_array().unwrap()[..2].to_vec();
    parents.sort_by_key(|e| e["to"] != json!(planner));
    assert_eq!(
        parents,
        [
            json!({"from": lead, "to": planner, "kind": "parent", "via": "parent_id", "count": 1}),
            json!({"from": planner, "to": tester, "kind": "parent", "via": "parent_id", "count": 1}),
        ]
    );
    assert_eq!(
        g["edges"].as_array().unwrap()[2..],
        [json!({"from": planner, "to": tester, "kind": "events",
                "via": "topic api.change → subscription api.*", "count": 2})]
    );
    assert_eq!(g["truncated"], false);

    let dot = app.get("/api/topology?format=dot").await;
    assert_eq!(dot.status(), StatusCode::OK);
    assert!(
        dot.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/vnd.graphviz")
    );
    let text = dot.text().await.unwrap();
    assert!(text.starts_with("digraph koor {"), "{text}");
    assert!(
        text.contains(&format!("\"{lead}\" -> \"{planner}\" [style=solid];")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"{planner}\" -> \"{tester}\" [style=dashed")),
        "{text}"
    );
    assert!(
        text.contains("color=red"),
        "a failing node stands out: {text}"
    );

    assert_error(
        app.get("/api/topology?format=xml").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let resp = app
        .request(Method::POST, "/api/topology")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET");

    // A deregistered parent leaves no dangling edge.
    app.request(Method::DELETE, &format!("/api/instances/{lead}"))
        .send()
        .await
        .unwrap();
    let g = app.get_json("/api/topology").await;
    assert_eq!(g["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(g["edges"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn the_topology_links_task_creators_to_completers_and_lock_waiters_to_holders() {
    let app = TestApp::spawn().await;
    let boss = app.active_instance("boss").await;
    let worker = app.active_instance("worker").await;
    let resp = app
        .request(Method::POST, "/api/tasks")
        .header("X-Koor-Instance", boss.as_str())
        .json(&json!({"queue": "builds", "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
    let claimed = app
        .post(
            "/api/tasks/claim",
            Some(json!({"holder": worker, "queue": "builds"})),
            StatusCode::OK,
        )
        .await;
    let task = &claimed["task"];
    app.post(
        &format!("/api/tasks/{}/complete", task["id"].as_str().unwrap()),
        Some(json!({"token": task["lease"]["token"]})),
        StatusCode::OK,
    )
    .await;
    app.post(
        "/api/locks",
        Some(json!({"resource": "src/**", "holder": worker})),
        StatusCode::OK,
    )
    .await;
    let resp = app
        .request(Method::POST, "/api/locks")
        .json(&json!({"resource": "src/main.rs", "holder": boss}))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::CONFLICT).await;

    let g = app.get_json("/api/topology").await;
    let edges: Vec<(String, String, String, String)> = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap().to_string();
            let who = |id: String| {
                if id == boss {
                    "boss".into()
                } else {
                    "worker".to_string()
                }
            };
            (who(f("from")), who(f("to")), f("kind"), f("via"))
        })
        .collect();
    assert_eq!(
        edges,
        [
            (
                "boss".into(),
                "worker".into(),
                "locks".into(),
                "resource src/main.rs".into()
            ),
            (
                "boss".into(),
                "worker".into(),
                "tasks".into(),
                "queue builds".into()
            ),
        ]
    );
}

mod mcp {
    use super::*;
    use rmcp::ServiceExt;
    use rmcp::service::{RoleClient, RunningService};
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    type Client = RunningService<RoleClient, ()>;

    /// The byte size of `koor://instances` with the ten agents below.
    const INSTANCES_AT_10: usize = 751;

    async fn connect(app: &TestApp) -> Client {
        let config = StreamableHttpClientTransportConfig::with_uri(app.url("/mcp"));
        let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
        ().serve(transport)
            .await
            .expect("the MCP handshake succeeds")
    }

    async fn read(client: &Client, uri: &str) -> (String, Option<String>) {
        let result = client
            .read_resource(ReadResourceRequestParams::new(uri))
            .await
            .unwrap_or_else(|e| panic!("{uri}: {e}"));
        assert_eq!(result.contents.len(), 1);
        match &result.contents[0] {
            ResourceContents::TextResourceContents {
                uri: got,
                mime_type,
                text,
                ..
            } => {
                assert_eq!(got, uri);
                (text.clone(), mime_type.clone())
            }
            other => panic!("{uri}: not text: {other:?}"),
        }
    }

    #[actix_web::test]
    async fn resources_are_listed_read_and_bounded() {
        let app = TestApp::spawn().await;
        let mut ids = Vec::new();
        for n in 0..10 {
            let reg = app
                .register(
                    &format!("agent-{n}"),
                    json!({"intent": format!("working on task {n}")}),
                )
                .await;
            ids.push(id_of(&reg));
        }
        app.publish("api.change", json!({"big": "x".repeat(2000)}))
            .await;
        let client = connect(&app).await;

        let caps = serde_json::to_value(&client.peer_info().unwrap().capabilities).unwrap();
        assert_eq!(
            caps["resources"],
            json!({"subscribe": false, "listChanged": false})
        );
        let listed = client.list_all_resources().await.unwrap();
        let uris: Vec<&str> = listed.iter().map(|r| r.uri.as_str()).collect();
        assert_eq!(
            uris,
            [
                "koor://instances",
                "koor://topology",
                "koor://events/recent"
            ]
        );
        let templates = client.list_all_resource_templates().await.unwrap();
        assert_eq!(templates.len(), 1);
        assert_eq!(templates[0].uri_template, "koor://instances/{id}");

        let (roster, mime) = read(&client, "koor://instances").await;
        assert_eq!(mime.as_deref(), Some("text/plain"));
        let lines: Vec<&str> = roster.lines().collect();
        assert_eq!(lines.len(), 11, "{roster}");
        assert_eq!(lines[0], "# 10 instances: id, name, status, intent");
        for id in &ids {
            assert!(roster.contains(&format!("{id}\tagent-")), "{roster}");
        }
        assert!(
            roster.contains("\tpending\tworking on task 7\n"),
            "{roster}"
        );
        assert_eq!(roster.len(), INSTANCES_AT_10, "{roster}");

        let (one, mime) = read(&client, &format!("koor://instances/{}", ids[3])).await;
        assert_eq!(mime.as_deref(), Some("application/json"));
        let one: Value = serde_json::from_str(&one).unwrap();
        assert_eq!(one["name"], "agent-3");
        assert!(one.get("token").is_none());

        let (topology, _) = read(&client, "koor://topology").await;
        assert!(topology.starts_with("# 10 nodes"), "{topology}");
        assert_eq!(
            topology.lines().filter(|l| l.starts_with("node\t")).count(),
            10
        );

        let (recent, _) = read(&client, "koor://events/recent").await;
        let first: Value = serde_json::from_str(recent.lines().nth(1).unwrap()).unwrap();
        assert_eq!(first["topic"], "api.change");
        assert!(
            first["data"].as_str().unwrap().contains("bytes"),
            "large data is summarised"
        );
        assert!(recent.len() < 32 * 1024);

        for missing in ["koor://instances/nope", "koor://nothing"] {
            let err = client
                .read_resource(ReadResourceRequestParams::new(missing))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("no resource"), "{missing}: {err}");
        }
        client.cancel().await.unwrap();
    }
}

#[actix_web::test]
async fn the_cli_registers_with_a_parent_beats_with_health_and_prints_the_topology() {
    let app = TestApp::spawn().await;
    let cwd = app.dir.path();
    let address = app.address.clone();
    let address = address.as_str();
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = crate::cli::koor(address, cwd, &args, None).await;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (
            out.status.success(),
            text,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let lead = id_of(&app.register("lead", Value::Null).await);
    let (ok, out, err) = run(args(&[
        "register",
        "child",
        "--parent",
        &lead,
        "--label",
        "team=core",
        "--build-commit",
        "abc",
        "--endpoint",
        "health=http://127.0.0.1:8080/health",
    ]))
    .await;
    assert!(ok, "{err}");
    let child: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(child["parent_id"], json!(lead));
    assert_eq!(child["labels"], json!({"team": "core"}));
    assert_eq!(child["build"]["commit"], "abc");
    let id = id_of(&child);

    let (ok, _, err) = run(args(&[
        "heartbeat",
        &id,
        "--health",
        "degraded",
        "--component",
        "db=failing",
        "--phase",
        "tests",
        "--done",
        "2",
        "--total",
        "5",
    ]))
    .await;
    assert!(ok, "{err}");
    let got = app.get_json(&format!("/api/instances/{id}")).await;
    assert_eq!(got["health"]["components"]["db"], "failing");
    assert_eq!(
        got["progress"],
        json!({"phase": "tests", "done": 2, "total": 5})
    );

    let (ok, _, err) = run(args(&["heartbeat", &id, "--label", "no-equals-sign"])).await;
    assert!(!ok && err.contains("KEY=VALUE"), "{err}");
    let (ok, _, err) = run(args(&["heartbeat", &id, "--health", "fine"])).await;
    assert!(!ok && err.contains("health.status"), "{err}");

    let (ok, out, _) = run(args(&["topology"])).await;
    assert!(ok);
    let g: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(g["edges"][0]["kind"], "parent");
    let (ok, out, _) = run(args(&["topology", "--dot"])).await;
    assert!(ok);
    assert!(out.contains(&format!("\"{lead}\" -> \"{id}\"")), "{out}");
}
