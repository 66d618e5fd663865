//! The event bus over REST: publish and history.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_json};

#[actix_web::test]
async fn publish_returns_the_stored_event_and_history_is_newest_first() {
    let app = TestApp::spawn().await;
    let a = app
        .publish("api.change.contract", json!({"b": 1, "a": [1, 2]}))
        .await;
    assert_eq!(a["topic"], "api.change.contract");
    assert_eq!(a["source"], "");
    assert_eq!(a["data"], json!({"b": 1, "a": [1, 2]}));
    assert!(a["created_at"].as_str().unwrap().ends_with('Z'));
    let b = app.publish("test.failed", json!(null)).await;
    assert!(b["id"].as_i64().unwrap() > a["id"].as_i64().unwrap());

    let history = assert_json(app.get("/api/events/history").await, StatusCode::OK).await;
    assert_eq!(history[0], b);
    assert_eq!(history[1], a);
}

#[actix_web::test]
async fn history_filters_apply_before_last() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.publish("api.deploy", json!({"i": i})).await;
        app.publish("test.unit.failed", json!({"i": i})).await;
    }
    let h = assert_json(
        app.get("/api/events/history?topic=api.*&last=2").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(h.as_array().unwrap().len(), 2);
    assert_eq!(h[0]["data"], json!({"i": 4}));
    assert_eq!(h[1]["data"], json!({"i": 3}));
    let h = assert_json(
        app.get("/api/events/history?topic=test.*.failed").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(h.as_array().unwrap().len(), 5);
    let h = assert_json(
        app.get("/api/events/history?topic=nomatch").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(h, json!([]));
    let h = assert_json(
        app.get("/api/events/history?source=state").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(h, json!([]));
    let resp = app.get("/api/events/history?from=yesterday").await;
    crate::helpers::assert_error(resp, StatusCode::BAD_REQUEST).await;
    let h = assert_json(
        app.get("/api/events/history?from=2000-01-01&to=2999-01-01T00:00:00Z")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(h.as_array().unwrap().len(), 10);
    let h = assert_json(
        app.get("/api/events/history?to=2000-01-01").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(h, json!([]));
}

#[actix_web::test]
async fn ids_keep_increasing_across_restarts() {
    let app = TestApp::spawn().await;
    let first = app.publish("a", json!(1)).await["id"].as_i64().unwrap();
    app.stop().await;
    let dir = app.dir.path().to_path_buf();
    let again = TestApp::spawn_with(move |c| c.data_dir = dir).await;
    let second = again.publish("a", json!(2)).await["id"].as_i64().unwrap();
    assert!(second > first);
}

use std::time::{Duration, Instant};

use koor::events::PruneEvents;
use reqwest::Method;

use crate::helpers::{ServerProcess, assert_error, koor_bin, next_json, subscribe};

/// Publishes `n` events on `topic` concurrently and returns their ids.
async fn publish_many(app: &TestApp, topic: &str, n: usize, size: usize) -> Vec<i64> {
    let pad = "p".repeat(size);
    let reqs = (0..n).map(|i| {
        let req = app
            .request(Method::POST, "/api/events/publish")
            .json(&json!({"topic": topic, "data": {"i": i, "pad": pad}}));
        async move {
            let v: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            v["id"].as_i64().unwrap()
        }
    });
    let mut ids = futures_util::future::join_all(reqs).await;
    ids.sort();
    ids
}

#[actix_web::test]
async fn websocket_streams_matching_events_in_publish_order() {
    let app = TestApp::spawn().await;
    let mut ws = subscribe(&app, "pattern=api.*").await;
    // The subscription is live once it has answered its handshake and the bus has it.
    let first = app.publish("api.a", json!(1)).await;
    app.publish("other.x", json!(2)).await;
    let second = app.publish("api.b", json!(3)).await;
    assert_eq!(next_json(&mut ws).await.unwrap(), first);
    assert_eq!(next_json(&mut ws).await.unwrap(), second);
}

#[actix_web::test]
async fn resume_replays_then_goes_live_without_gap_or_duplicate() {
    let app = TestApp::spawn().await;
    let before = publish_many(&app, "t.x", 100, 0).await;
    let cursor = before[49];
    // Publishers keep going while the subscriber replays.
    let background = {
        let client = app.client.clone();
        let url = app.url("/api/events/publish");
        actix_web::rt::spawn(async move {
            for i in 0..300 {
                client
                    .post(&url)
                    .json(&json!({"topic": "t.x", "data": {"late": i}}))
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
    let mut ws = subscribe(&app, &format!("pattern=t.*&after={cursor}")).await;
    background.await.unwrap();
    let fence = app.publish("t.fence", json!(null)).await["id"]
        .as_i64()
        .unwrap();
    let mut got = Vec::new();
    while let Some(event) = next_json(&mut ws).await {
        let id = event["id"].as_i64().unwrap();
        got.push(id);
        if id == fence {
            break;
        }
    }
    let want: Vec<i64> = (cursor + 1..=fence).collect();
    assert_eq!(
        got, want,
        "every event after the cursor exactly once, in order"
    );
}

#[actix_web::test]
async fn a_slow_subscriber_is_told_where_to_resume_and_loses_nothing() {
    let app = TestApp::spawn_with(|c| c.subscriber_buffer = 4).await;
    let mut ws = subscribe(&app, "pattern=*").await;
    // Confirm the subscription is live, then stop reading while a flood jams the socket.
    let probe = app.publish("probe", json!(null)).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap()["id"], probe);
    let ids = publish_many(&app, "flood", 600, 64 * 1024).await;
    let last = *ids.last().unwrap();

    let mut received = Vec::new();
    let resume_after = loop {
        let frame = next_json(&mut ws)
            .await
            .expect("a koor.lagged frame before the close");
        if frame["topic"] == "koor.lagged" {
            break frame["data"]["resume_after"].as_i64().unwrap();
        }
        received.push(frame["id"].as_i64().unwrap());
    };
    assert!(
        received.len() < ids.len(),
        "the subscriber must have lagged"
    );
    assert_eq!(received, (probe + 1..=resume_after).collect::<Vec<_>>());
    assert!(
        next_json(&mut ws).await.is_none(),
        "the socket closes after koor.lagged"
    );

    let mut ws = subscribe(&app, &format!("pattern=*&after={resume_after}")).await;
    let mut rest = Vec::new();
    while rest.last() != Some(&last) {
        rest.push(next_json(&mut ws).await.unwrap()["id"].as_i64().unwrap());
    }
    received.extend(rest);
    assert_eq!(
        received, ids,
        "every event exactly once across the reconnect"
    );
}

#[actix_web::test]
async fn a_cursor_older_than_retention_is_410_naming_the_oldest_id() {
    let app = TestApp::spawn_with(|c| c.event_retention = 5).await;
    let ids = publish_many(&app, "r", 20, 0).await;
    let deleted = app.domains.events.send(PruneEvents).await.unwrap().unwrap();
    assert_eq!(deleted, 15);
    let oldest = ids[15];

    let err = assert_error(
        app.get(&format!("/api/events/history?after={}", ids[0]))
            .await,
        reqwest::StatusCode::GONE,
    )
    .await;
    assert_eq!(err["oldest_id"], oldest);
    let ok = assert_json(
        app.get(&format!("/api/events/history?after={}", oldest - 1))
            .await,
        StatusCode::OK,
    )
    .await;
    let got: Vec<i64> = ok
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, ids[15..]);
    let h = assert_json(app.get("/api/events/history").await, StatusCode::OK).await;
    assert_eq!(h.as_array().unwrap().len(), 5);

    let mut ws = subscribe(&app, &format!("after={}", ids[0])).await;
    let frame = next_json(&mut ws).await.unwrap();
    assert_eq!(frame["code"], 410);
    assert_eq!(frame["oldest_id"], oldest);
    assert!(next_json(&mut ws).await.is_none());
    assert_error(
        app.get("/api/events/history?after=x").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[actix_web::test]
async fn long_poll_returns_early_and_times_out_empty() {
    let app = TestApp::spawn().await;
    let last = app.publish("w.start", json!(null)).await["id"]
        .as_i64()
        .unwrap();

    let started = Instant::now();
    let empty = assert_json(
        app.get(&format!("/api/events/wait?after={last}&timeout=0.3"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(empty, json!([]));
    assert!(started.elapsed() >= Duration::from_millis(300));

    let waiter = {
        let req = app.request(
            Method::GET,
            &format!("/api/events/wait?after={last}&topic=w.hit&timeout=30"),
        );
        actix_web::rt::spawn(async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.publish("w.miss", json!(1)).await;
    let hit = app.publish("w.hit", json!(2)).await;
    let started = Instant::now();
    let got = waiter.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(got, json!([hit]));

    // Events already there are returned at once, oldest first.
    let got = assert_json(
        app.get(&format!("/api/events/wait?after={last}&timeout=30"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got.as_array().unwrap().len(), 2);
    assert_eq!(got[0]["topic"], "w.miss");
    assert_error(
        app.get("/api/events/wait?timeout=soon").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

/// The events `koor events subscribe` prints, one JSON object per line on its stdout.
struct CliEvents(tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>);

impl CliEvents {
    fn of(cli: &mut tokio::process::Child) -> Self {
        use tokio::io::AsyncBufReadExt;
        CliEvents(tokio::io::BufReader::new(cli.stdout.take().unwrap()).lines())
    }

    /// The next event, within 30 s.
    async fn next(&mut self) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.0.next_line())
            .await
            .expect("a line within 30 s")
            .unwrap()
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

#[actix_web::test]
async fn cli_subscriber_resumes_across_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]).await;
    let port = server.port;
    let bind = format!("127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let publish = |n: i64| {
        let client = client.clone();
        let url = format!("http://{bind}/api/events/publish");
        async move {
            let resp = client
                .post(url)
                .json(&json!({"topic": "cli.e", "data": n}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    };
    let mut cli = tokio::process::Command::new(koor_bin())
        .args(["events", "subscribe", "cli.*", "--after", "0"])
        .env("KOOR_SERVER", format!("http://{bind}"))
        .env_remove("KOOR_TOKEN")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut events = CliEvents::of(&mut cli);
    for n in 1..=3 {
        publish(n).await;
    }
    for n in 1..=3 {
        assert_eq!(events.next().await["data"], n);
    }
    // The server goes away under the subscriber and comes back on the same port.
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    let _server = ServerProcess::start_on(dir.path(), &format!("127.0.0.1:{port}"), &[]).await;
    for n in 4..=6 {
        publish(n).await;
    }
    for n in 4..=6 {
        let event = events.next().await;
        assert_eq!(
            event["data"], n,
            "no gap and no duplicate after reconnecting"
        );
        assert_eq!(event["id"], n);
    }
    let _ = cli.start_kill();
}

/// A TLS-terminating proxy on 127.0.0.1 in front of the plain-HTTP `backend` (host:port),
/// as a reverse proxy fronts a deployed server: it speaks TLS with `tls` and passes the
/// bytes through, WebSocket upgrades included. Returns its port.
async fn tls_proxy(tls: rustls::ServerConfig, backend: String) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
    actix_web::rt::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let backend = backend.clone();
            actix_web::rt::spawn(async move {
                // A client that does not trust the certificate gives up in the handshake.
                let Ok(mut outer) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut inner = tokio::net::TcpStream::connect(&backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut outer, &mut inner).await;
            });
        }
    });
    port
}

#[actix_web::test]
async fn cli_subscriber_streams_over_wss_verified_against_the_ca_variable() {
    let ca = crate::webhooks::TestCa::new("koor test CA");
    let app = TestApp::spawn().await;
    let port = tls_proxy(
        ca.server_config(&["localhost"]),
        format!("127.0.0.1:{}", app.port),
    )
    .await;
    let server = format!("https://localhost:{port}");
    let cwd = tempfile::tempdir().unwrap();
    let cli = |trust: bool, args: &[&str]| {
        let mut cmd = tokio::process::Command::new(koor_bin());
        cmd.args(["events", "subscribe", "tls.*"])
            .args(args)
            .env("KOOR_SERVER", &server)
            .env_remove("KOOR_TOKEN")
            .env_remove("KOOR_WEBHOOK_CA_FILE")
            .current_dir(cwd.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if trust {
            cmd.env("KOOR_WEBHOOK_CA_FILE", ca.pem_file.path());
        }
        cmd
    };

    // Trusted: a stored event is replayed and a live one follows, over wss://.
    let first = app.publish("tls.a", json!(1)).await;
    let mut trusted = cli(true, &["--after", "0"]).spawn().unwrap();
    let mut events = CliEvents::of(&mut trusted);
    assert_eq!(events.next().await["id"], first["id"]);
    let second = app.publish("tls.b", json!(2)).await;
    let live = events.next().await;
    assert_eq!(live["id"], second["id"]);
    assert_eq!(live["data"], 2);
    // It held one WebSocket: it neither fell back to polling nor reconnected.
    trusted.start_kill().unwrap();
    let out = trusted.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");

    // Not trusted: the subscriber stops with the certificate problem instead of retrying
    // forever, both when it starts with a history request and when it goes straight to
    // the WebSocket.
    for args in [&[][..], &["--after", "0"][..]] {
        let out = tokio::time::timeout(Duration::from_secs(20), cli(false, args).output())
            .await
            .expect("an untrusted server stops the subscriber within 20 s")
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?} {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        assert!(stderr.contains("certificate"), "{args:?} {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Straight to the WebSocket, the message says how to trust a private CA.
    let out = cli(false, &["--after", "0"]).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("KOOR_WEBHOOK_CA_FILE"), "{stderr}");
}
