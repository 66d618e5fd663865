//! Locks (API §24): acquire, renew, release, list, check, waiting, expiry, holder loss,
//! fencing tokens, and `koor locks` / `koor hooks install` in a real git repository.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, assert_error, assert_json, koor_bin};

/// A registered (pending, so never stale) holder's id.
async fn holder(app: &TestApp, name: &str) -> String {
    app.register(name, Value::Null).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn acquire_resp(app: &TestApp, body: Value) -> reqwest::Response {
    app.request(Method::POST, "/api/locks")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Acquires `resource` for `holder` with the extra fields of `extra`; must succeed.
async fn acquire(app: &TestApp, resource: &str, holder: &str, extra: Value) -> Value {
    let mut body = json!({"resource": resource, "holder": holder});
    if let Some(e) = extra.as_object() {
        body.as_object_mut().unwrap().extend(e.clone());
    }
    assert_json(acquire_resp(app, body).await, StatusCode::OK).await
}

async fn delete(app: &TestApp, path: &str) -> reqwest::Response {
    app.request(Method::DELETE, path).send().await.unwrap()
}

async fn release(app: &TestApp, lock: &Value) -> Value {
    let path = format!(
        "/api/locks/{}?token={}",
        lock["id"].as_str().unwrap(),
        lock["token"]
    );
    assert_json(delete(app, &path).await, StatusCode::OK).await
}

async fn list(app: &TestApp, query: &str) -> Vec<Value> {
    app.get_json(&format!("/api/locks{query}"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn ids(locks: &[Value]) -> Vec<&str> {
    locks.iter().map(|l| l["id"].as_str().unwrap()).collect()
}

/// The events of `topic`, oldest first.
async fn events(app: &TestApp, topic: &str) -> Vec<Value> {
    let mut v = app
        .get_json(&format!("/api/events/history?topic={topic}&last=1000"))
        .await
        .as_array()
        .unwrap()
        .clone();
    v.reverse();
    v
}

async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    app.get_json(&format!("/api/audit?action={action}"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn ts(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap().parse().unwrap()
}

fn ttl_of(lock: &Value) -> f64 {
    (ts(&lock["expires_at"]) - ts(&lock["acquired_at"])).as_seconds_f64()
}

#[actix_web::test]
async fn acquire_answers_the_lock_and_records_its_event_and_audit_entry() {
    let app = TestApp::spawn().await;
    let h = holder(&app, "backend").await;
    let lock = acquire(
        &app,
        "/src//api/./handler.rs",
        &h,
        json!({"reason": "refactor"}),
    )
    .await;
    assert_eq!(lock["resource"], "src/api/handler.rs", "normalised");
    assert_eq!(lock["mode"], "exclusive");
    assert_eq!(lock["holder"], h.as_str());
    assert_eq!(lock["reason"], "refactor");
    assert!(lock["token"].as_i64().unwrap() > 0);
    assert_eq!(ttl_of(&lock), 300.0);
    let shared = acquire(
        &app,
        "docs/*.md",
        &h,
        json!({"mode": "shared", "ttl_seconds": 1.5}),
    )
    .await;
    assert_eq!(shared["mode"], "shared");
    assert_eq!(ttl_of(&shared), 1.5);
    assert!(shared["token"].as_i64() > lock["token"].as_i64());

    let acquired = events(&app, "lock.acquired").await;
    assert_eq!(acquired.len(), 2);
    assert_eq!(acquired[0]["source"], "locks");
    assert_eq!(
        acquired[0]["data"],
        json!({"id": lock["id"], "resource": "src/api/handler.rs", "mode": "exclusive",
               "holder": h, "token": lock["token"], "reason": "refactor", "cause": null})
    );
    let entries = audit(&app, "lock.acquire").await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["resource"], "src/api/handler.rs");
    let detail: Value = serde_json::from_str(entries[1]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["id"], lock["id"]);
    assert_eq!(detail["token"], lock["token"]);
    assert_eq!(detail["ttl_seconds"], 300.0);
}

#[actix_web::test]
async fn bad_input_is_400_before_anything_is_looked_up() {
    let app = TestApp::spawn().await;
    let h = holder(&app, "a").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let bodies = [
        json!([]),
        json!("src"),
        json!({}),
        json!({"resource": "", "holder": h}),
        json!({"resource": "/./", "holder": h}),
        json!({"resource": 7, "holder": h}),
        json!({"resource": "a/../b", "holder": h}),
        json!({"resource": "src/[a-", "holder": h}),
        json!({"resource": "src/[z-a]", "holder": h}),
        json!({"resource": "x".repeat(1025), "holder": h}),
        json!({"resource": "a"}),
        json!({"resource": "a", "holder": h, "mode": "readonly"}),
        json!({"resource": "a", "holder": h, "ttl_seconds": 0}),
        json!({"resource": "a", "holder": h, "ttl_seconds": 0.5}),
        json!({"resource": "a", "holder": h, "ttl_seconds": 86401}),
        json!({"resource": "a", "holder": h, "ttl_seconds": "60"}),
        json!({"resource": "a", "holder": h, "wait_seconds": 60.5}),
        json!({"resource": "a", "holder": h, "wait_seconds": -1}),
        json!({"resource": "a", "holder": h, "reason": 5}),
        json!({"resource": "a", "holder": h, "reason": "r".repeat(1025)}),
        // 400 comes before the 404 of the unknown holder.
        json!({"resource": "a", "holder": unknown, "ttl_seconds": 0}),
    ];
    for body in bodies {
        let resp = acquire_resp(&app, body.clone()).await;
        assert_eq!(resp.status(), 400, "{body}");
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    let resp = app
        .request(Method::POST, "/api/locks")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST).await;
    assert_error(
        acquire_resp(&app, json!({"resource": "a", "holder": unknown})).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let lock = acquire(&app, "a", &h, json!({})).await;
    let id = lock["id"].as_str().unwrap();
    for body in [
        json!({}),
        json!({"token": "1"}),
        json!({"token": 0}),
        json!([1]),
        json!({"token": lock["token"], "ttl_seconds": 0}),
    ] {
        let resp = app
            .post(
                &format!("/api/locks/{id}/renew"),
                Some(body.clone()),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(resp["code"], 400, "{body}");
    }
    for token in ["", "abc", "0", "-3", "1.5"] {
        assert_error(
            delete(&app, &format!("/api/locks/{id}?token={token}")).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    assert_error(
        app.get("/api/locks?resource=a/../b").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    for body in [
        json!({}),
        json!({"paths": "a"}),
        json!({"paths": [1]}),
        json!({"paths": ["../x"]}),
        json!({"paths": ["a"], "holder": 3}),
        json!([]),
    ] {
        app.post("/api/locks/check", Some(body), StatusCode::BAD_REQUEST)
            .await;
    }
    // The lock is untouched by all of this.
    assert_eq!(ids(&list(&app, "").await), [id]);
}

#[actix_web::test]
async fn wrong_methods_are_405_with_allow() {
    let app = TestApp::spawn().await;
    for (method, path, allow) in [
        (Method::PUT, "/api/locks", "GET, POST"),
        (Method::GET, "/api/locks/check", "POST"),
        (Method::GET, "/api/locks/x", "DELETE"),
        (Method::GET, "/api/locks/x/renew", "POST"),
    ] {
        let resp = app.request(method, path).send().await.unwrap();
        assert_eq!(resp.headers()["allow"], allow, "{path}");
        assert_error(resp, StatusCode::METHOD_NOT_ALLOWED).await;
    }
}

#[actix_web::test]
async fn eight_concurrent_acquirers_of_one_exclusive_resource_one_wins_the_rest_see_it() {
    let app = TestApp::spawn().await;
    let mut holders = Vec::new();
    for i in 0..8 {
        holders.push(holder(&app, &format!("agent-{i}")).await);
    }
    let attempts = holders.iter().map(|h| {
        app.request(Method::POST, "/api/locks")
            .json(&json!({"resource": "src/main.rs", "holder": h}))
            .send()
    });
    let answers = futures_util::future::join_all(attempts).await;
    let mut won = Vec::new();
    let mut refused = Vec::new();
    for resp in answers {
        let resp = resp.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        match status.as_u16() {
            200 => won.push(body),
            409 => refused.push(body),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(refused.len(), 7);
    for body in &refused {
        assert_eq!(body["code"], 409);
        let conflicts = body["conflicts"].as_array().unwrap();
        assert_eq!(ids(conflicts), [won[0]["id"].as_str().unwrap()], "{body}");
        assert_eq!(conflicts[0]["holder"], won[0]["holder"]);
    }
    assert_eq!(list(&app, "").await.len(), 1);
}

#[actix_web::test]
async fn conflicts_follow_modes_holders_and_globs() {
    let app = TestApp::spawn().await;
    let (a, b) = (holder(&app, "a").await, holder(&app, "b").await);
    let src = acquire(&app, "src/**", &a, json!({})).await;
    // The same holder may overlap itself, and may take the same resource twice.
    acquire(&app, "src/a/b.rs", &a, json!({})).await;
    acquire(&app, "src/**", &a, json!({})).await;
    let body = assert_error(
        acquire_resp(
            &app,
            json!({"resource": "src/a/b.rs", "holder": b, "mode": "shared"}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(body["conflicts"].as_array().unwrap().len(), 3, "{body}");
    assert_eq!(body["conflicts"][0]["id"], src["id"]);
    // No common path: granted.
    acquire(&app, "docs/*.md", &b, json!({})).await;
    acquire(&app, "srcx/**", &b, json!({})).await;
    // Shared locks share.
    acquire(&app, "assets/**", &a, json!({"mode": "shared"})).await;
    acquire(&app, "assets/logo.svg", &b, json!({"mode": "shared"})).await;
    assert_error(
        acquire_resp(&app, json!({"resource": "assets/x", "holder": b})).await,
        StatusCode::CONFLICT,
    )
    .await;
}

#[actix_web::test]
async fn renew_keeps_the_token_and_defaults_to_the_last_ttl() {
    let app = TestApp::spawn().await;
    let h = holder(&app, "a").await;
    let lock = acquire(&app, "f.rs", &h, json!({"ttl_seconds": 30})).await;
    let path = format!("/api/locks/{}/renew", lock["id"].as_str().unwrap());
    let renewed = app
        .post(
            &path,
            Some(json!({"token": lock["token"], "ttl_seconds": 600})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(renewed["token"], lock["token"]);
    assert_eq!(renewed["acquired_at"], lock["acquired_at"]);
    let left = (ts(&renewed["expires_at"]) - chrono::Utc::now()).as_seconds_f64();
    assert!((590.0..=600.0).contains(&left), "{left}");
    // Without ttl_seconds: the last ttl (600), not the first (30) nor the default (300).
    let again = app
        .post(&path, Some(json!({"token": lock["token"]})), StatusCode::OK)
        .await;
    let left = (ts(&again["expires_at"]) - chrono::Utc::now()).as_seconds_f64();
    assert!((590.0..=600.0).contains(&left), "{left}");
    let wrong = json!({"token": lock["token"].as_i64().unwrap() + 1});
    let body = app.post(&path, Some(wrong), StatusCode::CONFLICT).await;
    assert_eq!(body["code"], 409);
    app.post(
        "/api/locks/nope/renew",
        Some(json!({"token": 1})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(audit(&app, "lock.renew").await.len(), 2);
}

#[actix_web::test]
async fn release_needs_the_token_and_a_forced_release_is_recorded_as_such() {
    let app = TestApp::spawn().await;
    let (a, b) = (holder(&app, "a").await, holder(&app, "b").await);
    let lock = acquire(&app, "f.rs", &a, json!({})).await;
    let id = lock["id"].as_str().unwrap();
    let wrong = format!(
        "/api/locks/{id}?token={}",
        lock["token"].as_i64().unwrap() + 1
    );
    assert_error(delete(&app, &wrong).await, StatusCode::CONFLICT).await;
    assert_eq!(release(&app, &lock).await, json!({"released": id}));
    // Released: no longer held, so a second release is 409, an unknown id 404.
    let again = format!("/api/locks/{id}?token={}", lock["token"]);
    assert_error(delete(&app, &again).await, StatusCode::CONFLICT).await;
    assert_error(
        delete(&app, "/api/locks/nope?token=1").await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let other = acquire(&app, "f.rs", &b, json!({"reason": "mine now"})).await;
    let forced = assert_json(
        delete(
            &app,
            &format!("/api/locks/{}", other["id"].as_str().unwrap()),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(forced["released"], other["id"]);
    let causes: Vec<Value> = events(&app, "lock.released")
        .await
        .iter()
        .map(|e| e["data"]["cause"].clone())
        .collect();
    assert_eq!(causes, [json!("released"), json!("forced")]);
    assert_eq!(audit(&app, "lock.release").await.len(), 1);
    let forced = audit(&app, "lock.force_release").await;
    assert_eq!(forced.len(), 1);
    assert_eq!(forced[0]["resource"], "f.rs");
    assert!(list(&app, "").await.is_empty());
}

#[actix_web::test]
async fn an_expired_lock_is_not_held_and_its_event_follows_within_two_seconds() {
    let app = TestApp::spawn().await;
    let (a, b) = (holder(&app, "a").await, holder(&app, "b").await);
    let lock = acquire(&app, "f.rs", &a, json!({"ttl_seconds": 1})).await;
    assert_error(
        acquire_resp(&app, json!({"resource": "f.rs", "holder": b})).await,
        StatusCode::CONFLICT,
    )
    .await;
    let expires = ts(&lock["expires_at"]);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    // Whether or not the sweep has run: not listed, not renewable, not in the way.
    assert!(list(&app, "").await.iter().all(|l| l["id"] != lock["id"]));
    let renew = format!("/api/locks/{}/renew", lock["id"].as_str().unwrap());
    app.post(
        &renew,
        Some(json!({"token": lock["token"]})),
        StatusCode::CONFLICT,
    )
    .await;
    let next = acquire(&app, "f.rs", &b, json!({})).await;
    assert!(next["token"].as_i64() > lock["token"].as_i64());
    let deadline = Instant::now() + Duration::from_secs(3);
    let expired = loop {
        let found = events(&app, "lock.expired").await;
        if let Some(e) = found.into_iter().find(|e| e["data"]["id"] == lock["id"]) {
            break e;
        }
        assert!(Instant::now() < deadline, "no lock.expired event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(expired["data"]["cause"], "expired");
    assert!((ts(&expired["created_at"]) - expires).as_seconds_f64() < 2.0);
    assert_error(
        delete(
            &app,
            &format!(
                "/api/locks/{}?token={}",
                lock["id"].as_str().unwrap(),
                lock["token"]
            ),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
}

#[actix_web::test]
async fn wait_seconds_takes_the_lock_at_its_release_or_refuses_at_the_deadline() {
    let app = TestApp::spawn().await;
    let (a, b) = (holder(&app, "a").await, holder(&app, "b").await);
    let held = acquire(&app, "src/**", &a, json!({})).await;

    // Refused after about the wait, listing the lock in the way.
    let started = Instant::now();
    let body = assert_error(
        acquire_resp(
            &app,
            json!({"resource": "src/x.rs", "holder": b, "wait_seconds": 0.5}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(body["conflicts"][0]["id"], held["id"]);

    // Taken as soon as the lock is released, not at the deadline.
    let waiter = {
        let req = app
            .request(Method::POST, "/api/locks")
            .json(&json!({"resource": "src/x.rs", "holder": b, "wait_seconds": 30}));
        actix_web::rt::spawn(async move {
            let started = Instant::now();
            let resp = req.send().await.unwrap();
            (
                resp.status(),
                resp.json::<Value>().await.unwrap(),
                started.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished());
    release(&app, &held).await;
    let (status, lock, took) = waiter.await.unwrap();
    assert_eq!(status, 200, "{lock}");
    assert_eq!(lock["holder"], b.as_str());
    assert!(took < Duration::from_secs(5), "{took:?}");

    // And when the lock in the way expires (no release at all).
    let short = acquire(&app, "docs/**", &a, json!({"ttl_seconds": 1})).await;
    let started = Instant::now();
    let lock = assert_json(
        acquire_resp(
            &app,
            json!({"resource": "docs/a.md", "holder": b, "wait_seconds": 10}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(lock["token"].as_i64() > short["token"].as_i64());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[actix_web::test]
async fn list_filters_by_holder_and_overlap_newest_first_up_to_the_limit() {
    let app = TestApp::spawn().await;
    let (a, b) = (holder(&app, "a").await, holder(&app, "b").await);
    let first = acquire(&app, "src/**", &a, json!({})).await;
    let second = acquire(&app, "docs/guide.md", &b, json!({})).await;
    let third = acquire(&app, "src/api/*.rs", &a, json!({"mode": "shared"})).await;
    let all = list(&app, "").await;
    assert_eq!(
        ids(&all),
        [&third["id"], &second["id"], &first["id"]].map(|v| v.as_str().unwrap())
    );
    assert_eq!(list(&app, &format!("?holder={a}")).await.len(), 2);
    assert_eq!(list(&app, "?holder=nobody").await.len(), 0);
    assert_eq!(list(&app, "?limit=1").await.len(), 1);
    assert_eq!(
        list(&app, "?limit=0").await.len(),
        3,
        "a limit <= 0 is the default"
    );
    let by = |r: &'static str| {
        let app = &app;
        async move {
            let locks = list(app, &format!("?resource={r}")).await;
            ids(&locks)
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        }
    };
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    assert_eq!(by("src/api/x.rs").await, [id(&third), id(&first)]);
    assert_eq!(by("src/lib.rs").await, [id(&first)]);
    assert_eq!(
        by("**/*.md").await,
        [id(&second), id(&first)],
        "src/** holds src/x.md"
    );
    assert_eq!(by("docs/**").await, [id(&second)]);
    assert_eq!(by("docs/guide.md").await, [id(&second)]);
    assert!(by("tests/**").await.is_empty());
    let both = list(&app, &format!("?resource=src/api/x.rs&holder={b}")).await;
    assert!(both.is_empty());
}

#[actix_web::test]
async fn check_reports_each_path_blocked_by_another_holder() {
    let app = TestApp::spawn().await;
    let (a, b) = (holder(&app, "a").await, holder(&app, "b").await);
    let src = acquire(&app, "src/**", &a, json!({"reason": "refactor"})).await;
    let doc = acquire(&app, "docs/*.md", &b, json!({"mode": "shared"})).await;
    let check = |body: Value| app.post("/api/locks/check", Some(body), StatusCode::OK);
    let report = check(
        json!({"paths": ["src/a.rs", "./docs/x.md", "README.md", "src/b/c.rs"], "holder": b}),
    )
    .await;
    assert_eq!(report["ok"], false);
    let blocked: Vec<(&str, &str)> = report["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap(),
                e["lock"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    let src_id = src["id"].as_str().unwrap();
    assert_eq!(blocked, [("src/a.rs", src_id), ("src/b/c.rs", src_id)]);
    assert_eq!(report["blocked"][0]["lock"]["reason"], "refactor");
    // Without a holder every held lock blocks, shared ones too.
    let report = check(json!({"paths": ["docs/x.md", "src/a.rs"]})).await;
    let paths: Vec<&str> = report["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["docs/x.md", "src/a.rs"]);
    assert_eq!(report["blocked"][0]["lock"]["id"], doc["id"]);
    // Nothing blocked: ok.
    let report = check(json!({"paths": ["README.md"], "holder": a})).await;
    assert_eq!(report, json!({"ok": true, "blocked": []}));
    assert_eq!(check(json!({"paths": []})).await["ok"], true);
    // The calling agent is the holder when none is named.
    let resp = app
        .request(Method::POST, "/api/locks/check")
        .header("x-koor-instance", a.as_str())
        .json(&json!({"paths": ["src/a.rs"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_json(resp, StatusCode::OK).await["ok"], true);
}

#[actix_web::test]
async fn the_calling_agent_is_the_holder_when_none_is_named() {
    let app = TestApp::spawn().await;
    let a = holder(&app, "a").await;
    let resp = app
        .request(Method::POST, "/api/locks")
        .header("x-koor-instance", a.as_str())
        .json(&json!({"resource": "f.rs"}))
        .send()
        .await
        .unwrap();
    let lock = assert_json(resp, StatusCode::OK).await;
    assert_eq!(lock["holder"], a.as_str());
    let entry = &audit(&app, "lock.acquire").await[0];
    assert_eq!(entry["actor"], "a");
}

#[actix_web::test]
async fn a_deregistered_holder_loses_its_locks_at_once() {
    let app = TestApp::spawn().await;
    let (a, b) = (holder(&app, "a").await, holder(&app, "b").await);
    let lock = acquire(&app, "src/**", &a, json!({})).await;
    acquire(&app, "docs/x.md", &a, json!({})).await;
    assert_json(
        delete(&app, &format!("/api/instances/{a}")).await,
        StatusCode::OK,
    )
    .await;
    assert!(list(&app, &format!("?holder={a}")).await.is_empty());
    let check = app
        .post(
            "/api/locks/check",
            Some(json!({"paths": ["src/a.rs"]})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(check["ok"], true);
    acquire(&app, "src/a.rs", &b, json!({})).await;
    let released = events(&app, "lock.released").await;
    assert_eq!(released.len(), 2);
    assert!(released.iter().all(|e| e["data"]["cause"] == "holder_lost"));
    assert!(released.iter().any(|e| e["data"]["id"] == lock["id"]));
}

#[actix_web::test]
async fn a_killed_holders_lock_is_released_within_the_stale_threshold_and_one_interval() {
    let stale = Duration::from_secs(1);
    let interval = Duration::from_millis(500);
    let app = TestApp::spawn_with(|c| {
        c.stale_after = stale;
        c.liveness_interval = Some(interval);
    })
    .await;
    let a = app.active_instance("doomed").await;
    let b = holder(&app, "survivor").await;
    let started = Instant::now();
    let lock = acquire(&app, "src/**", &a, json!({"ttl_seconds": 3600})).await;
    // The agent dies: no heartbeat from now on.
    let released = loop {
        let found = events(&app, "lock.released").await;
        if let Some(e) = found.into_iter().find(|e| e["data"]["id"] == lock["id"]) {
            break e;
        }
        assert!(
            started.elapsed() < stale + interval + Duration::from_secs(2),
            "still held after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = started.elapsed();
    // Measured from after the activation, on a loaded test machine: a second of slack.
    assert!(
        took <= stale + interval + Duration::from_secs(1),
        "{took:?}"
    );
    assert_eq!(released["data"]["cause"], "holder_lost");
    assert!(list(&app, "").await.is_empty());
    acquire(&app, "src/main.rs", &b, json!({})).await;
}

#[actix_web::test]
async fn locks_and_tokens_survive_a_kill_and_tokens_continue_above() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]).await;
    let reg: Value = client
        .post(server.url("/api/instances/register"))
        .json(&json!({"name": "a"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a = reg["id"].as_str().unwrap().to_string();
    let mut locks = Vec::new();
    for r in ["a.rs", "b.rs", "c.rs"] {
        let lock: Value = client
            .post(server.url("/api/locks"))
            .json(&json!({"resource": r, "holder": a}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        locks.push(lock);
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();

    let server = ServerProcess::start(dir.path(), &[]).await;
    let listed: Vec<Value> = client
        .get(server.url("/api/locks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    for lock in &locks {
        assert!(listed.contains(lock), "{lock} in {listed:?}");
    }
    let next: Value = client
        .post(server.url("/api/locks"))
        .json(&json!({"resource": "d.rs", "holder": a}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        next["token"].as_i64() > locks[2]["token"].as_i64(),
        "{next}"
    );
}

// --- the CLI -------------------------------------------------------------------------

/// Runs `koor ARGS` in `cwd` against `app`, with `env` added.
async fn koor(app: &TestApp, cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    tokio::process::Command::new(koor_bin())
        .args(args)
        .current_dir(cwd)
        .env("KOOR_SERVER", &app.address)
        .env_remove("KOOR_TOKEN")
        .env_remove("KOOR_INSTANCE")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn git(cwd: &Path, args: &[&str]) -> Output {
    std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(cwd)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .unwrap()
}

#[actix_web::test]
async fn koor_locks_commands_acquire_renew_list_and_release() {
    let app = TestApp::spawn().await;
    let cwd = app.dir.path();
    let a = holder(&app, "backend").await;
    let got = koor(
        &app,
        cwd,
        &[("KOOR_INSTANCE", &a)],
        &[
            "locks", "acquire", "src/**", "--reason", "refactor", "--ttl", "60",
        ],
    )
    .await;
    assert!(got.status.success(), "{got:?}");
    assert!(out(&got).starts_with("locked "), "{}", out(&got));
    let lock = list(&app, "").await.remove(0);
    assert_eq!(lock["holder"], a.as_str());
    assert_eq!(lock["reason"], "refactor");
    let id = lock["id"].as_str().unwrap();
    let token = lock["token"].to_string();

    // Another holder is refused with the lock in the way, exit 1.
    let b = holder(&app, "frontend").await;
    let refused = koor(
        &app,
        cwd,
        &[],
        &["locks", "acquire", "src/a.rs", "--holder", &b],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("src/a.rs is locked") && err.contains(id),
        "{err}"
    );

    let listed = koor(&app, cwd, &[], &["locks", "list"]).await;
    assert_eq!(out(&listed).lines().count(), 1);
    assert!(
        out(&listed).contains(&format!("{id} exclusive src/** holder={a} token={token}")),
        "{}",
        out(&listed)
    );
    let json_list = koor(&app, cwd, &[], &["locks", "list", "--json", "--holder", &b]).await;
    assert_eq!(out(&json_list).trim(), "[]");

    let renewed = koor(&app, cwd, &[], &["locks", "renew", id, &token, "--json"]).await;
    let renewed: Value = serde_json::from_slice(&renewed.stdout).unwrap();
    assert_eq!(renewed["token"], lock["token"]);

    let released = koor(&app, cwd, &[], &["locks", "release", id, &token]).await;
    assert!(released.status.success(), "{released:?}");
    assert!(out(&released).contains(id));
    let usage = koor(&app, cwd, &[], &["locks", "release", id]).await;
    assert_eq!(
        usage.status.code(),
        Some(2),
        "a release needs the token or --force"
    );
    let again = koor(&app, cwd, &[], &["locks", "release", id, "--force"]).await;
    assert_eq!(again.status.code(), Some(1), "no longer held");
}

#[actix_web::test]
async fn koor_locks_check_blocks_a_staged_file_locked_by_another_agent() {
    let app = TestApp::spawn().await;
    let repo = tempfile::tempdir().unwrap();
    let cwd = repo.path();
    assert!(git(cwd, &["init", "-q"]).status.success());
    std::fs::create_dir_all(cwd.join("src")).unwrap();
    std::fs::write(cwd.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(cwd.join("README.md"), "hi\n").unwrap();
    assert!(
        git(cwd, &["add", "src/main.rs", "README.md"])
            .status
            .success()
    );

    let (a, b) = (holder(&app, "alice").await, holder(&app, "bob").await);
    let lock = acquire(&app, "src/**", &a, json!({"reason": "refactor"})).await;

    // Bob (by flag, then by KOOR_INSTANCE) is blocked; nothing staged outside src/ is.
    let blocked = koor(&app, cwd, &[], &["locks", "check", "--holder", &b]).await;
    assert_eq!(blocked.status.code(), Some(1), "{blocked:?}");
    let text = out(&blocked);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("src/main.rs: locked by alice ("), "{text}");
    assert!(
        text.contains(lock["id"].as_str().unwrap()) && text.ends_with(": refactor\n"),
        "{text}"
    );
    let by_env = koor(&app, cwd, &[("KOOR_INSTANCE", &b)], &["locks", "check"]).await;
    assert_eq!(by_env.status.code(), Some(1));
    let json_out = koor(
        &app,
        cwd,
        &[("KOOR_INSTANCE", &b)],
        &["locks", "check", "--json"],
    )
    .await;
    let report: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(report["blocked"][0]["path"], "src/main.rs");
    // Alice's own lock never blocks her.
    let mine = koor(&app, cwd, &[("KOOR_INSTANCE", &a)], &["locks", "check"]).await;
    assert!(mine.status.success(), "{mine:?}");
    assert!(out(&mine).is_empty());
    // Explicit paths instead of the staged files.
    let explicit = koor(
        &app,
        cwd,
        &[],
        &["locks", "check", "--holder", &b, "docs/x.md"],
    )
    .await;
    assert!(explicit.status.success());

    release(&app, &lock).await;
    let free = koor(&app, cwd, &[], &["locks", "check", "--holder", &b]).await;
    assert!(free.status.success(), "{free:?}");

    // Outside a git repository there is nothing staged to read: a clear error.
    let nowhere = tempfile::tempdir().unwrap();
    let err = koor(&app, nowhere.path(), &[], &["locks", "check"]).await;
    assert_eq!(err.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&err.stderr).contains("git"));
}

#[actix_web::test]
async fn the_installed_pre_commit_hook_refuses_a_commit_of_a_locked_file() {
    let app = TestApp::spawn().await;
    let repo = tempfile::tempdir().unwrap();
    let cwd = repo.path();
    assert!(git(cwd, &["init", "-q"]).status.success());
    let installed = koor(&app, cwd, &[], &["hooks", "install", "--project", "web"]).await;
    assert!(installed.status.success(), "{installed:?}");
    let hook = cwd.join(".git/hooks/pre-commit");
    let script = std::fs::read_to_string(&hook).unwrap();
    assert!(
        script.contains("locks check") && script.contains("validate 'web'"),
        "{script}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&hook).unwrap().permissions().mode() & 0o111,
            0o111
        );
    }
    // Rewriting koor's own hook is fine; a foreign hook needs --force.
    assert!(
        koor(&app, cwd, &[], &["hooks", "install"])
            .await
            .status
            .success()
    );
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    let refused = koor(&app, cwd, &[], &["hooks", "install"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );
    assert!(
        koor(
            &app,
            cwd,
            &[],
            &["hooks", "install", "--project", "web", "--force"]
        )
        .await
        .status
        .success()
    );

    let (a, b) = (holder(&app, "alice").await, holder(&app, "bob").await);
    let lock = acquire(&app, "src/*.rs", &a, json!({})).await;
    std::fs::create_dir_all(cwd.join("src")).unwrap();
    std::fs::write(cwd.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
    assert!(git(cwd, &["add", "src/lib.rs"]).status.success());
    // Asynchronously: the hook calls this test's server, whose actors run on this thread.
    let commit = || {
        tokio::process::Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "commit",
                "-q",
                "-m",
                "change",
            ])
            .current_dir(cwd)
            .env("KOOR", koor_bin())
            .env("KOOR_SERVER", &app.address)
            .env("KOOR_INSTANCE", &b)
            .env_remove("KOOR_TOKEN")
            .output()
    };
    let refused = commit().await.unwrap();
    assert!(!refused.status.success(), "{refused:?}");
    // Git hands a hook's output to its own stderr.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(said.contains("src/lib.rs: locked by alice"), "{said}");
    release(&app, &lock).await;
    let done = commit().await.unwrap();
    assert!(done.status.success(), "{done:?}");
}
