//! Audit log (API §15 and the tamper-evidence extension): every mutation in the table is
//! recorded with its actor, resource and detail; reads and the listed exceptions are not;
//! filters and the summary; attribution through `X-Koor-Instance(-Token)`; the hash
//! chain catches an edited or removed row; entries of acknowledged mutations survive
//! `kill -9`.

use reqwest::{Method, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, assert_error, assert_json};

/// Entries for `action` (newest first).
async fn entries(app: &TestApp, action: &str) -> Vec<Value> {
    app.get_json(&format!("/api/audit?action={action}&limit=500"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// The newest entry for `action` on `resource`, checked against the expected actor and
/// detail.
async fn one(app: &TestApp, action: &str, resource: &str, actor: &str, detail: Value) {
    let found = entries(app, action).await;
    let e = found
        .iter()
        .find(|e| e["resource"] == resource)
        .unwrap_or_else(|| panic!("no {action} entry for {resource}: {found:?}"));
    assert_eq!(e["actor"], actor, "{action}");
    assert_eq!(e["outcome"], "success", "{action}");
    let stored: Value = serde_json::from_str(e["detail"].as_str().unwrap()).unwrap();
    assert_eq!(stored, detail, "{action}");
    assert!(e["timestamp"].as_str().unwrap().ends_with('Z'), "{e}");
}

async fn total(app: &TestApp) -> i64 {
    app.get_json("/api/audit/summary").await["total_entries"]
        .as_i64()
        .unwrap()
}

async fn send(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut req = app.request(method, path);
    if let Some(body) = body {
        req = req.json(&body);
    }
    assert_json(req.send().await.unwrap(), StatusCode::OK).await
}

#[actix_web::test]
async fn every_action_in_the_table_is_recorded_as_documented() {
    let app = TestApp::spawn().await;
    app.put_state("cfg/a", b"{\"v\":1}").await;
    app.put_state("cfg/a", b"{\"v\":2}").await;
    one(&app, "state.put", "cfg/a", "", json!({"version": 2})).await;
    send(&app, Method::POST, "/api/state/cfg/a?rollback=1", None).await;
    one(
        &app,
        "state.rollback",
        "cfg/a",
        "",
        json!({"from_version": 1, "new_version": 3}),
    )
    .await;
    send(&app, Method::DELETE, "/api/state/cfg/a", None).await;
    one(&app, "state.delete", "cfg/a", "", json!({})).await;

    let resp = app
        .request(Method::PUT, "/api/specs/web/api")
        .body("{\"openapi\":\"3\"}")
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
    one(&app, "spec.put", "web/api", "", json!({"version": 1})).await;
    send(&app, Method::DELETE, "/api/specs/web/api", None).await;
    one(&app, "spec.delete", "web/api", "", json!({})).await;

    let reg = app.register("builder", json!({"workspace": "/w"})).await;
    let id = reg["id"].as_str().unwrap();
    one(
        &app,
        "instance.register",
        id,
        "builder",
        json!({"workspace": "/w"}),
    )
    .await;
    send(
        &app,
        Method::POST,
        &format!("/api/instances/{id}/activate"),
        None,
    )
    .await;
    one(&app, "instance.activate", id, "", json!({})).await;
    send(
        &app,
        Method::POST,
        &format!("/api/instances/{id}/capabilities"),
        Some(json!({"capabilities": ["rust", "sql"]})),
    )
    .await;
    one(
        &app,
        "instance.capabilities",
        id,
        "",
        json!({"capabilities": ["rust", "sql"]}),
    )
    .await;
    send(&app, Method::DELETE, &format!("/api/instances/{id}"), None).await;
    one(&app, "instance.deregister", id, "", json!({})).await;

    for rule_id in ["r1", "r2"] {
        let body =
            json!({"project": "web", "rule_id": rule_id, "pattern": "x", "proposed_by": "agent-x"});
        send(&app, Method::POST, "/api/rules/propose", Some(body)).await;
    }
    one(&app, "rule.propose", "web/r1", "agent-x", json!({})).await;
    send(&app, Method::POST, "/api/rules/web/r1/accept", None).await;
    send(&app, Method::POST, "/api/rules/web/r2/reject", None).await;
    one(&app, "rule.accept", "web/r1", "", json!({})).await;
    one(&app, "rule.reject", "web/r2", "", json!({})).await;
    let import = json!([{"project": "api", "rule_id": "i1", "pattern": "a"},
                        {"project": "api", "rule_id": "i2", "pattern": "b"}]);
    send(&app, Method::POST, "/api/rules/import", Some(import)).await;
    one(&app, "rules.import", "bulk", "", json!({"count": 2})).await;

    let hook = json!({"id": "h1", "url": "http://127.0.0.1:9/hook", "patterns": ["none.*"]});
    send(&app, Method::POST, "/api/webhooks", Some(hook)).await;
    one(
        &app,
        "webhook.create",
        "h1",
        "",
        json!({"url": "http://127.0.0.1:9/hook"}),
    )
    .await;
    send(&app, Method::DELETE, "/api/webhooks/h1", None).await;
    one(&app, "webhook.delete", "h1", "", json!({})).await;

    let template = json!({"id": "t1", "name": "T", "kind": "rules",
                          "data": [{"rule_id": "t", "pattern": "p"}]});
    send(&app, Method::POST, "/api/templates", Some(template)).await;
    one(&app, "template.create", "t1", "", json!({"kind": "rules"})).await;
    send(
        &app,
        Method::POST,
        "/api/templates/t1/apply",
        Some(json!({"project": "web"})),
    )
    .await;
    one(
        &app,
        "template.apply",
        "t1",
        "",
        json!({"project": "web", "kind": "rules"}),
    )
    .await;
    send(&app, Method::DELETE, "/api/templates/t1", None).await;
    one(&app, "template.delete", "t1", "", json!({})).await;

    let report = app.get_json("/api/audit/verify").await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["entries"].as_i64().unwrap(), total(&app).await);
}

#[actix_web::test]
async fn reads_and_the_listed_exceptions_are_not_recorded() {
    let app = TestApp::spawn().await;
    let id = app.active_instance("quiet").await;
    app.put_state("k", b"1").await;
    let before = total(&app).await;

    app.get_json("/api/state").await;
    app.get("/api/state/k").await;
    app.get_json("/api/instances").await;
    app.get_json("/api/audit").await;
    app.publish("build.done", json!({"ok": true})).await;
    send(
        &app,
        Method::POST,
        &format!("/api/instances/{id}/heartbeat"),
        None,
    )
    .await;
    send(
        &app,
        Method::PUT,
        "/api/validate/web/rules",
        Some(json!([{"rule_id": "r", "pattern": "x"}])),
    )
    .await;
    send(
        &app,
        Method::POST,
        "/api/validate/web",
        Some(json!({"filename": "a.js", "content": "x"})),
    )
    .await;
    send(&app, Method::POST, "/api/metrics/reset", None).await;
    send(&app, Method::POST, "/api/liveness/check", None).await;
    // A refused mutation is not a successful one.
    let refused = app
        .request(Method::DELETE, "/api/state/missing")
        .send()
        .await
        .unwrap();
    assert_error(refused, StatusCode::NOT_FOUND).await;

    assert_eq!(total(&app).await, before);
}

#[actix_web::test]
async fn filters_limit_order_and_summary() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.put_state(&format!("f/{i}"), b"1").await;
    }
    app.register("filtered", Value::Null).await;

    let all = app.get_json("/api/audit").await;
    let ids: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![6, 5, 4, 3, 2, 1], "dense ids, newest first");

    let limited = app.get_json("/api/audit?action=state.put&limit=2").await;
    let resources: Vec<&str> = limited
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].as_str().unwrap())
        .collect();
    assert_eq!(resources, ["f/4", "f/3"]);

    let by_actor = app.get_json("/api/audit?actor=filtered").await;
    assert_eq!(by_actor.as_array().unwrap().len(), 1);
    assert_eq!(by_actor[0]["action"], "instance.register");
    assert_eq!(app.get_json("/api/audit?actor=nobody").await, json!([]));
    assert_eq!(app.get_json("/api/audit?action=no.such").await, json!([]));

    let future = app.get_json("/api/audit?from=2999-01-01T00:00:00Z").await;
    assert_eq!(future, json!([]));
    let past = app.get_json("/api/audit?to=2000-01-01T00:00:00Z").await;
    assert_eq!(past, json!([]));
    let now_window = app
        .get_json("/api/audit?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z&limit=100")
        .await;
    assert_eq!(now_window.as_array().unwrap().len(), 6);
    let bad = app.get("/api/audit?from=yesterday").await;
    assert_error(bad, StatusCode::BAD_REQUEST).await;

    let summary = app.get_json("/api/audit/summary").await;
    assert_eq!(
        summary,
        json!({"total_entries": 6,
               "action_counts": {"instance.register": 1, "state.put": 5},
               "outcome_counts": {"success": 6},
               "unique_actors": 2,
               "unique_resources": 6})
    );
    let empty = app
        .get_json("/api/audit/summary?from=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(
        empty,
        json!({"total_entries": 0, "action_counts": {}, "outcome_counts": {},
               "unique_actors": 0, "unique_resources": 0})
    );
    let wrong = app
        .request(Method::POST, "/api/audit")
        .send()
        .await
        .unwrap();
    assert_error(wrong, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[actix_web::test]
async fn a_request_naming_a_registered_agent_is_attributed_to_it() {
    let app = TestApp::spawn().await;
    let reg = app.register("claude-1", Value::Null).await;
    let id = reg["id"].as_str().unwrap().to_string();
    let token = reg["token"].as_str().unwrap().to_string();

    let by_token = app
        .request(Method::PUT, "/api/state/who/token")
        .header("X-Koor-Instance-Token", &token)
        .body("1")
        .send()
        .await
        .unwrap();
    assert_json(by_token, StatusCode::OK).await;
    one(
        &app,
        "state.put",
        "who/token",
        "claude-1",
        json!({"version": 1, "instance_id": id}),
    )
    .await;

    let by_id = app
        .request(Method::PUT, "/api/state/who/id")
        .header("X-Koor-Instance", &id)
        .body("1")
        .send()
        .await
        .unwrap();
    assert_json(by_id, StatusCode::OK).await;
    one(
        &app,
        "state.put",
        "who/id",
        "claude-1",
        json!({"version": 1, "instance_id": id}),
    )
    .await;

    // A wrong token names nobody, even next to a valid id.
    let forged = app
        .request(Method::PUT, "/api/state/who/forged")
        .header("X-Koor-Instance-Token", "not-a-token")
        .header("X-Koor-Instance", &id)
        .body("1")
        .send()
        .await
        .unwrap();
    assert_json(forged, StatusCode::OK).await;
    one(&app, "state.put", "who/forged", "", json!({"version": 1})).await;

    // The same attribution credits the agent's REST calls (counted off the request path).
    let mut calls = 0;
    for _ in 0..50 {
        let rows = app.get_json(&format!("/api/metrics/agents/{id}")).await;
        calls = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["metric_name"] == "rest_calls")
            .map(|r| r["metric_value"].as_i64().unwrap())
            .sum();
        if calls >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        calls, 2,
        "one call by token, one by id; the forged one is not credited"
    );
}

async fn open_db(app: &TestApp) -> sea_orm::DatabaseConnection {
    app.open_db().await
}

/// Drops one of the append-only triggers (PostgreSQL names the table too).
async fn drop_trigger(db: &sea_orm::DatabaseConnection, name: &str) {
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => format!("DROP TRIGGER {name} ON audit_log"),
        _ => format!("DROP TRIGGER {name}"),
    };
    exec(db, &sql).await.unwrap();
}

async fn exec(db: &sea_orm::DatabaseConnection, sql: &str) -> Result<(), sea_orm::DbErr> {
    db.execute_unprepared(sql).await.map(|_| ())
}

#[actix_web::test]
async fn an_edited_row_breaks_the_chain_and_verify_names_it() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.put_state(&format!("t/{i}"), b"1").await;
    }
    assert_eq!(
        app.get_json("/api/audit/verify").await,
        json!({"ok": true, "entries": 5})
    );

    let db = open_db(&app).await;
    // The database itself refuses edits and deletions…
    let update = exec(&db, "UPDATE audit_log SET actor = 'mallory' WHERE id = 3").await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = exec(&db, "DELETE FROM audit_log WHERE id = 3").await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));

    // …and someone who removes that guard is caught by the chain.
    drop_trigger(&db, "audit_log_no_update").await;
    exec(&db, "UPDATE audit_log SET actor = 'mallory' WHERE id = 3")
        .await
        .unwrap();
    let report = app.get_json("/api/audit/verify").await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["broken_id"], 3, "{report}");
    assert_eq!(report["entries"], 2, "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("hash"),
        "{report}"
    );
}

#[actix_web::test]
async fn a_removed_row_and_a_cut_tail_break_the_chain() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.put_state(&format!("d/{i}"), b"1").await;
    }
    let db = open_db(&app).await;
    drop_trigger(&db, "audit_log_no_delete").await;

    exec(&db, "DELETE FROM audit_log WHERE id = 5")
        .await
        .unwrap();
    let cut = app.get_json("/api/audit/verify").await;
    assert_eq!(cut["ok"], false, "{cut}");
    assert_eq!(cut["broken_id"], 5, "{cut}");

    exec(&db, "DELETE FROM audit_log WHERE id = 2")
        .await
        .unwrap();
    let gap = app.get_json("/api/audit/verify").await;
    assert_eq!(gap["ok"], false, "{gap}");
    assert_eq!(gap["broken_id"], 3, "{gap}");
    assert!(gap["reason"].as_str().unwrap().contains("missing"), "{gap}");
}

#[actix_web::test]
async fn concurrent_mutations_get_dense_ids_and_one_intact_chain() {
    let app = TestApp::spawn().await;
    let writes = (0..200).map(|i| {
        let app = &app;
        async move { app.put_state(&format!("c/{}", i % 20), b"{}").await }
    });
    futures_util::future::join_all(writes).await;
    let listed = app.get_json("/api/audit?limit=1000").await;
    let mut ids: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    ids.reverse();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>());
    assert_eq!(
        app.get_json("/api/audit/verify").await,
        json!({"ok": true, "entries": 200})
    );
}

#[actix_web::test]
async fn audit_entries_of_acknowledged_mutations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let writes = (0..150).map(|i| {
        let client = client.clone();
        let url = server.url(&format!("/api/state/kill/{i}"));
        async move {
            let resp = client.put(url).body("{}").send().await.unwrap();
            assert_eq!(resp.status(), 200);
            format!("kill/{i}")
        }
    });
    let acked = futures_util::future::join_all(writes).await;
    server.child.start_kill().unwrap(); // SIGKILL, no shutdown
    server.child.wait().await.unwrap();

    let server = ServerProcess::start(dir.path(), &[]).await;
    let listed: Value = client
        .get(server.url("/api/audit?action=state.put&limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recorded: std::collections::HashSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].as_str().unwrap())
        .collect();
    for key in &acked {
        assert!(recorded.contains(key.as_str()), "no audit entry for {key}");
    }
    let report: Value = client
        .get(server.url("/api/audit/verify"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report, json!({"ok": true, "entries": 150}));
}
