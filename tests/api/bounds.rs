//! Input bounds (docs/api.md, "Input bounds"): keys, names, topics, lists and list limits.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, assert_error};

#[actix_web::test]
async fn state_keys_are_bounded_and_printable() {
    let app = TestApp::spawn().await;
    let longest = "k".repeat(1024);
    app.put_state(&longest, b"1").await;
    assert_eq!(app.get_json("/api/state").await[0]["key"], longest.as_str());

    let too_long = "k".repeat(1025);
    let err = assert_error(app.put_raw(&too_long, b"1").await, StatusCode::BAD_REQUEST).await;
    assert!(err["error"].as_str().unwrap().contains("1024"), "{err}");
    for bad in ["nul%00key", "tab%09key", "line%0Akey", "del%7Fkey"] {
        let err = assert_error(app.put_raw(bad, b"1").await, StatusCode::BAD_REQUEST).await;
        assert!(
            err["error"].as_str().unwrap().contains("control"),
            "{bad}: {err}"
        );
        // Reads refuse the same key, rather than looking it up.
        assert_error(
            app.get(&format!("/api/state/{bad}")).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    assert_eq!(
        app.get_json("/api/state").await.as_array().unwrap().len(),
        1
    );
}

#[actix_web::test]
async fn names_topics_and_lists_are_bounded() {
    let app = TestApp::spawn().await;
    let long = "n".repeat(257);
    let cases = [
        ("/api/events/publish", json!({"topic": long})),
        ("/api/events/publish", json!({"topic": "a\u{0}b"})),
        ("/api/instances/register", json!({"name": long})),
        (
            "/api/instances/register",
            json!({"name": "x", "capabilities": vec!["c"; 101]}),
        ),
        (
            "/api/webhooks",
            json!({"id": long, "url": "http://127.0.0.1:9/"}),
        ),
        (
            "/api/webhooks",
            json!({"id": "w", "url": "http://127.0.0.1:9/", "patterns": vec!["*"; 101]}),
        ),
        (
            "/api/webhooks",
            json!({"id": "w", "url": format!("http://127.0.0.1:9/{}", "p".repeat(2048))}),
        ),
        (
            "/api/rules/propose",
            json!({"project": long, "rule_id": "r", "pattern": "x"}),
        ),
        (
            "/api/templates",
            json!({"id": long, "name": "t", "kind": "rules", "data": []}),
        ),
    ];
    for (path, body) in cases {
        let resp = app
            .request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let err = assert_error(resp, StatusCode::BAD_REQUEST).await;
        let text = err["error"].as_str().unwrap();
        assert!(
            text.contains("longer than") || text.contains("control") || text.contains("more than"),
            "{path}: {text}"
        );
    }
    let resp = app
        .get(&format!("/api/events/history?topic={}", "t".repeat(300)))
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST).await;
    // A name at the bound is fine.
    app.publish(&"t".repeat(256), json!({})).await;
}

#[actix_web::test]
async fn list_limits_fall_back_or_clamp() {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        app.publish("t", json!({"n": n})).await;
    }
    // API §1.7: non-numeric, zero or negative falls back to the default (50); huge values,
    // even beyond 64 bits, are clamped to 10 000.
    for q in [
        "last=-1",
        "last=abc",
        "last=0",
        "last=99999999999999999999",
        "last=1e3",
    ] {
        let got = app.get_json(&format!("/api/events/history?{q}")).await;
        assert_eq!(got.as_array().unwrap().len(), 3, "{q}");
    }
    let got = app.get_json("/api/events/history?last=2").await;
    assert_eq!(got.as_array().unwrap().len(), 2);
    app.put_state("k", b"1").await;
    app.put_state("k", b"2").await;
    let got = app
        .get_json("/api/state/k?history=1&limit=99999999999999999999")
        .await;
    assert_eq!(got["versions"].as_array().unwrap().len(), 2, "{got}");
}

#[actix_web::test]
async fn a_path_segment_that_does_not_parse_is_a_json_404() {
    let app = TestApp::spawn().await;
    let resp = app
        .request(Method::POST, "/api/webhooks/w/deliveries/%C2%A2/retry")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::NOT_FOUND).await;
}
