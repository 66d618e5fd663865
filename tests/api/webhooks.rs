//! Webhooks (API §13): deliveries to a fake receiver on 127.0.0.1 — both signatures
//! recomputed independently, retries with a stable `webhook-id`, `Retry-After`, 410 and
//! redirects, per-webhook order, manual retry, the supervisor restarting a panicking
//! dispatcher, pending deliveries surviving `kill -9`, target checks, the write-only
//! secret and the delivery log.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use koor::webhooks::{GetMonitorStats, InjectFault};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{ServerProcess, TestApp, assert_error, assert_json};

/// The longest wait for anything asynchronous (a delivery, a state change).
const WAIT: Duration = Duration::from_secs(10);
/// Pause between two looks while polling.
const POLL: Duration = Duration::from_millis(50);
/// A Standard Webhooks secret (the specification's example).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// ---------------------------------------------------------------------------------------
// The fake receiver
// ---------------------------------------------------------------------------------------

/// One scripted answer of the receiver.
#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// One request the receiver got, and what it answered.
#[derive(Debug)]
struct Recorded {
    method: String,
    /// Lowercase names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    answered: u16,
    at: Instant,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn event_id(&self) -> i64 {
        self.json()["event_id"].as_i64().unwrap()
    }

    /// The Standard Webhooks message id, the same on every attempt of a delivery.
    fn message_id(&self) -> &str {
        self.header("webhook-id").expect("a webhook-id header")
    }
}

#[derive(Clone)]
struct ReceiverState {
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: mpsc::UnboundedSender<Recorded>,
}

/// Records every request and answers the next scripted reply (200 when the script is empty).
async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<ReceiverState>,
) -> HttpResponse {
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::status(200));
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let _ = state.seen.send(Recorded {
        method: req.method().to_string(),
        headers,
        body: body.to_vec(),
        answered: reply.status,
        at: Instant::now(),
    });
    let mut resp =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in &reply.headers {
        resp.insert_header((name.as_str(), value.as_str()));
    }
    resp.finish()
}

/// An HTTP server on 127.0.0.1 standing in for a webhook receiver.
struct Receiver {
    /// The URL to register as the webhook's target.
    url: String,
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: mpsc::UnboundedReceiver<Recorded>,
}

impl Receiver {
    /// A receiver answering `script` in order, then 200.
    async fn start(script: Vec<Reply>) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (tx, seen) = mpsc::unbounded_channel();
        let state = web::Data::new(ReceiverState {
            script: script.clone(),
            seen: tx,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            script,
            seen,
        }
    }

    /// A receiver on 127.0.0.1 speaking HTTPS with `tls`, always answering 200; its URL
    /// names `host` (which the certificate of `tls` should name).
    async fn tls(tls: rustls::ServerConfig, host: &str) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, seen) = mpsc::unbounded_channel();
        let state = web::Data::new(ReceiverState {
            script: script.clone(),
            seen: tx,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen_rustls_0_23(listener, tls)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Receiver {
            url: format!("https://{host}:{port}/hook"),
            script,
            seen,
        }
    }

    /// A receiver that always answers 200.
    async fn ok() -> Receiver {
        Self::start(Vec::new()).await
    }

    /// Replaces what is left of the script.
    fn rescript(&self, script: Vec<Reply>) {
        *self.script.lock().unwrap() = VecDeque::from(script);
    }

    /// The next request, within 10 s.
    async fn next(&mut self) -> Recorded {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("a request to the receiver within 10 s")
            .expect("the receiver is running")
    }

    /// Asserts that no request arrives within `window`.
    async fn assert_silent_for(&mut self, window: Duration) {
        if let Ok(Some(r)) = tokio::time::timeout(window, self.seen.recv()).await {
            panic!("unexpected request to the receiver: {}", r.text());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Retries 200 ms apart, at most three attempts.
fn fast_retries() -> Vec<Duration> {
    vec![
        Duration::ZERO,
        Duration::from_millis(200),
        Duration::from_millis(200),
    ]
}

/// A server whose webhooks retry after 200 ms.
async fn spawn_fast() -> TestApp {
    TestApp::spawn_with(|c| c.webhook_retry_schedule = fast_retries()).await
}

/// Registers webhook `id`; returns the created object.
async fn create_hook(app: &TestApp, id: &str, url: &str, patterns: &[&str], secret: &str) -> Value {
    let body = json!({"id": id, "url": url, "patterns": patterns, "secret": secret});
    app.post("/api/webhooks", Some(body), StatusCode::OK).await
}

/// `POST /api/webhooks` with `body`, expecting a JSON error with `status`.
async fn create_refused(app: &TestApp, body: Value, status: StatusCode) -> Value {
    let resp = app
        .request(Method::POST, "/api/webhooks")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(resp, status).await
}

/// Webhook `id` as `GET /api/webhooks` shows it.
async fn hook(app: &TestApp, id: &str) -> Value {
    app.get_json("/api/webhooks")
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("webhook {id} is listed"))
}

/// The delivery log of webhook `id`, newest first.
async fn deliveries(app: &TestApp, id: &str) -> Vec<Value> {
    app.get_json(&format!("/api/webhooks/{id}/deliveries"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// Polls `probe` until it answers `Some` (bounded by [`WAIT`]).
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the newest delivery of webhook `id` is in `state` (the outcome of an
/// attempt is recorded just after the receiver answers); returns it.
async fn newest_delivery_in(app: &TestApp, id: &str, state: &str) -> Value {
    eventually(&format!("a {state} delivery of {id}"), async || {
        let newest = deliveries(app, id).await.into_iter().next()?;
        (newest["state"] == state).then_some(newest)
    })
    .await
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------------------------------
// Delivery and signatures
// ---------------------------------------------------------------------------------------

#[actix_web::test]
async fn deliveries_carry_both_signatures_computed_independently() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::ok().await;
    create_hook(&app, "signed", &receiver.url, &["deploy.*"], SECRET).await;

    // Not matching: never delivered, so the first request is the matching event.
    app.publish("build.done", json!({"ignored": true})).await;
    let event = app
        .publish("deploy.done", json!({"service": "api", "n": 7}))
        .await;
    let got = receiver.next().await;

    assert_eq!(got.method, "POST");
    let want = json!({
        "topic": "deploy.done",
        "data": {"service": "api", "n": 7},
        "source": "",
        "event_id": event["id"],
        "created_at": event["created_at"],
    });
    assert_eq!(got.text(), want.to_string(), "compact JSON in field order");
    assert!(
        got.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{:?}",
        got.headers
    );
    assert_eq!(got.header("x-koor-event"), Some("true"));

    // Koor's signature: lowercase hex HMAC-SHA256 keyed by the secret string's bytes.
    let koor = hex::encode(hmac_sha256(SECRET.as_bytes(), &got.body));
    assert_eq!(got.header("x-koor-signature"), Some(koor.as_str()));
    assert_eq!(koor.len(), 64);

    // Standard Webhooks: keyed by the base64-decoded secret, over "{id}.{timestamp}.{body}".
    let message_id = got.message_id();
    assert!(message_id.starts_with("msg_"), "{message_id}");
    let timestamp = got.header("webhook-timestamp").unwrap();
    let sent_at: i64 = timestamp.parse().unwrap();
    assert!((unix_now() - sent_at).abs() <= 60, "timestamp {sent_at}");
    let key = STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut signed = format!("{message_id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&got.body);
    let standard = format!("v1,{}", STANDARD.encode(hmac_sha256(&key, &signed)));
    assert_eq!(got.header("webhook-signature"), Some(standard.as_str()));
}

#[actix_web::test]
async fn a_webhook_without_a_secret_gets_unsigned_deliveries() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::ok().await;
    create_hook(&app, "plain", &receiver.url, &["deploy.*"], "").await;
    app.publish("deploy.done", json!(null)).await;
    let got = receiver.next().await;
    assert_eq!(got.header("x-koor-event"), Some("true"));
    assert!(
        got.header("x-koor-signature").is_none(),
        "{:?}",
        got.headers
    );
    assert!(
        got.header("webhook-signature").is_none(),
        "{:?}",
        got.headers
    );
    assert!(got.message_id().starts_with("msg_"));
}

#[actix_web::test]
async fn events_are_delivered_in_order_per_webhook() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::ok().await;
    create_hook(&app, "ordered", &receiver.url, &["order.*"], "").await;
    let mut published = Vec::new();
    for n in 0..20 {
        let event = app.publish(&format!("order.e{n}"), json!({"n": n})).await;
        published.push(event["id"].as_i64().unwrap());
    }
    let mut received = Vec::new();
    for _ in 0..20 {
        received.push(receiver.next().await.event_id());
    }
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {received:?}"
    );
    assert_eq!(received, published);
}

// ---------------------------------------------------------------------------------------
// Retries and failures
// ---------------------------------------------------------------------------------------

#[actix_web::test]
async fn a_500_is_retried_with_the_same_webhook_id_then_delivered() {
    let app = spawn_fast().await;
    let mut receiver = Receiver::start(vec![Reply::status(500), Reply::status(200)]).await;
    create_hook(&app, "flaky", &receiver.url, &["deploy.*"], SECRET).await;
    app.publish("deploy.done", json!({"try": 1})).await;

    let first = receiver.next().await;
    let second = receiver.next().await;
    assert_eq!((first.answered, second.answered), (500, 200));
    assert_eq!(first.message_id(), second.message_id());
    assert_eq!(first.body, second.body, "identical body on every attempt");

    let delivery = newest_delivery_in(&app, "flaky", "delivered").await;
    assert_eq!(deliveries(&app, "flaky").await.len(), 1);
    assert_eq!(delivery["attempts"], 2, "{delivery}");
    assert_eq!(delivery["last_status"], 200, "{delivery}");
    assert_eq!(delivery["message_id"], first.message_id(), "{delivery}");
    let hook = hook(&app, "flaky").await;
    assert_eq!(hook["fail_count"], 0, "{hook}");
    assert!(hook["last_fired"].is_string(), "{hook}");
    assert_eq!(hook["active"], true, "{hook}");
}

#[actix_web::test]
async fn retry_after_is_honoured() {
    let app = spawn_fast().await;
    let mut receiver = Receiver::start(vec![
        Reply::status(503).header("retry-after", "1"),
        Reply::status(200),
    ])
    .await;
    create_hook(&app, "patient", &receiver.url, &["deploy.*"], "").await;
    app.publish("deploy.done", json!(1)).await;

    let first = receiver.next().await;
    let second = receiver.next().await;
    assert_eq!((first.answered, second.answered), (503, 200));
    let gap = second.at.duration_since(first.at);
    assert!(
        gap >= Duration::from_millis(900),
        "retried after {gap:?} although the receiver asked for 1 s"
    );
    assert_eq!(first.message_id(), second.message_id());
}

#[actix_web::test]
async fn a_410_disables_the_webhook_at_once() {
    let app = spawn_fast().await;
    let mut receiver = Receiver::start(vec![Reply::status(410)]).await;
    create_hook(&app, "gone", &receiver.url, &["deploy.*"], "").await;
    app.publish("deploy.one", json!(1)).await;
    assert_eq!(receiver.next().await.answered, 410);

    let disabled = eventually("the webhook to be disabled", async || {
        let h = hook(&app, "gone").await;
        (h["active"] == false).then_some(h)
    })
    .await;
    assert_eq!(disabled["fail_count"], 1, "{disabled}");

    // Inactive: nothing more, not even retries of the first delivery.
    app.publish("deploy.two", json!(2)).await;
    receiver.assert_silent_for(Duration::from_secs(1)).await;
    let log = deliveries(&app, "gone").await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["state"], "failed", "{}", log[0]);
    assert_eq!(log[0]["last_status"], 410, "{}", log[0]);
    assert_eq!(log[0]["attempts"], 1, "{}", log[0]);

    let enabled = app
        .post("/api/webhooks/gone/enable", None, StatusCode::OK)
        .await;
    assert_eq!(enabled["active"], true, "{enabled}");
    assert_eq!(enabled["fail_count"], 0, "{enabled}");
    let listed = hook(&app, "gone").await;
    assert_eq!(listed["active"], true, "{listed}");
    assert_eq!(listed["fail_count"], 0, "{listed}");

    // Enabled again: new events are delivered (the one published while inactive is not).
    let three = app.publish("deploy.three", json!(3)).await;
    let got = receiver.next().await;
    assert_eq!(got.event_id(), three["id"].as_i64().unwrap());
}

#[actix_web::test]
async fn redirects_are_failures_and_not_followed() {
    let app = spawn_fast().await;
    let mut receiver = Receiver::start(Vec::new()).await;
    let elsewhere = format!("{}?redirected=1", receiver.url);
    receiver.rescript(vec![Reply::status(302).header("location", &elsewhere)]);
    create_hook(&app, "moved", &receiver.url, &["deploy.*"], "").await;
    app.publish("deploy.done", json!(1)).await;

    assert_eq!(receiver.next().await.answered, 302);
    let delivery = newest_delivery_in(&app, "moved", "failed").await;
    assert_eq!(delivery["last_status"], 302, "{delivery}");
    assert_eq!(delivery["attempts"], 1, "{delivery}");
    // Neither followed nor retried (a retry would come after 200 ms).
    receiver.assert_silent_for(Duration::from_millis(700)).await;
    assert_eq!(hook(&app, "moved").await["fail_count"], 1);
}

#[actix_web::test]
async fn manual_retry_redelivers_a_failed_delivery() {
    let app = TestApp::spawn_with(|c| c.webhook_retry_schedule = vec![Duration::ZERO]).await;
    let mut receiver = Receiver::start(vec![Reply::status(500), Reply::status(200)]).await;
    create_hook(&app, "manual", &receiver.url, &["deploy.*"], SECRET).await;
    app.publish("deploy.done", json!({"manual": true})).await;

    let first = receiver.next().await;
    assert_eq!(first.answered, 500);
    let failed = newest_delivery_in(&app, "manual", "failed").await;
    assert_eq!(failed["attempts"], 1, "{failed}");
    assert_eq!(failed["last_status"], 500, "{failed}");
    assert!(failed["next_attempt_at"].is_null(), "{failed}");

    let delivery_id = failed["id"].as_i64().unwrap();
    let retried = app
        .post(
            &format!("/api/webhooks/manual/deliveries/{delivery_id}/retry"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(retried["id"], delivery_id, "{retried}");
    assert_eq!(retried["state"], "pending", "{retried}");
    assert!(retried["next_attempt_at"].is_string(), "{retried}");

    let second = receiver.next().await;
    assert_eq!(second.answered, 200);
    assert_eq!(second.message_id(), first.message_id());
    assert_eq!(second.body, first.body);
    let delivered = newest_delivery_in(&app, "manual", "delivered").await;
    assert_eq!(delivered["id"], delivery_id, "{delivered}");
    assert_eq!(delivered["last_status"], 200, "{delivered}");
    assert_eq!(deliveries(&app, "manual").await.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Supervision and durability
// ---------------------------------------------------------------------------------------

#[actix_web::test]
async fn a_panicking_dispatcher_restarts_and_still_delivers() {
    let app = spawn_fast().await;
    let mut receiver = Receiver::ok().await;
    create_hook(&app, "survivor", &receiver.url, &["deploy.*"], "").await;
    let dispatcher = app.domains.webhooks.clone();

    dispatcher.send(InjectFault).await.unwrap();
    let event = app.publish("deploy.done", json!({"after": "panic"})).await;
    // The attempt that panicked is still pending and is made again after the restart.
    let got = receiver.next().await;
    assert_eq!(got.event_id(), event["id"].as_i64().unwrap());
    newest_delivery_in(&app, "survivor", "delivered").await;
    assert_eq!(dispatcher.send(GetMonitorStats).await.unwrap().restarts, 1);

    // The same address keeps working.
    let next = app.publish("deploy.again", json!(2)).await;
    assert_eq!(
        receiver.next().await.event_id(),
        next["id"].as_i64().unwrap()
    );
}

#[actix_web::test]
async fn pending_deliveries_survive_kill_9() {
    let mut receiver = Receiver::start(vec![Reply::status(500); 20]).await;
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--webhook-retry-schedule",
        "0,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3",
    ];
    let mut server = ServerProcess::start(dir.path(), &args).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let resp = client
        .post(server.url("/api/webhooks"))
        .json(&json!({"id": "durable", "url": receiver.url, "patterns": ["deploy.*"], "secret": SECRET}))
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
    let resp = client
        .post(server.url("/api/events/publish"))
        .json(&json!({"topic": "deploy.done", "data": {"durable": true}}))
        .send()
        .await
        .unwrap();
    let event = assert_json(resp, StatusCode::OK).await;

    let first = receiver.next().await;
    assert_eq!(first.answered, 500);
    assert_eq!(first.json()["event_id"], event["id"]);
    server.child.kill().await.unwrap(); // SIGKILL
    receiver.rescript(Vec::new());

    let server = ServerProcess::start(dir.path(), &args).await;
    // Attempts that were answered 500 before the kill may still be queued: every attempt,
    // before and after the restart, is the same message.
    let delivered = loop {
        let got = receiver.next().await;
        assert_eq!(got.message_id(), first.message_id());
        assert_eq!(got.body, first.body);
        if got.answered == 200 {
            break got;
        }
    };
    assert!(delivered.header("webhook-signature").is_some());

    let log_url = server.url("/api/webhooks/durable/deliveries");
    let entry = eventually("the delivery to be recorded as delivered", async || {
        let log: Value = client.get(&log_url).send().await.ok()?.json().await.ok()?;
        let newest = log.get(0)?.clone();
        (newest["state"] == "delivered").then_some(newest)
    })
    .await;
    assert_eq!(entry["message_id"], first.message_id(), "{entry}");
    assert_eq!(entry["event_id"], event["id"], "{entry}");
    assert_eq!(entry["last_status"], 200, "{entry}");
}

// ---------------------------------------------------------------------------------------
// Registration, secrecy and the delivery log
// ---------------------------------------------------------------------------------------

#[actix_web::test]
async fn link_local_targets_are_refused_and_private_ones_with_the_option() {
    let app = TestApp::spawn().await;
    let metadata = json!({"id": "metadata", "url": "http://169.254.169.254/x"});
    create_refused(&app, metadata, StatusCode::BAD_REQUEST).await;
    // Loopback is allowed by default (every other test relies on it).
    create_hook(&app, "loop", "http://127.0.0.1:9/x", &[], "").await;

    let strict = TestApp::spawn_with(|c| c.webhook_block_private = true).await;
    for url in ["http://127.0.0.1:9/x", "http://localhost:9/x"] {
        let body = json!({"id": "private", "url": url});
        create_refused(&strict, body, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(strict.get_json("/api/webhooks").await, json!([]));
}

#[actix_web::test]
async fn the_secret_is_never_returned() {
    let app = TestApp::spawn().await;
    let secret = "s3cr3t-that-must-never-leak";
    let created = create_hook(&app, "quiet", "http://127.0.0.1:9/x", &["a.*"], secret).await;
    let listed = app.get_json("/api/webhooks").await;
    let hooks = listed.as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    for shown in [&created, &hooks[0]] {
        assert!(!shown.to_string().contains(secret), "{shown}");
        assert!(shown.get("secret").is_none(), "{shown}");
        assert_eq!(shown["id"], "quiet");
        assert_eq!(shown["patterns"], json!(["a.*"]));
    }
}

#[actix_web::test]
async fn delivery_log_and_retry_errors() {
    let app = TestApp::spawn().await;
    let resp = app.get("/api/webhooks/nobody/deliveries").await;
    assert_error(resp, StatusCode::NOT_FOUND).await;
    let resp = app
        .request(Method::POST, "/api/webhooks/nobody/deliveries/1/retry")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::NOT_FOUND).await;

    let mut receiver = Receiver::ok().await;
    create_hook(&app, "logged", &receiver.url, &["deploy.*"], "").await;
    let resp = app
        .request(Method::POST, "/api/webhooks/logged/deliveries/999999/retry")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::NOT_FOUND).await;
    assert_eq!(deliveries(&app, "logged").await, Vec::<Value>::new());

    let event = app.publish("deploy.logged", json!({"x": 1})).await;
    let got = receiver.next().await;
    let delivery = newest_delivery_in(&app, "logged", "delivered").await;
    let mut keys: Vec<&str> = delivery
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "attempts",
            "created_at",
            "event_id",
            "id",
            "last_error",
            "last_status",
            "message_id",
            "next_attempt_at",
            "state",
            "topic",
            "updated_at",
            "webhook_id",
        ],
        "{delivery}"
    );
    assert!(delivery["id"].is_i64(), "{delivery}");
    assert_eq!(delivery["webhook_id"], "logged");
    assert_eq!(delivery["event_id"], event["id"]);
    assert_eq!(delivery["topic"], "deploy.logged");
    assert_eq!(delivery["message_id"], got.message_id());
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["last_status"], 200);
    assert_eq!(delivery["last_error"], "");
    assert!(delivery["next_attempt_at"].is_null(), "{delivery}");
    assert!(delivery["created_at"].is_string(), "{delivery}");
    assert!(delivery["updated_at"].is_string(), "{delivery}");
    assert!(delivery.get("body").is_none(), "{delivery}");
}

// ---------------------------------------------------------------------------------------
// HTTPS targets
// ---------------------------------------------------------------------------------------

/// A certificate authority made for one test, and the PEM file of its certificate.
pub(crate) struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    pub(crate) pem_file: tempfile::NamedTempFile,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).unwrap();
        let pem_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(pem_file.path(), issuer.pem()).unwrap();
        TestCa { issuer, pem_file }
    }

    /// A server configuration whose certificate, signed by this CA, names `names`.
    pub(crate) fn server_config(&self, names: &[&str]) -> rustls::ServerConfig {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain = vec![cert.der().clone(), self.issuer.der().clone()];
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
    }
}

#[actix_web::test]
async fn https_deliveries_are_verified_against_the_ca_file_and_signed() {
    let ca = TestCa::new("koor test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.pem_file.path().to_str().unwrap();
    let server = ServerProcess::start(
        dir.path(),
        &[
            "--webhook-ca-file",
            ca_file,
            "--webhook-retry-schedule",
            "0",
        ],
    )
    .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    for host in ["localhost", "127.0.0.1"] {
        let mut receiver = Receiver::tls(ca.server_config(&[host]), host).await;
        let id = format!("tls-{}", host.replace('.', "-"));
        let resp = client
            .post(server.url("/api/webhooks"))
            .json(
                &json!({"id": id, "url": receiver.url, "patterns": ["deploy.*"], "secret": SECRET}),
            )
            .send()
            .await
            .unwrap();
        assert_json(resp, StatusCode::OK).await;
        let resp = client
            .post(server.url("/api/events/publish"))
            .json(&json!({"topic": "deploy.done", "data": {"host": host}}))
            .send()
            .await
            .unwrap();
        let event = assert_json(resp, StatusCode::OK).await;

        // Both hooks match; this receiver sees only its own deliveries.
        let got = receiver.next().await;
        assert_eq!(got.json()["event_id"], event["id"], "{host}");
        assert_eq!(got.json()["data"]["host"], host);
        let koor = hex::encode(hmac_sha256(SECRET.as_bytes(), &got.body));
        assert_eq!(
            got.header("x-koor-signature"),
            Some(koor.as_str()),
            "{host}"
        );
        assert!(got.header("webhook-signature").is_some(), "{host}");

        // The synchronous test fire goes over HTTPS too.
        let resp = client
            .post(server.url(&format!("/api/webhooks/{id}/test")))
            .send()
            .await
            .unwrap();
        let tested = assert_json(resp, StatusCode::OK).await;
        assert_eq!(tested["status"], "ok", "{host}");
        assert_eq!(receiver.next().await.json()["topic"], "webhook.test");

        // Stop this hook before the next host's event.
        let resp = client
            .delete(server.url(&format!("/api/webhooks/{id}")))
            .send()
            .await
            .unwrap();
        assert_json(resp, StatusCode::OK).await;
    }
}

#[actix_web::test]
async fn an_untrusted_certificate_is_a_failed_delivery_with_the_reason_logged() {
    let trusted = TestCa::new("trusted CA");
    let stranger = TestCa::new("unknown CA");
    let app = TestApp::spawn_with(|c| {
        c.webhook_retry_schedule = vec![Duration::ZERO];
        c.outgoing_trust = koor::tls::Trust::with_ca_file(trusted.pem_file.path()).unwrap();
    })
    .await;
    let mut receiver = Receiver::tls(stranger.server_config(&["127.0.0.1"]), "127.0.0.1").await;
    create_hook(&app, "untrusted", &receiver.url, &["*"], SECRET).await;
    app.publish("deploy.done", json!({})).await;

    let failed = newest_delivery_in(&app, "untrusted", "failed").await;
    let reason = failed["last_error"].as_str().unwrap().to_ascii_lowercase();
    assert!(reason.contains("certificate"), "{failed}");
    assert_eq!(hook(&app, "untrusted").await["fail_count"], 1);
    // The test fire fails the same way, with a 400 that says why.
    let resp = app
        .request(Method::POST, "/api/webhooks/untrusted/test")
        .send()
        .await
        .unwrap();
    let err = assert_error(resp, StatusCode::BAD_REQUEST).await;
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("certificate"),
        "{err}"
    );
    // Nothing ever reached the receiver, and the server is still healthy.
    receiver.assert_silent_for(Duration::from_millis(200)).await;
    let health = app.get_json("/health").await;
    assert_eq!(health["status"], "ok");
}

#[actix_web::test]
async fn a_certificate_for_another_name_is_refused() {
    let ca = TestCa::new("koor test CA");
    let app = TestApp::spawn_with(|c| {
        c.webhook_retry_schedule = vec![Duration::ZERO];
        c.outgoing_trust = koor::tls::Trust::with_ca_file(ca.pem_file.path()).unwrap();
    })
    .await;
    // Signed by the trusted CA, but for another host than the one in the URL.
    let mut receiver = Receiver::tls(ca.server_config(&["example.test"]), "127.0.0.1").await;
    create_hook(&app, "misnamed", &receiver.url, &["*"], "").await;
    app.publish("deploy.done", json!({})).await;
    let failed = newest_delivery_in(&app, "misnamed", "failed").await;
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("certificate"),
        "{failed}"
    );
    receiver.assert_silent_for(Duration::from_millis(200)).await;
}

#[actix_web::test]
async fn contract_tests_use_the_same_trust_for_https_services() {
    let ca = TestCa::new("koor test CA");
    let contract = json!({"kind": "contract", "version": 1, "endpoints": {
        "DELETE /api/trucks": {"response_status": 200}
    }});
    let mut receiver = Receiver::tls(ca.server_config(&["localhost"]), "localhost").await;
    let base = receiver.url.trim_end_matches("/hook").to_string();
    let request = json!({"endpoint": "DELETE /api/trucks", "base_url": base});

    // Trusted through the CA file: the call goes through and conforms.
    let trusting = TestApp::spawn_with(|c| {
        c.outgoing_trust = koor::tls::Trust::with_ca_file(ca.pem_file.path()).unwrap();
    })
    .await;
    crate::specs::put_spec(&trusting, "fleet", "svc", contract.to_string().as_bytes()).await;
    let path = "/api/contracts/fleet/svc/test";
    let body = trusting
        .post(path, Some(request.clone()), StatusCode::OK)
        .await;
    assert_eq!(body["valid"], true, "{body}");
    assert_eq!(body["status_code"], 200, "{body}");
    assert_eq!(receiver.next().await.method, "DELETE");

    // The system roots alone do not know the CA: invalid, with the reason.
    let plain = TestApp::spawn().await;
    crate::specs::put_spec(&plain, "fleet", "svc", contract.to_string().as_bytes()).await;
    let body = plain.post(path, Some(request), StatusCode::OK).await;
    assert_eq!(body["valid"], false, "{body}");
    let error = body["error"].as_str().unwrap().to_ascii_lowercase();
    assert!(error.contains("certificate"), "{body}");
    receiver.assert_silent_for(Duration::from_millis(200)).await;
}

#[actix_web::test]
async fn the_cli_reaches_an_https_server_trusted_through_the_ca_variable() {
    let ca = TestCa::new("koor test CA");
    // A stand-in for a koor behind a TLS proxy: it answers every request 200.
    let mut receiver = Receiver::tls(ca.server_config(&["localhost"]), "localhost").await;
    let server = receiver.url.trim_end_matches("/hook").to_string();
    let cwd = tempfile::tempdir().unwrap();
    let run = |trust: bool| {
        let mut cmd = tokio::process::Command::new(crate::helpers::koor_bin());
        cmd.args(["--server", &server, "state", "get", "greeting"])
            .current_dir(cwd.path())
            .env_remove("KOOR_TOKEN")
            .env_remove("KOOR_SERVER")
            .env_remove("KOOR_WEBHOOK_CA_FILE");
        if trust {
            cmd.env("KOOR_WEBHOOK_CA_FILE", ca.pem_file.path());
        }
        cmd.output()
    };
    let trusted = run(true).await.unwrap();
    assert!(trusted.status.success(), "{trusted:?}");
    let got = receiver.next().await;
    assert_eq!(got.method, "GET");

    let untrusted = run(false).await.unwrap();
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr).to_ascii_lowercase();
    assert!(stderr.contains("certificate"), "{stderr}");
    receiver.assert_silent_for(Duration::from_millis(200)).await;
}
