//! Identity (API §25): access keys, scopes, projects, agents acting as themselves, strict
//! identity (the spoofing test) and rate limits.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_json};

async fn create_key(app: &TestApp, body: Value) -> Value {
    let resp = app
        .request(Method::POST, "/api/keys")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await
}

fn with(app: &TestApp, secret: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(secret)
}

async fn audit_actor(app: &TestApp, action: &str, resource: &str) -> String {
    let entries = app
        .get_json(&format!("/api/audit?action={action}&limit=100"))
        .await;
    let entry = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"] == resource)
        .unwrap_or_else(|| panic!("no {action} on {resource}: {entries}"));
    entry["actor"].as_str().unwrap().to_string()
}

#[actix_web::test]
async fn a_key_is_shown_once_stored_as_a_digest_and_revoked_at_once() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let created = create_key(&app, json!({"name": "ci", "scopes": ["read"]})).await;
    let secret = created["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("koor_") && secret.len() > 40);
    let listed = app.get("/api/keys").await.text().await.unwrap();
    assert!(listed.contains("\"ci\"") && !listed.contains(&secret));
    // The database holds only the digest.
    let needle = secret.as_bytes();
    if crate::helpers::test_database_url().is_none() {
        let db = std::fs::read(app.dir.path().join("data.db")).unwrap();
        let wal = std::fs::read(app.dir.path().join("data.db-wal")).unwrap_or_default();
        for bytes in [&db, &wal] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
    } else {
        use sea_orm::ConnectionTrait;
        let db = app.open_db().await;
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT id, name, digest, scopes FROM access_keys",
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        for row in rows {
            for column in 0..4 {
                let text: String = row.try_get_by_index(column).unwrap();
                assert!(!text.contains(&secret), "column {column} holds the secret");
            }
        }
    }
    let read = with(&app, &secret, Method::GET, "/api/state")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let id = created["id"].as_str().unwrap();
    let resp = app
        .request(Method::DELETE, &format!("/api/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_json(resp, StatusCode::OK).await,
        json!({"revoked": id})
    );
    let after = with(&app, &secret, Method::GET, "/api/state")
        .send()
        .await
        .unwrap();
    assert_error(after, StatusCode::UNAUTHORIZED).await;
    let listed = app.get_json("/api/keys").await;
    assert_eq!(listed, json!([]));
}

#[actix_web::test]
async fn bad_key_bodies_are_400_and_duplicates_409() {
    let app = TestApp::spawn_with_token("s3cret").await;
    for body in [
        json!({"scopes": ["read"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"name": "x", "scopes": ["read"], "rate_limit": -1}),
    ] {
        let resp = app
            .request(Method::POST, "/api/keys")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    create_key(&app, json!({"name": "dup", "scopes": ["read"]})).await;
    let resp = app
        .request(Method::POST, "/api/keys")
        .json(&json!({"name": "dup", "scopes": ["write"]}))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::CONFLICT).await;
}

#[actix_web::test]
async fn creating_a_key_turns_auth_on_for_good() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/api/state").await.status(), StatusCode::OK);
    let created = create_key(&app, json!({"name": "first", "scopes": ["admin"]})).await;
    assert_error(app.get("/api/state").await, StatusCode::UNAUTHORIZED).await;
    let secret = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let resp = with(&app, secret, Method::DELETE, &format!("/api/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
    // Revoking every key does not reopen the server, nor does a restart.
    assert_error(app.get("/api/state").await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn scopes_and_projects_are_enforced() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let read = create_key(&app, json!({"name": "r", "scopes": ["read"]})).await;
    let read = read["key"].as_str().unwrap();
    let write = create_key(
        &app,
        json!({"name": "w", "scopes": ["write"], "projects": ["mine"]}),
    )
    .await;
    let write = write["key"].as_str().unwrap();
    app.put_state("mine/a", b"1").await;
    app.put_state("theirs/a", b"2").await;

    let put = |secret: &str, key: &str| {
        with(&app, secret, Method::PUT, &format!("/api/state/{key}")).body("3")
    };
    assert_error(
        put(read, "mine/a").send().await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        put(write, "mine/a").send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_error(
        put(write, "theirs/a").send().await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    let resp = with(&app, write, Method::GET, "/api/state/theirs/a")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::FORBIDDEN).await;
    // Listings are filtered to the key's projects.
    let resp = with(&app, write, Method::GET, "/api/state")
        .send()
        .await
        .unwrap();
    let keys = assert_json(resp, StatusCode::OK).await;
    let keys: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["mine/a"]);
    // Admin scope: keys, webhooks, forced lock release.
    let resp = with(&app, write, Method::GET, "/api/keys")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::FORBIDDEN).await;
    // The read-only POSTs.
    let resp = with(&app, read, Method::POST, "/api/locks/check")
        .json(&json!({"paths": ["a"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Writes are attributed to the key.
    assert_eq!(audit_actor(&app, "state.put", "mine/a").await, "key:w");
}

#[actix_web::test]
async fn an_expired_key_is_401() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let soon = koor::time::format_micros(koor::time::now_micros() + 1_500_000);
    let k = create_key(
        &app,
        json!({"name": "short", "scopes": ["read"], "expires_at": soon}),
    )
    .await;
    let secret = k["key"].as_str().unwrap();
    let ok = with(&app, secret, Method::GET, "/api/state")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;
    let late = with(&app, secret, Method::GET, "/api/state")
        .send()
        .await
        .unwrap();
    assert_error(late, StatusCode::UNAUTHORIZED).await;
}

#[actix_web::test]
async fn rotation_replaces_the_secret() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let k = create_key(&app, json!({"name": "rot", "scopes": ["read"]})).await;
    let old = k["key"].as_str().unwrap();
    let id = k["id"].as_str().unwrap();
    let resp = app
        .request(Method::POST, &format!("/api/keys/{id}/rotate"))
        .send()
        .await
        .unwrap();
    let rotated = assert_json(resp, StatusCode::OK).await;
    let new = rotated["key"].as_str().unwrap();
    assert_ne!(old, new);
    assert_eq!(rotated["id"], k["id"]);
    let resp = with(&app, old, Method::GET, "/api/state")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::UNAUTHORIZED).await;
    let resp = with(&app, new, Method::GET, "/api/state")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(audit_actor(&app, "key.rotate", id).await, "admin");
}

/// The spoofing test: under strict identity a bare `X-Koor-Instance` attributes nothing,
/// and agent A's token can neither complete B's task nor release B's lock.
#[actix_web::test]
async fn strict_identity_stops_spoofing() {
    let app = TestApp::spawn_with(|c| {
        c.auth_token = koor::config::Secret::new("s3cret");
        c.strict_identity = true;
    })
    .await;
    let a = app.register("agent-a", Value::Null).await;
    let b = app.register("agent-b", Value::Null).await;
    let (a_token, b_token) = (a["token"].as_str().unwrap(), b["token"].as_str().unwrap());
    let b_id = b["id"].as_str().unwrap();

    // A bare X-Koor-Instance naming B does not make the admin's write B's.
    let resp = app
        .request(Method::PUT, "/api/state/spoofed")
        .header("X-Koor-Instance", b_id)
        .body("1")
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
    assert_eq!(audit_actor(&app, "state.put", "spoofed").await, "admin");
    // A's token acts as A.
    let resp = with(&app, a_token, Method::PUT, "/api/state/by-a")
        .body("1")
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
    assert_eq!(audit_actor(&app, "state.put", "by-a").await, "agent-a");

    // B claims a task; A cannot complete it, nor claim for B.
    app.post(
        "/api/tasks",
        Some(json!({"queue": "q", "payload": 1})),
        StatusCode::OK,
    )
    .await;
    let resp = with(&app, b_token, Method::POST, "/api/tasks/claim")
        .json(&json!({"queue": "q"}))
        .send()
        .await
        .unwrap();
    let claimed = assert_json(resp, StatusCode::OK).await;
    let task = &claimed["task"];
    assert_eq!(task["lease"]["holder"], b_id, "{claimed}");
    let (task_id, token) = (task["id"].as_str().unwrap(), task["lease"]["token"].clone());
    let resp = with(
        &app,
        a_token,
        Method::POST,
        &format!("/api/tasks/{task_id}/complete"),
    )
    .json(&json!({"token": token, "result": "stolen"}))
    .send()
    .await
    .unwrap();
    assert_error(resp, StatusCode::FORBIDDEN).await;
    let resp = with(&app, a_token, Method::POST, "/api/tasks/claim")
        .json(&json!({"queue": "q", "holder": b_id}))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::FORBIDDEN).await;
    let resp = with(
        &app,
        b_token,
        Method::POST,
        &format!("/api/tasks/{task_id}/complete"),
    )
    .json(&json!({"token": token, "result": "done"}))
    .send()
    .await
    .unwrap();
    assert_json(resp, StatusCode::OK).await;

    // B takes a lock; A cannot release it (with or without its token).
    let resp = with(&app, b_token, Method::POST, "/api/locks")
        .json(&json!({"resource": "src/lib.rs"}))
        .send()
        .await
        .unwrap();
    let lock = assert_json(resp, StatusCode::OK).await;
    assert_eq!(lock["holder"], b_id);
    let (lock_id, lock_token) = (lock["id"].as_str().unwrap(), &lock["token"]);
    let resp = with(
        &app,
        a_token,
        Method::DELETE,
        &format!("/api/locks/{lock_id}?token={lock_token}"),
    )
    .send()
    .await
    .unwrap();
    assert_error(resp, StatusCode::FORBIDDEN).await;
    let resp = with(
        &app,
        b_token,
        Method::DELETE,
        &format!("/api/locks/{lock_id}?token={lock_token}"),
    )
    .send()
    .await
    .unwrap();
    assert_json(resp, StatusCode::OK).await;

    // A deregistered agent's token is no credential any more.
    let resp = app
        .request(
            Method::DELETE,
            &format!("/api/instances/{}", a["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
    let resp = with(&app, a_token, Method::GET, "/api/state")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::UNAUTHORIZED).await;
}

#[actix_web::test]
async fn without_strict_identity_the_bare_header_still_attributes() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let b = app.register("agent-b", Value::Null).await;
    let resp = app
        .request(Method::PUT, "/api/state/named")
        .header("X-Koor-Instance", b["id"].as_str().unwrap())
        .body("1")
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
    assert_eq!(audit_actor(&app, "state.put", "named").await, "agent-b");
}

#[actix_web::test]
async fn rate_limits_refuse_with_headers_and_spare_health() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit = 2.0;
        c.rate_burst = 2.0;
    })
    .await;
    let mut codes = Vec::new();
    let mut refused = None;
    for i in 0..6 {
        let resp = app
            .request(Method::PUT, "/api/state/limited")
            .body(format!("{i}"))
            .send()
            .await
            .unwrap();
        codes.push(resp.status().as_u16());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(resp);
        } else {
            assert!(resp.headers().contains_key("ratelimit"));
        }
    }
    assert_eq!(&codes[..2], &[200, 200], "{codes:?}");
    let resp = refused.expect("a 429");
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(resp.headers().contains_key("ratelimit-policy"));
    assert_error(resp, StatusCode::TOO_MANY_REQUESTS).await;
    // Refused writes stored nothing (once the bucket has refilled, the check may read).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let stored = codes.iter().filter(|c| **c == 200).count();
    let hist = app.get_json("/api/state/limited?history=1&limit=100").await;
    assert_eq!(
        hist["versions"].as_array().map(Vec::len),
        Some(stored),
        "{hist}"
    );
    for _ in 0..10 {
        assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    }
    let metrics = app.get("/metrics").await;
    // /metrics may itself be refused: only look when it answered.
    if metrics.status() == StatusCode::OK {
        let text = metrics.text().await.unwrap();
        assert!(
            text.contains("koor_rate_limited_total{principal_kind=\"anonymous\"}"),
            "{text}"
        );
    }
}

#[actix_web::test]
async fn a_keys_own_rate_limit_applies_without_a_global_one() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let k = create_key(
        &app,
        json!({"name": "slow", "scopes": ["read"], "rate_limit": 1}),
    )
    .await;
    let secret = k["key"].as_str().unwrap();
    let mut codes = Vec::new();
    for _ in 0..6 {
        let resp = with(&app, secret, Method::GET, "/api/state")
            .send()
            .await
            .unwrap();
        codes.push(resp.status().as_u16());
    }
    assert!(codes.contains(&429), "{codes:?}");
    // The admin token is not limited (no global limit).
    for _ in 0..6 {
        assert_eq!(app.get("/api/state").await.status(), StatusCode::OK);
    }
}

#[actix_web::test]
async fn the_cli_manages_keys_and_acts_as_the_registered_agent() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: Vec<&'static str>| {
        let address = app.address.clone();
        let dir = cwd.path().to_path_buf();
        async move {
            let mut all = vec!["--token", "s3cret"];
            all.extend(args);
            crate::cli::koor(&address, &dir, &all, None).await
        }
    };
    let out = run(vec!["keys", "create", "ci", "--scopes", "read,write"]).await;
    assert!(out.status.success(), "{out:?}");
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(created["key"].as_str().unwrap().starts_with("koor_"));
    let out = run(vec!["keys", "list"]).await;
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(listed.contains("\"ci\"") && !listed.contains(created["key"].as_str().unwrap()));

    let out = run(vec!["register", "cli-agent"]).await;
    assert!(out.status.success(), "{out:?}");
    let settings: Value =
        serde_json::from_slice(&std::fs::read(cwd.path().join("settings.json")).unwrap()).unwrap();
    assert_eq!(settings["agent"], "cli-agent");
    assert!(settings["agents"]["cli-agent"]["token"].is_string());
    let out = run(vec!["state", "set", "by-cli", "--data", "1"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(audit_actor(&app, "state.put", "by-cli").await, "cli-agent");
    let out = run(vec!["--as", "nobody", "state", "list"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let id = created["id"].as_str().unwrap().to_string();
    let out = crate::cli::koor(
        &app.address,
        cwd.path(),
        &["--token", "s3cret", "keys", "revoke", &id],
        None,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(app.get_json("/api/keys").await, json!([]));
}
