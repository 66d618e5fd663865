//! Bearer-token auth: checked before routing, `/health` open, no side effects on failure.

use reqwest::{Method, StatusCode};

use crate::helpers::{TestApp, assert_error, assert_json};

#[actix_web::test]
async fn every_route_but_health_needs_the_token() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let anon = reqwest::Client::new();
    let resp = anon.get(app.url("/health")).send().await.unwrap();
    assert_json(resp, StatusCode::OK).await;

    for (method, path) in [
        (Method::GET, "/api/state"),
        (Method::PUT, "/api/state/x"),
        (Method::POST, "/api/events/publish"),
        (Method::GET, "/api/events/history"),
        (Method::GET, "/no/such/route"),
        (Method::POST, "/health"),
    ] {
        let resp = anon
            .request(method.clone(), app.url(path))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer",
            "{method} {path}"
        );
        assert_error(resp, StatusCode::UNAUTHORIZED).await;
    }
}

#[actix_web::test]
async fn wrong_or_malformed_credentials_are_401() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let anon = reqwest::Client::new();
    for header in [
        "Bearer wrong",
        "s3cret",
        "Bearer",
        "Bearer ",
        "Basic s3cret",
        "Bearer s3cret2",
        "",
    ] {
        let resp = anon
            .get(app.url("/api/state"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::UNAUTHORIZED).await;
    }
    let resp = anon
        .get(app.url("/api/state"))
        .header("authorization", "bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
}

#[actix_web::test]
async fn a_rejected_write_has_no_effect() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let anon = reqwest::Client::new();
    let resp = anon
        .put(app.url("/api/state/locked"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::UNAUTHORIZED).await;
    assert_error(app.get("/api/state/locked").await, StatusCode::NOT_FOUND).await;
}

#[actix_web::test]
async fn auth_is_checked_before_the_size_limit() {
    let app = TestApp::spawn_with(|c| {
        c.auth_token = koor::config::Secret::new("s3cret");
        c.max_body_bytes = 10;
    })
    .await;
    let resp = reqwest::Client::new()
        .put(app.url("/api/state/big"))
        .body(vec![b'x'; 100])
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::UNAUTHORIZED).await;
}
