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
