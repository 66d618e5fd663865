//! The instance registry over HTTP (API §7): every endpoint, transition and error.

use koor::instances::Identify;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect()
}

fn is_uuid_v4(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 4)
        && s == s.to_lowercase()
        && s.len() == 36
}

async fn status_of(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("/api/instances/{id}")).await["status"].clone()
}

#[actix_web::test]
async fn register_returns_a_pending_instance_and_its_token_exactly_once() {
    let app = TestApp::spawn().await;
    let reg = app
        .register(
            "alpha",
            json!({"workspace": "/w", "intent": "dark mode", "stack": "rust",
                   "capabilities": ["review"]}),
        )
        .await;
    let id = reg["id"].as_str().unwrap();
    let token = reg["token"].as_str().unwrap();
    assert!(is_uuid_v4(id) && is_uuid_v4(token) && id != token, "{reg}");
    assert_eq!(reg["status"], "pending");
    assert_eq!(reg["capabilities"], json!(["review"]));
    assert_eq!(reg["registered_at"], reg["last_seen"]);
    assert!(reg["registered_at"].as_str().unwrap().ends_with('Z'));

    let got = app.get_json(&format!("/api/instances/{id}")).await;
    let mut expected = reg.clone();
    expected.as_object_mut().unwrap().remove("token");
    assert_eq!(got, expected);
    let listed = app.get_json("/api/instances").await;
    assert_eq!(listed, json!([expected]));
    assert!(!listed.to_string().contains(token));

    // Only a digest of the token is stored.
    app.stop().await;
    if let Some(url) = &app.database_url {
        use sea_orm::ConnectionTrait;
        let db = app.open_db().await;
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT string_agg(i::text, ' ') FROM instances i",
            ))
            .await
            .unwrap()
            .unwrap();
        let text: String = row.try_get_by_index(0).unwrap();
        assert!(
            !text.contains(token),
            "{} holds the plain token",
            koor::db::redact(url)
        );
    }
    for file in ["data.db", "data.db-wal"] {
        let path = app.dir.path().join(file);
        if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(token), "{file} holds the plain token");
        }
    }
}

#[actix_web::test]
async fn register_defaults_optional_fields_and_allows_duplicate_names() {
    let app = TestApp::spawn().await;
    let a = app.register("same", Value::Null).await;
    let b = app.register("same", json!({"capabilities": null})).await;
    for r in [&a, &b] {
        assert_eq!(
            (
                &r["workspace"],
                &r["intent"],
                &r["stack"],
                &r["capabilities"]
            ),
            (&json!(""), &json!(""), &json!(""), &json!([]))
        );
    }
    assert_ne!(a["id"], b["id"]);
    assert_ne!(a["token"], b["token"]);
}

#[actix_web::test]
async fn invalid_registrations_are_400_and_store_nothing() {
    let app = TestApp::spawn().await;
    let bodies: [&[u8]; 8] = [
        b"",
        b"not json",
        b"[]",
        br#"{"workspace": "w"}"#,
        br#"{"name": ""}"#,
        br#"{"name": "   "}"#,
        br#"{"name": 7}"#,
        br#"{"name": "a", "capabilities": "review"}"#,
    ];
    for body in bodies {
        let resp = app
            .request(Method::POST, "/api/instances/register")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(app.get_json("/api/instances").await, json!([]));
}

#[actix_web::test]
async fn list_filters_are_exact_and_combine_and_newest_contact_comes_first() {
    let app = TestApp::spawn().await;
    let a = app
        .register("a", json!({"workspace": "w1", "stack": "go"}))
        .await;
    let b = app
        .register("b", json!({"workspace": "w1", "stack": "rust"}))
        .await;
    let c = app.register("a", json!({"workspace": "w2"})).await;
    let (a, b, c) = (
        a["id"].as_str().unwrap(),
        b["id"].as_str().unwrap(),
        c["id"].as_str().unwrap(),
    );
    app.post(
        &format!("/api/instances/{b}/capabilities"),
        Some(json!({"capabilities": ["code-review", "testing"]})),
        StatusCode::OK,
    )
    .await;

    let list = |q: &'static str| {
        let app = &app;
        async move { app.get_json(&format!("/api/instances{q}")).await }
    };
    assert_eq!(ids(&list("?name=a").await).len(), 2);
    assert_eq!(ids(&list("?name=a&workspace=w1").await), [a]);
    assert_eq!(ids(&list("?workspace=w1&stack=rust").await), [b]);
    assert_eq!(ids(&list("?capability=testing").await), [b]);
    assert_eq!(list("?capability=test").await, json!([]));
    assert_eq!(list("?name=A").await, json!([]));
    assert_eq!(ids(&list("?unknown=1").await).len(), 3);

    // A heartbeat moves `a` to the front (last_seen newest first).
    app.post(
        &format!("/api/instances/{a}/heartbeat"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&list("").await), [a, b, c]);
}

#[actix_web::test]
async fn status_transitions_follow_the_table() {
    let app = TestApp::spawn().await;
    let reg = app.register("t", Value::Null).await;
    let id = reg["id"].as_str().unwrap();

    let hb = app
        .post(
            &format!("/api/instances/{id}/heartbeat"),
            Some(json!({"ignored": true})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(hb, json!({"id": id, "status": "ok"}));
    assert_eq!(
        status_of(&app, id).await,
        "pending",
        "a heartbeat keeps pending"
    );

    for _ in 0..2 {
        let act = app
            .post(
                &format!("/api/instances/{id}/activate"),
                None,
                StatusCode::OK,
            )
            .await;
        assert_eq!(act, json!({"id": id, "status": "active"}));
    }
    assert_eq!(status_of(&app, id).await, "active");
    let after = app.get_json(&format!("/api/instances/{id}")).await;
    assert!(after["last_seen"].as_str() > reg["last_seen"].as_str());
    assert_eq!(after["registered_at"], reg["registered_at"]);
}

#[actix_web::test]
async fn capabilities_are_replaced_cleared_and_validated_before_lookup() {
    let app = TestApp::spawn().await;
    let id = app.register("c", Value::Null).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/instances/{id}/capabilities");
    let set = app
        .post(
            &path,
            Some(json!({"capabilities": ["a", "b"]})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(set, json!({"id": id, "capabilities": ["a", "b"]}));
    app.post(&path, Some(json!({"capabilities": ["c"]})), StatusCode::OK)
        .await;
    assert_eq!(
        app.get_json(&format!("/api/instances/{id}")).await["capabilities"],
        json!(["c"])
    );
    for cleared in [json!({"capabilities": null}), json!({})] {
        let body = app.post(&path, Some(cleared), StatusCode::OK).await;
        assert_eq!(body["capabilities"], json!([]));
    }
    for bad in [
        json!({"capabilities": "a"}),
        json!([1]),
        json!({"capabilities": [1]}),
    ] {
        app.post(&path, Some(bad), StatusCode::BAD_REQUEST).await;
    }
    // Body checks come before the lookup: a bad body for an unknown id is still 400.
    app.post(
        "/api/instances/nope/capabilities",
        Some(json!({"capabilities": 3})),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[actix_web::test]
async fn unknown_ids_are_404_everywhere_and_delete_is_not_repeatable() {
    let app = TestApp::spawn().await;
    let id = app.register("d", Value::Null).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted = app
        .request(Method::DELETE, &format!("/api/instances/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        crate::helpers::assert_json(deleted, StatusCode::OK).await,
        json!({"deleted": id})
    );
    for (method, suffix, body) in [
        (Method::GET, "", None),
        (Method::DELETE, "", None),
        (Method::POST, "/heartbeat", None),
        (Method::POST, "/activate", None),
        (
            Method::POST,
            "/capabilities",
            Some(json!({"capabilities": []})),
        ),
    ] {
        let mut req = app.request(method.clone(), &format!("/api/instances/{id}{suffix}"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        assert_error(req.send().await.unwrap(), StatusCode::NOT_FOUND).await;
    }
    assert_eq!(app.get_json("/api/instances").await, json!([]));
}

#[actix_web::test]
async fn stale_is_a_fixed_route_and_wrong_methods_are_405() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get_json("/api/instances/stale").await, json!([]));
    for (method, path, allow) in [
        (Method::PUT, "/api/instances/x", "GET, DELETE"),
        (Method::GET, "/api/instances/register", "POST"),
        (Method::GET, "/api/instances/x/heartbeat", "POST"),
        (Method::POST, "/api/instances", "GET"),
        (Method::GET, "/api/liveness/check", "POST"),
    ] {
        let resp = app.request(method, path).send().await.unwrap();
        assert_eq!(resp.headers()["allow"], allow, "{path}");
        assert_error(resp, StatusCode::METHOD_NOT_ALLOWED).await;
    }
}

#[actix_web::test]
async fn instances_survive_a_restart_and_are_found_by_token() {
    let app = TestApp::spawn().await;
    let reg = app
        .register("keep", json!({"capabilities": ["x"], "workspace": "w"}))
        .await;
    let id = reg["id"].as_str().unwrap().to_string();
    let token = reg["token"].as_str().unwrap().to_string();
    app.post(
        &format!("/api/instances/{id}/activate"),
        None,
        StatusCode::OK,
    )
    .await;
    let before = app.get_json(&format!("/api/instances/{id}")).await;
    app.stop().await;

    let dir = app.dir.path().to_path_buf();
    let again = TestApp::spawn_with(move |c| c.data_dir = dir).await;
    assert_eq!(
        again.get_json(&format!("/api/instances/{id}")).await,
        before
    );
    let found = again
        .domains
        .instances
        .send(Identify {
            id: None,
            token: Some(token),
        })
        .await
        .unwrap();
    assert_eq!(found.map(|a| a.id).as_deref(), Some(id.as_str()));
    let wrong = again
        .domains
        .instances
        .send(Identify {
            id: None,
            token: Some(id.clone()),
        })
        .await
        .unwrap();
    assert_eq!(wrong, None, "the id is not the token");
}

#[actix_web::test]
async fn the_lifecycle_is_announced_on_the_event_stream() {
    let app = TestApp::spawn().await;
    let reg = app
        .register("gamma", json!({"workspace": "/g", "stack": "go"}))
        .await;
    let id = reg["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/api/instances/{id}/heartbeat"),
        None,
        StatusCode::OK,
    )
    .await;
    app.post(
        &format!("/api/instances/{id}/activate"),
        None,
        StatusCode::OK,
    )
    .await;
    // Activating an active instance is no transition: nothing is published.
    app.post(
        &format!("/api/instances/{id}/activate"),
        None,
        StatusCode::OK,
    )
    .await;
    let gone = app
        .request(Method::DELETE, &format!("/api/instances/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::OK);

    let events = crate::specs::wait_events(&app, "agent.*", 3).await;
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            assert_eq!(e["source"], "instances", "{e}");
            assert_eq!(e["data"]["name"], "gamma", "{e}");
            assert_eq!(e["data"]["workspace"], "/g", "{e}");
            assert!(!e.to_string().contains(reg["token"].as_str().unwrap()));
            (
                e["topic"].as_str().unwrap().to_string(),
                e["data"]["instance_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = |t: &str| (t.to_string(), id.clone());
    assert_eq!(
        seen,
        [
            want("agent.registered"),
            want("agent.active"),
            want("agent.deregistered")
        ]
    );
    let all = app.get_json("/api/events/history?topic=agent.*").await;
    assert_eq!(
        all.as_array().unwrap().len(),
        3,
        "no other agent event: {all}"
    );
}
