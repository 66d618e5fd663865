//! The work queue (API §23): every endpoint, leases, expiry, lost holders, long-polls,
//! groups, exclusive claims under concurrency, `kill -9`, fencing with real claim tokens,
//! and the `koor tasks` commands.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::koor;
use crate::helpers::{ServerProcess, TestApp, assert_error, assert_json};

/// Creates a task in `queue` with the extra fields of `extra` (an object); must succeed.
async fn create(app: &TestApp, queue: &str, extra: Value) -> Value {
    let mut body = json!({"queue": queue, "payload": {"job": queue}});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    app.post("/api/tasks", Some(body), StatusCode::OK).await
}

/// Claims from `queue` for `holder` with the extra fields of `extra`; returns `task`.
async fn claim(app: &TestApp, holder: &str, queue: &str, extra: Value) -> Value {
    let mut body = json!({"holder": holder, "queue": queue});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let out = app
        .post("/api/tasks/claim", Some(body), StatusCode::OK)
        .await;
    out["task"].clone()
}

fn token(task: &Value) -> i64 {
    task["lease"]["token"].as_i64().unwrap()
}

fn id(task: &Value) -> String {
    task["id"].as_str().unwrap().to_string()
}

/// `POST /api/tasks/{id}/{action}` that must answer `status`.
async fn act(
    app: &TestApp,
    id: &str,
    action: &str,
    body: Option<Value>,
    status: StatusCode,
) -> Value {
    let mut req = app.request(Method::POST, &format!("/api/tasks/{id}/{action}"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    if status.is_success() {
        assert_json(resp, status).await
    } else {
        assert_error(resp, status).await
    }
}

async fn holder(app: &TestApp, name: &str, capabilities: &[&str]) -> String {
    let reg = app
        .register(name, json!({"capabilities": capabilities}))
        .await;
    reg["id"].as_str().unwrap().to_string()
}

/// The events about task `id`, oldest first, as (topic, data).
async fn events_of(app: &TestApp, task: &str) -> Vec<(String, Value)> {
    let events = app
        .get_json("/api/events/history?topic=task.*&last=1000")
        .await;
    let mut out: Vec<(String, Value)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["id"] == task)
        .map(|e| (e["topic"].as_str().unwrap().to_string(), e["data"].clone()))
        .collect();
    out.reverse();
    out
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn create_applies_defaults_echoes_fields_and_rejects_bad_input_by_name() {
    let app = TestApp::spawn().await;
    let t = app
        .post("/api/tasks", Some(json!({"payload": null})), StatusCode::OK)
        .await;
    assert_eq!(t["queue"], "default");
    assert_eq!(t["payload"], Value::Null);
    assert_eq!(
        (
            &t["priority"],
            &t["status"],
            &t["attempts"],
            &t["max_attempts"],
            &t["lease_seconds"]
        ),
        (
            &json!(0),
            &json!("queued"),
            &json!(0),
            &json!(3),
            &json!(60)
        )
    );
    for field in [
        "not_before",
        "group",
        "idempotency_key",
        "lease",
        "result",
        "error",
    ] {
        assert_eq!(t[field], Value::Null, "{field}");
    }
    assert_eq!(t["requires"], json!([]));
    assert_eq!(app.get_json(&format!("/api/tasks/{}", id(&t))).await, t);

    let full = create(
        &app,
        "build",
        json!({"priority": -4, "max_attempts": 7, "lease_seconds": 2.5, "delay_seconds": 30,
               "requires": ["rust", "rust", "gpu"], "group": "release-1", "idempotency_key": "k1"}),
    )
    .await;
    assert_eq!(full["lease_seconds"], json!(2.5));
    assert_eq!(
        full["requires"],
        json!(["rust", "gpu"]),
        "duplicates are dropped"
    );
    assert!(full["not_before"].is_string(), "a delay sets not_before");
    assert_eq!(
        (&full["group"], &full["idempotency_key"]),
        (&json!("release-1"), &json!("k1"))
    );

    let long = "x".repeat(201);
    let bad = [
        (json!({"queue": "q"}), "payload"),
        (json!([{"payload": 1}]), "invalid"),
        (json!({"payload": 1, "queue": ""}), "queue"),
        (json!({"payload": 1, "queue": "a/b"}), "queue"),
        (json!({"payload": 1, "queue": long}), "queue"),
        (json!({"payload": 1, "priority": 1.5}), "priority"),
        (json!({"payload": 1, "max_attempts": 101}), "max_attempts"),
        (json!({"payload": 1, "lease_seconds": 0}), "lease_seconds"),
        (
            json!({"payload": 1, "delay_seconds": 86400.5}),
            "delay_seconds",
        ),
        (json!({"payload": 1, "requires": [1]}), "requires"),
        (json!({"payload": 1, "group": ""}), "group"),
        (
            json!({"payload": 1, "idempotency_key": 5}),
            "idempotency_key",
        ),
    ];
    for (body, field) in bad {
        let resp = app
            .request(Method::POST, "/api/tasks")
            .json(&body)
            .send()
            .await
            .unwrap();
        let err = assert_error(resp, StatusCode::BAD_REQUEST).await;
        assert!(
            err["error"].as_str().unwrap().contains(field),
            "{body}: {err}"
        );
    }
    let listed = app.get_json("/api/tasks").await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        2,
        "nothing bad was created"
    );
    let resp = app
        .request(Method::DELETE, "/api/tasks")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET, POST");
    assert_error(resp, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[actix_web::test]
async fn idempotency_keys_are_unique_per_queue_and_name_finished_tasks_too() {
    let app = TestApp::spawn().await;
    let h = holder(&app, "worker", &[]).await;
    let first = create(&app, "q1", json!({"idempotency_key": "deploy-42"})).await;
    let again = create(
        &app,
        "q1",
        json!({"idempotency_key": "deploy-42", "payload": 2}),
    )
    .await;
    assert_eq!(again, first, "the existing task, unchanged");
    let other = create(&app, "q2", json!({"idempotency_key": "deploy-42"})).await;
    assert_ne!(id(&other), id(&first), "keys are per queue");
    // Concurrent creates with one key make one task.
    let creates =
        (0..8).map(|i| create(&app, "q3", json!({"idempotency_key": "once", "payload": i})));
    let made: HashSet<String> = futures_util::future::join_all(creates)
        .await
        .iter()
        .map(id)
        .collect();
    assert_eq!(made.len(), 1);
    // A finished task is still found by its key.
    let t = claim(&app, &h, "q1", json!({})).await;
    act(
        &app,
        &id(&t),
        "complete",
        Some(json!({"token": token(&t), "result": "ok"})),
        StatusCode::OK,
    )
    .await;
    let done = create(&app, "q1", json!({"idempotency_key": "deploy-42"})).await;
    assert_eq!(
        (
            done["id"].clone(),
            done["status"].clone(),
            done["result"].clone()
        ),
        (first["id"].clone(), json!("done"), json!("ok"))
    );
}

#[actix_web::test]
async fn a_lease_goes_through_renew_complete_fail_release_cancel_and_retry() {
    let app = TestApp::spawn().await;
    let h = holder(&app, "worker", &[]).await;
    let q = "life";
    let a = create(&app, q, json!({"priority": 1, "group": "g"})).await;
    let t = claim(&app, &h, q, json!({"lease_seconds": 30})).await;
    assert_eq!((id(&t), t["attempts"].clone()), (id(&a), json!(1)));
    let tok = token(&t);
    assert_eq!(t["lease"]["holder"], h.as_str());

    // Bad bodies are 400 before anything is looked up; unknown ids are 404.
    act(
        &app,
        &id(&a),
        "renew",
        Some(json!({})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    act(
        &app,
        &id(&a),
        "renew",
        Some(json!({"token": tok, "lease_seconds": 3601})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    act(
        &app,
        &id(&a),
        "fail",
        Some(json!({"token": tok})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    act(
        &app,
        &id(&a),
        "fail",
        Some(json!({"token": tok, "error": "e", "retry_after_seconds": -1})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    act(
        &app,
        &id(&a),
        "release",
        Some(json!([tok])),
        StatusCode::BAD_REQUEST,
    )
    .await;
    act(
        &app,
        "nope",
        "complete",
        Some(json!({"token": tok})),
        StatusCode::NOT_FOUND,
    )
    .await;
    act(&app, "nope", "cancel", None, StatusCode::NOT_FOUND).await;
    act(&app, "nope", "retry", None, StatusCode::NOT_FOUND).await;
    assert_error(app.get("/api/tasks/nope").await, StatusCode::NOT_FOUND).await;

    let renewed = act(
        &app,
        &id(&a),
        "renew",
        Some(json!({"token": tok, "lease_seconds": 600})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(token(&renewed), tok);
    assert!(renewed["lease"]["expires_at"].as_str() > t["lease"]["expires_at"].as_str());
    act(
        &app,
        &id(&a),
        "renew",
        Some(json!({"token": tok + 1})),
        StatusCode::CONFLICT,
    )
    .await;
    let failed = act(
        &app,
        &id(&a),
        "fail",
        Some(json!({"token": tok, "error": "flaky", "retry_after_seconds": 0})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (failed["status"].clone(), failed["error"].clone()),
        (json!("failed"), json!("flaky"))
    );
    act(
        &app,
        &id(&a),
        "complete",
        Some(json!({"token": tok})),
        StatusCode::CONFLICT,
    )
    .await;

    // Claimable again at once (retry_after 0), with a larger token and attempt 2.
    let t2 = claim(&app, &h, q, json!({})).await;
    assert!(token(&t2) > tok);
    assert_eq!(t2["attempts"], 2);
    let released = act(
        &app,
        &id(&a),
        "release",
        Some(json!({"token": token(&t2)})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (released["status"].clone(), released["attempts"].clone()),
        (json!("queued"), json!(1))
    );
    let cancelled = act(&app, &id(&a), "cancel", None, StatusCode::OK).await;
    assert_eq!(cancelled["status"], "cancelled");
    let err = act(&app, &id(&a), "cancel", None, StatusCode::CONFLICT).await;
    assert_eq!(err["status"], "cancelled");
    act(
        &app,
        &id(&a),
        "release",
        Some(json!({"token": token(&t2)})),
        StatusCode::CONFLICT,
    )
    .await;
    let retried = act(&app, &id(&a), "retry", None, StatusCode::OK).await;
    assert_eq!(
        (retried["status"].clone(), retried["attempts"].clone()),
        (json!("queued"), json!(0))
    );
    act(&app, &id(&a), "retry", None, StatusCode::CONFLICT).await;
    let t3 = claim(&app, &h, q, json!({})).await;
    let done = act(
        &app,
        &id(&a),
        "complete",
        Some(json!({"token": token(&t3), "result": {"ok": [1]}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            done["status"].clone(),
            done["result"].clone(),
            done["lease"].clone()
        ),
        (json!("done"), json!({"ok": [1]}), Value::Null)
    );
    assert_eq!(
        app.get_json(&format!("/api/tasks/{}", id(&a))).await,
        done,
        "finished tasks are read back"
    );

    let topics: Vec<String> = events_of(&app, &id(&a))
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        topics,
        [
            "task.created",
            "task.leased",
            "task.failed",
            "task.leased",
            "task.released",
            "task.cancelled",
            "task.created",
            "task.leased",
            "task.completed"
        ]
    );
    let finished = app
        .get_json("/api/events/history?topic=task.group.finished")
        .await;
    assert_eq!(
        finished.as_array().unwrap().len(),
        2,
        "finished by the cancel, and again by the complete"
    );
    assert_eq!(finished[0]["data"]["done"], 1);

    let audit = app.get_json("/api/audit?limit=100").await;
    let mut actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"] == id(&a).as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.reverse();
    assert_eq!(
        actions,
        [
            "task.create",
            "task.claim",
            "task.renew",
            "task.fail",
            "task.claim",
            "task.release",
            "task.cancel",
            "task.retry",
            "task.claim",
            "task.complete"
        ]
    );
}

#[actix_web::test]
async fn list_filters_stats_and_claim_order() {
    let app = TestApp::spawn().await;
    let rust = holder(&app, "rusty", &["rust"]).await;
    let plain = holder(&app, "plain", &[]).await;
    let q = "order";
    let low = create(&app, q, json!({"priority": 0})).await;
    let high = create(
        &app,
        q,
        json!({"priority": 9, "requires": ["rust"], "group": "g"}),
    )
    .await;
    let mid = create(&app, q, json!({"priority": 5, "group": "g"})).await;
    let _late = create(&app, q, json!({"priority": 9, "delay_seconds": 60})).await;
    assert_eq!(
        id(&claim(&app, &plain, q, json!({})).await),
        id(&mid),
        "skips what it cannot do"
    );
    assert_eq!(id(&claim(&app, &rust, q, json!({})).await), id(&high));
    assert_eq!(id(&claim(&app, &rust, q, json!({})).await), id(&low));
    assert_eq!(
        claim(&app, &rust, q, json!({})).await,
        Value::Null,
        "the delayed task waits"
    );

    let ids = |v: Value| v.as_array().unwrap().iter().map(id).collect::<Vec<_>>();
    assert_eq!(
        ids(app.get_json(&format!("/api/tasks?queue={q}&limit=2")).await).len(),
        2
    );
    assert_eq!(
        ids(app.get_json(&format!("/api/tasks?holder={rust}")).await),
        [id(&high), id(&low)]
    );
    assert_eq!(
        ids(app.get_json("/api/tasks?group=g&status=leased").await),
        [id(&mid), id(&high)]
    );
    assert_eq!(
        ids(app
            .get_json(&format!("/api/tasks?queue={q}&status=queued"))
            .await)
        .len(),
        1
    );
    assert_error(
        app.get("/api/tasks?status=bogus").await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let stats = app.get_json(&format!("/api/tasks/stats?queue={q}")).await;
    assert_eq!(
        (stats["queued"].clone(), stats["leased"].clone()),
        (json!(1), json!(3))
    );
    assert_eq!(
        stats["oldest_queued_age_seconds"],
        Value::Null,
        "the only queued task is not claimable yet"
    );
    create(&app, "other", json!({})).await;
    let all = app.get_json("/api/tasks/stats").await;
    assert_eq!(all["queued"], 2);
    assert!(all["oldest_queued_age_seconds"].as_f64().unwrap() >= 0.0);
    let group = app.get_json("/api/tasks/groups/g").await;
    assert_eq!(
        (
            group["total"].clone(),
            group["leased"].clone(),
            group["finished"].clone()
        ),
        (json!(2), json!(2), json!(false))
    );
    assert_error(
        app.get("/api/tasks/groups/none").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        app.get("/api/tasks/groups/none/wait?timeout=0").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        app.get("/api/tasks/groups/g/wait?timeout=61").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_error(
        app.get("/api/tasks/groups/g/wait?timeout=soon").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[actix_web::test]
async fn claims_check_the_holder_and_their_bounds() {
    let app = TestApp::spawn().await;
    let h = holder(&app, "me", &[]).await;
    create(&app, "c", json!({})).await;
    for body in [
        json!({"queue": "c"}),
        json!({"holder": h, "queue": "c", "lease_seconds": 0.5}),
        json!({"holder": h, "queue": "c", "wait_seconds": 60.5}),
        json!({"holder": h, "queue": ""}),
        json!({"holder": 5, "queue": "c"}),
    ] {
        let resp = app
            .request(Method::POST, "/api/tasks/claim")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    let resp = app
        .request(Method::POST, "/api/tasks/claim")
        .json(&json!({"holder": "no-such-instance", "queue": "c"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::NOT_FOUND).await;
    // Without `holder`, the agent the request names claims for itself.
    let resp = app
        .request(Method::POST, "/api/tasks/claim")
        .header("X-Koor-Instance", h.as_str())
        .json(&json!({"queue": "c", "lease_seconds": 1.5}))
        .send()
        .await
        .unwrap();
    let body = assert_json(resp, StatusCode::OK).await;
    assert_eq!(body["task"]["lease"]["holder"], h.as_str());
}

#[actix_web::test]
async fn passed_leases_read_as_expired_then_requeue_and_die_with_events() {
    let app = TestApp::spawn().await;
    let h = holder(&app, "slow", &[]).await;
    let t = create(&app, "exp", json!({"max_attempts": 2})).await;
    let c1 = claim(&app, &h, "exp", json!({"lease_seconds": 1})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Not held any more, whether or not the expiry is written yet.
    let seen = app.get_json(&format!("/api/tasks/{}", id(&t))).await;
    assert_eq!(
        (seen["status"].clone(), seen["lease"].clone()),
        (json!("queued"), Value::Null)
    );
    act(
        &app,
        &id(&t),
        "complete",
        Some(json!({"token": token(&c1)})),
        StatusCode::CONFLICT,
    )
    .await;
    let c2 = claim(&app, &h, "exp", json!({"lease_seconds": 1})).await;
    assert_eq!((id(&c2), c2["attempts"].clone()), (id(&t), json!(2)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.get_json(&format!("/api/tasks/{}", id(&t))).await["status"],
        "dead"
    );
    let tid = id(&t);
    wait_for("the expiry events", || async {
        events_of(&app, &tid)
            .await
            .iter()
            .filter(|(t, _)| t.as_str() == "task.dead")
            .count()
            == 1
    })
    .await;
    let events = events_of(&app, &tid).await;
    let topics: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        [
            "task.created",
            "task.leased",
            "task.expired",
            "task.leased",
            "task.expired",
            "task.dead"
        ]
    );
    assert_eq!(events[2].1["holder"], h.as_str());
    assert_eq!(events[2].1["status"], "queued");
    assert_eq!(events[5].1["status"], "dead");
    assert_eq!(app.get_json("/api/tasks/stats?queue=exp").await["dead"], 1);
}

#[actix_web::test]
async fn a_lost_holder_gives_its_tasks_back_at_once() {
    let app = TestApp::spawn_with(|c| {
        c.stale_after = Duration::from_millis(200);
        c.liveness_interval = None;
    })
    .await;
    let gone = holder(&app, "gone", &[]).await;
    let quiet = app.active_instance("quiet").await;
    let a = create(&app, "lost", json!({})).await;
    let b = create(&app, "lost", json!({"max_attempts": 1})).await;
    claim(&app, &gone, "lost", json!({"lease_seconds": 3600})).await;
    claim(&app, &quiet, "lost", json!({"lease_seconds": 3600})).await;
    app.request(Method::DELETE, &format!("/api/instances/{gone}"))
        .send()
        .await
        .unwrap();
    let (ia, ib) = (id(&a), id(&b));
    wait_for("the deregistered holder's task to be queued", || async {
        app.get_json(&format!("/api/tasks/{ia}")).await["status"] == "queued"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.post("/api/liveness/check", None, StatusCode::OK).await;
    wait_for("the stale holder's task to die", || async {
        app.get_json(&format!("/api/tasks/{ib}")).await["status"] == "dead"
    })
    .await;
    let events = events_of(&app, &ib).await;
    let tail: Vec<&str> = events
        .iter()
        .rev()
        .take(2)
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(tail, ["task.dead", "task.expired"]);
    assert_eq!(events.last().unwrap().1["holder"], quiet.as_str());
}

#[actix_web::test]
async fn long_poll_claims_wake_on_create_release_and_backoff() {
    let app = Arc::new(TestApp::spawn().await);
    let h = holder(&app, "poller", &[]).await;
    let poll = |wait: f64| {
        let (app, h) = (app.clone(), h.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let t = claim(&app, &h, "lp", json!({"wait_seconds": wait})).await;
            (t, started.elapsed())
        })
    };
    // Nothing comes: null at the end of the wait.
    let (t, took) = poll(0.5).await.unwrap();
    assert_eq!(t, Value::Null);
    assert!(took >= Duration::from_millis(450), "{took:?}");
    // Woken by a create.
    let waiting = poll(10.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let made = create(&app, "lp", json!({})).await;
    let (t, took) = waiting.await.unwrap();
    assert_eq!(id(&t), id(&made));
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Woken by a release.
    let waiting = poll(10.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    act(
        &app,
        &id(&t),
        "release",
        Some(json!({"token": token(&t)})),
        StatusCode::OK,
    )
    .await;
    let (t, _) = waiting.await.unwrap();
    assert_eq!(id(&t), id(&made));
    // Woken when a backoff passes.
    act(
        &app,
        &id(&t),
        "fail",
        Some(json!({"token": token(&t), "error": "e", "retry_after_seconds": 0.5})),
        StatusCode::OK,
    )
    .await;
    let (t, took) = poll(10.0).await.unwrap();
    assert_eq!((id(&t), t["attempts"].clone()), (id(&made), json!(2)));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Many waiters, a few tasks: each task wakes one waiter, the rest time out.
    let waiters: Vec<_> = (0..6).map(|_| poll(1.5)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        create(&app, "lp", json!({})).await;
    }
    let mut got = 0;
    for w in waiters {
        if w.await.unwrap().0 != Value::Null {
            got += 1;
        }
    }
    assert_eq!(got, 3);
}

#[actix_web::test]
async fn a_group_wait_answers_when_the_last_task_finishes() {
    let app = Arc::new(TestApp::spawn().await);
    let h = holder(&app, "fan", &[]).await;
    for _ in 0..3 {
        create(&app, "fan", json!({"group": "batch-7"})).await;
    }
    let waiter = {
        let app = app.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let body = app
                .get_json("/api/tasks/groups/batch-7/wait?timeout=20")
                .await;
            (body, started.elapsed())
        })
    };
    for _ in 0..3 {
        let t = claim(&app, &h, "fan", json!({})).await;
        act(
            &app,
            &id(&t),
            "complete",
            Some(json!({"token": token(&t)})),
            StatusCode::OK,
        )
        .await;
    }
    let (body, took) = waiter.await.unwrap();
    assert_eq!(
        (
            body["finished"].clone(),
            body["done"].clone(),
            body["total"].clone()
        ),
        (json!(true), json!(3), json!(3))
    );
    assert!(took < Duration::from_secs(10));
    let finished = app
        .get_json("/api/events/history?topic=task.group.finished")
        .await;
    assert_eq!(finished.as_array().unwrap().len(), 1);
    assert_eq!(finished[0]["data"], body);
}

#[actix_web::test]
async fn sixteen_claimers_over_a_thousand_tasks_complete_each_exactly_once() {
    let app = Arc::new(TestApp::spawn().await);
    const TASKS: usize = 1000;
    const WORKERS: usize = 16;
    for chunk in 0..(TASKS / 100) {
        let creates = (0..100).map(|i| {
            let app = app.clone();
            async move { create(&app, "many", json!({"payload": chunk * 100 + i})).await }
        });
        futures_util::future::join_all(creates).await;
    }
    let mut holders = Vec::new();
    for w in 0..WORKERS {
        holders.push(holder(&app, &format!("w{w}"), &[]).await);
    }
    // Who holds each task right now, every token seen, and completions per task.
    let held: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let tokens: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let completed: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let workers = holders.into_iter().map(|h| {
        let (app, held, tokens, completed) =
            (app.clone(), held.clone(), tokens.clone(), completed.clone());
        tokio::spawn(async move {
            loop {
                let t = claim(&app, &h, "many", json!({})).await;
                if t.is_null() {
                    return;
                }
                let tid = id(&t);
                assert!(
                    tokens.lock().unwrap().insert(token(&t)),
                    "a token handed out twice"
                );
                if let Some(other) = held.lock().unwrap().insert(tid.clone(), h.clone()) {
                    panic!("task {tid} leased to {h} while {other} holds it");
                }
                act(
                    &app,
                    &tid,
                    "complete",
                    Some(json!({"token": token(&t), "result": h})),
                    StatusCode::OK,
                )
                .await;
                // Held from the claim's answer to the completion's.
                held.lock().unwrap().remove(&tid);
                *completed.lock().unwrap().entry(tid).or_default() += 1;
            }
        })
    });
    for w in futures_util::future::join_all(workers).await {
        w.unwrap();
    }
    let completed = completed.lock().unwrap().clone();
    assert_eq!(completed.len(), TASKS);
    assert!(completed.values().all(|n| *n == 1));
    let stats = app.get_json("/api/tasks/stats?queue=many").await;
    assert_eq!(
        (
            stats["done"].clone(),
            stats["queued"].clone(),
            stats["leased"].clone()
        ),
        (json!(TASKS), json!(0), json!(0))
    );
    let leased = app
        .get_json("/api/events/history?topic=task.leased&last=5000")
        .await;
    assert_eq!(
        leased.as_array().unwrap().len(),
        TASKS,
        "one lease per task"
    );
}

#[actix_web::test]
async fn claim_tokens_fence_state_writes_of_a_lease_that_was_taken_over() {
    let app = TestApp::spawn().await;
    let slow = holder(&app, "slow", &[]).await;
    let fast = holder(&app, "fast", &[]).await;
    let t = create(&app, "fence", json!({})).await;
    let old = claim(&app, &slow, "fence", json!({"lease_seconds": 1})).await;
    let put = |token: i64, body: &'static str| {
        app.request(Method::PUT, "/api/state/fence/out")
            .header("Koor-Fencing-Token", token.to_string())
            .body(body)
            .send()
    };
    assert_json(
        put(token(&old), "{\"by\":\"slow\"}").await.unwrap(),
        StatusCode::OK,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = claim(&app, &fast, "fence", json!({})).await;
    assert_eq!(id(&new), id(&t));
    assert!(token(&new) > token(&old));
    assert_json(
        put(token(&new), "{\"by\":\"fast\"}").await.unwrap(),
        StatusCode::OK,
    )
    .await;
    // The old holder wakes up and writes: refused, nothing stored.
    let err = assert_error(
        put(token(&old), "{\"by\":\"slow\",\"late\":true}")
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(err["highest_token"], token(&new));
    assert_eq!(
        app.get("/api/state/fence/out").await.text().await.unwrap(),
        "{\"by\":\"fast\"}"
    );
    act(
        &app,
        &id(&t),
        "complete",
        Some(json!({"token": token(&old)})),
        StatusCode::CONFLICT,
    )
    .await;
    act(
        &app,
        &id(&t),
        "complete",
        Some(json!({"token": token(&new)})),
        StatusCode::OK,
    )
    .await;
}

/// A raw client of a `koor serve` child process.
struct Remote {
    client: reqwest::Client,
    base: String,
}

impl Remote {
    fn new(server: &ServerProcess) -> Remote {
        Remote {
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: server.url(""),
        }
    }

    /// `None` when the server did not answer (killed).
    async fn post(&self, path: &str, body: Value) -> Option<(StatusCode, Value)> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .ok()?;
        let status = resp.status();
        Some((status, resp.json().await.ok()?))
    }

    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[actix_web::test]
async fn kill_9_while_claiming_and_completing_loses_no_acknowledged_transition() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]).await;
    let api = Remote::new(&server);
    let register = |name: &'static str| {
        let api = &api;
        async move {
            let (_, reg) = api
                .post("/api/instances/register", json!({"name": name}))
                .await
                .unwrap();
            reg["id"].as_str().unwrap().to_string()
        }
    };
    let (a, b, c) = (
        register("a").await,
        register("b").await,
        register("c").await,
    );
    const TASKS: usize = 300;
    let creates = (0..TASKS).map(|i| {
        api.post(
            "/api/tasks",
            json!({"queue": "crash", "payload": i, "lease_seconds": 2}),
        )
    });
    let created: Vec<String> = futures_util::future::join_all(creates)
        .await
        .into_iter()
        .map(|r| r.unwrap().1["id"].as_str().unwrap().to_string())
        .collect();
    // Interrupted leases: claimed by `a` and never finished.
    let mut interrupted: HashMap<String, Value> = HashMap::new();
    for _ in 0..5 {
        let (_, body) = api
            .post(
                "/api/tasks/claim",
                json!({"holder": a, "queue": "crash", "lease_seconds": 3}),
            )
            .await
            .unwrap();
        interrupted.insert(id(&body["task"]), body["task"]["lease"].clone());
    }
    // Four workers claim and complete until the server dies under them.
    let acked: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let max_token = Arc::new(Mutex::new(0i64));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (api, acked, max_token, b) = (
                Remote::new(&server),
                acked.clone(),
                max_token.clone(),
                b.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let Some((StatusCode::OK, body)) = api
                        .post("/api/tasks/claim", json!({"holder": b, "queue": "crash"}))
                        .await
                    else {
                        return;
                    };
                    let t = &body["task"];
                    if t.is_null() {
                        return;
                    }
                    let tok = token(t);
                    {
                        let mut m = max_token.lock().unwrap();
                        *m = (*m).max(tok);
                    }
                    let result = json!({"worker": w, "token": tok});
                    match api
                        .post(
                            &format!("/api/tasks/{}/complete", id(t)),
                            json!({"token": tok, "result": result}),
                        )
                        .await
                    {
                        Some((StatusCode::OK, done)) => {
                            assert_eq!(done["status"], "done");
                            acked.lock().unwrap().insert(id(t), tok);
                        }
                        Some((status, body)) => panic!("complete answered {status}: {body}"),
                        None => return,
                    }
                }
            })
        })
        .collect();
    wait_for("some completions", || async {
        acked.lock().unwrap().len() >= 30
    })
    .await;
    server.child.start_kill().unwrap(); // SIGKILL, in the middle of claims and completions
    server.child.wait().await.unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let max_token = *max_token.lock().unwrap();
    assert!(
        acked.len() >= 30 && acked.len() < TASKS - 5,
        "{}",
        acked.len()
    );

    let server = ServerProcess::start(dir.path(), &[]).await;
    let api = Remote::new(&server);
    for tid in &created {
        let t = api.get(&format!("/api/tasks/{tid}")).await;
        assert_eq!(&t["id"], tid, "every acknowledged task is still there");
    }
    for (tid, tok) in &acked {
        let t = api.get(&format!("/api/tasks/{tid}")).await;
        assert_eq!(t["status"], "done", "{tid}");
        assert_eq!(t["result"]["token"], *tok, "{tid}");
    }
    for (tid, lease) in &interrupted {
        let t = api.get(&format!("/api/tasks/{tid}")).await;
        if t["status"] == "leased" {
            assert_eq!(
                &t["lease"], lease,
                "a lease keeps holder, token and expires_at"
            );
        }
    }
    // Someone else finishes everything left, the interrupted leases once they expire.
    let mut finished_by_c = HashSet::new();
    loop {
        let stats = api.get("/api/tasks/stats?queue=crash").await;
        if stats["done"] == TASKS {
            break;
        }
        let (status, body) = api
            .post(
                "/api/tasks/claim",
                json!({"holder": c, "queue": "crash", "wait_seconds": 5}),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let t = &body["task"];
        assert!(!t.is_null(), "nothing claimable while {stats} are not done");
        assert!(
            token(t) > max_token,
            "tokens keep growing across the restart"
        );
        let tid = id(t);
        assert!(
            !acked.contains_key(&tid),
            "an acknowledged completion is claimed again: {tid}"
        );
        let (status, _) = api
            .post(
                &format!("/api/tasks/{tid}/complete"),
                json!({"token": token(t), "result": "c"}),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(finished_by_c.insert(tid));
    }
    assert!(
        interrupted.keys().all(|t| finished_by_c.contains(t)),
        "interrupted leases expire and are taken over"
    );
    // Exactly one completion per task, across the crash.
    let completed = api
        .get("/api/events/history?topic=task.completed&last=1000")
        .await;
    let mut per_task: HashMap<String, usize> = HashMap::new();
    for e in completed.as_array().unwrap() {
        *per_task
            .entry(e["data"]["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_task.len(), TASKS);
    assert!(per_task.values().all(|n| *n == 1), "{per_task:?}");
}

/// Runs `koor ARGS` against `app`.
async fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    koor(&app.address, app.dir.path(), args, None).await
}

fn stdout_json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[actix_web::test]
async fn koor_tasks_commands_and_the_exit_code_of_claim() {
    let app = TestApp::spawn().await;
    let h = holder(&app, "cli", &[]).await;
    let added = stdout_json(
        &cli(
            &app,
            &[
                "tasks",
                "add",
                "--queue",
                "cq",
                "--priority",
                "2",
                "--group",
                "g1",
                "--data",
                "{\"n\":1}",
            ],
        )
        .await,
    );
    assert_eq!(
        (added["payload"].clone(), added["priority"].clone()),
        (json!({"n": 1}), json!(2))
    );
    let tid = id(&added);
    let claimed =
        stdout_json(&cli(&app, &["tasks", "claim", "--queue", "cq", "--holder", &h]).await);
    assert_eq!(id(&claimed), tid);
    let tok = token(&claimed).to_string();
    let empty = cli(&app, &["tasks", "claim", "--queue", "cq", "--holder", &h]).await;
    assert_eq!(empty.status.code(), Some(3), "{empty:?}");
    let renewed = stdout_json(
        &cli(
            &app,
            &["tasks", "renew", &tid, &tok, "--lease-seconds", "90"],
        )
        .await,
    );
    assert_eq!(token(&renewed), token(&claimed));
    let wrong = cli(&app, &["tasks", "complete", &tid, "999999"]).await;
    assert_eq!(wrong.status.code(), Some(1));
    let done = stdout_json(
        &cli(
            &app,
            &["tasks", "complete", &tid, &tok, "--result", "{\"ok\":true}"],
        )
        .await,
    );
    assert_eq!(
        (done["status"].clone(), done["result"].clone()),
        (json!("done"), json!({"ok": true}))
    );
    let got = stdout_json(&cli(&app, &["tasks", "get", &tid]).await);
    assert_eq!(got["status"], "done");
    let listed = stdout_json(&cli(&app, &["tasks", "list", "--queue", "cq", "--json"]).await);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let compact = cli(&app, &["tasks", "list", "--queue", "cq"]).await;
    let text = String::from_utf8_lossy(&compact.stdout).to_string();
    assert!(text.contains(&tid) && text.contains("done"), "{text}");
    let stats = stdout_json(&cli(&app, &["tasks", "stats", "--queue", "cq"]).await);
    assert_eq!(stats["done"], 1);
    let group = stdout_json(&cli(&app, &["tasks", "group", "g1"]).await);
    assert_eq!(group["finished"], true);
    let waited = stdout_json(&cli(&app, &["tasks", "wait", "g1", "--timeout", "1"]).await);
    assert_eq!(waited["finished"], true);

    let second = stdout_json(
        &cli(
            &app,
            &[
                "tasks",
                "add",
                "--queue",
                "cq",
                "--data",
                "2",
                "--max-attempts",
                "1",
            ],
        )
        .await,
    );
    let sid = id(&second);
    let c2 = stdout_json(
        &cli(
            &app,
            &[
                "tasks", "claim", "--queue", "cq", "--holder", &h, "--wait", "1",
            ],
        )
        .await,
    );
    let tok2 = token(&c2).to_string();
    let released = stdout_json(&cli(&app, &["tasks", "release", &sid, &tok2]).await);
    assert_eq!(released["status"], "queued");
    let c3 = stdout_json(&cli(&app, &["tasks", "claim", "--queue", "cq", "--holder", &h]).await);
    let dead = stdout_json(
        &cli(
            &app,
            &[
                "tasks",
                "fail",
                &sid,
                &token(&c3).to_string(),
                "--error",
                "boom",
            ],
        )
        .await,
    );
    assert_eq!(dead["status"], "dead");
    let retried = stdout_json(&cli(&app, &["tasks", "retry", &sid]).await);
    assert_eq!(retried["status"], "queued");
    let cancelled = stdout_json(&cli(&app, &["tasks", "cancel", &sid]).await);
    assert_eq!(cancelled["status"], "cancelled");
    let bad = cli(&app, &["tasks", "add", "--data", "{not json"]).await;
    assert_ne!(bad.status.code(), Some(0));
}

#[actix_web::test]
async fn koor_tasks_work_runs_the_command_for_each_task_and_fails_on_a_non_zero_exit() {
    let app = TestApp::spawn().await;
    let h = holder(&app, "runner", &[]).await;
    let a = create(&app, "work", json!({"payload": {"n": 1}})).await;
    let b = create(&app, "work", json!({"payload": {"text": true}})).await;
    let bad = create(
        &app,
        "work",
        json!({"payload": {"fail": true}, "max_attempts": 1, "priority": -1}),
    )
    .await;
    // Echoes its input (JSON stays JSON, anything else becomes a string); fails on "fail".
    let script = "input=$(cat); case \"$input\" in *fail*) echo broken >&2; exit 4;; *text*) echo not json;; *) echo \"$input\";; esac";
    let out = cli(
        &app,
        &[
            "tasks",
            "work",
            "--queue",
            "work",
            "--holder",
            &h,
            "--wait",
            "1",
            "--exit-when-empty",
            "--",
            "sh",
            "-c",
            script,
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let get = |t: &Value| {
        let path = format!("/api/tasks/{}", id(t));
        let app = &app;
        async move { app.get_json(&path).await }
    };
    let a = get(&a).await;
    assert_eq!(
        (a["status"].clone(), a["result"].clone()),
        (json!("done"), json!({"n": 1}))
    );
    let b = get(&b).await;
    assert_eq!(
        b["result"],
        json!("not json"),
        "output that is not JSON is kept as a string"
    );
    let bad = get(&bad).await;
    assert_eq!(bad["status"], "dead");
    assert!(bad["error"].as_str().unwrap().contains("broken"), "{bad}");
}

#[actix_web::test]
async fn koor_tasks_work_renews_a_long_command_and_releases_on_interrupt() {
    let app = TestApp::spawn().await;
    let h = holder(&app, "long", &[]).await;
    let t = create(&app, "slow", json!({"lease_seconds": 1.5})).await;
    let mut child = tokio::process::Command::new(crate::helpers::koor_bin())
        .args([
            "tasks", "work", "--queue", "slow", "--holder", &h, "--", "sleep", "30",
        ])
        .current_dir(app.dir.path())
        .env("KOOR_SERVER", &app.address)
        .env_remove("KOOR_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let tid = id(&t);
    wait_for("the worker to claim", || async {
        app.get_json(&format!("/api/tasks/{tid}")).await["status"] == "leased"
    })
    .await;
    let first = app.get_json(&format!("/api/tasks/{tid}")).await;
    // Well past the 1.5 s lease: still held, renewed with the same token.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = app.get_json(&format!("/api/tasks/{tid}")).await;
    assert_eq!(later["status"], "leased");
    assert_eq!(token(&later), token(&first));
    assert!(later["lease"]["expires_at"].as_str() > first["lease"]["expires_at"].as_str());
    let pid = child.id().unwrap().to_string();
    let sent = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    let released = app.get_json(&format!("/api/tasks/{tid}")).await;
    assert_eq!(
        (released["status"].clone(), released["attempts"].clone()),
        (json!("queued"), json!(0))
    );
}
