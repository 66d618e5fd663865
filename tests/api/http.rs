//! Shared HTTP behaviour: the error envelope, 404/405, malformed JSON, body limits.

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, assert_error, assert_json};

#[actix_web::test]
async fn health_is_ok_with_an_uptime() {
    let app = TestApp::spawn().await;
    let body = assert_json(app.get("/health").await, StatusCode::OK).await;
    assert_eq!(body["status"], "ok");
    assert!(body["uptime"].as_str().unwrap().ends_with('s'));
    // API §27: one server is its own leader.
    assert_eq!(body["role"], crate::helpers::expected_role());
    assert_eq!(body["leader"], app.address);
}

#[actix_web::test]
async fn unknown_routes_are_json_404() {
    let app = TestApp::spawn().await;
    assert_error(app.get("/nope").await, StatusCode::NOT_FOUND).await;
    assert_error(app.get("/api/unknown/thing").await, StatusCode::NOT_FOUND).await;
}

#[actix_web::test]
async fn wrong_method_is_json_405_with_allow() {
    let app = TestApp::spawn().await;
    let cases = [
        (Method::PATCH, "/api/state/k", "GET, PUT, POST, DELETE"),
        (Method::POST, "/api/state", "GET"),
        (Method::GET, "/api/events/publish", "POST"),
        (Method::DELETE, "/api/events/history", "GET"),
    ];
    for (method, path, allow) in cases {
        let resp = app.request(method.clone(), path).send().await.unwrap();
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        assert_error(resp, StatusCode::METHOD_NOT_ALLOWED).await;
    }
}

#[actix_web::test]
async fn malformed_or_misshapen_json_is_400() {
    let app = TestApp::spawn().await;
    for body in [
        "{",
        "",
        "[]",
        "\"topic\"",
        "{\"topic\": 5}",
        "{\"topic\": \"\"}",
        "{\"data\": 1}",
    ] {
        let resp = app
            .request(Method::POST, "/api/events/publish")
            .header("content-type", "text/plain")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    // JSON is parsed whatever the content type says.
    let resp = app
        .request(Method::POST, "/api/events/publish")
        .header("content-type", "text/plain")
        .body("{\"topic\":\"a.b\"}")
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
}

#[actix_web::test]
async fn body_over_the_limit_is_413_and_nothing_is_stored() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 1024).await;
    let exact = vec![b'a'; 1024];
    assert_eq!(app.put_state("edge", &exact).await["version"], 1);

    let over = vec![b'b'; 1025];
    let err = assert_error(
        app.put_raw("edge", &over).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(err["error"].as_str().unwrap().contains("limit"));
    let err = assert_error(
        app.put_raw("fresh", &over).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(err["error"].as_str().unwrap().contains("limit"));
    assert_error(app.get("/api/state/fresh").await, StatusCode::NOT_FOUND).await;
    let resp = app.get("/api/state/edge").await;
    assert_eq!(resp.headers()["x-koor-version"], "1");
    // The server stays healthy.
    assert_json(app.get("/health").await, StatusCode::OK).await;
}

/// Sends a chunked request (no Content-Length) over a raw socket and returns the response.
async fn chunked_put(port: u16, path: &str, chunks: &[Vec<u8>]) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        let piece = format!("{:x}\r\n", chunk.len());
        if stream.write_all(piece.as_bytes()).await.is_err()
            || stream.write_all(chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).to_string()
}

#[actix_web::test]
async fn chunked_body_over_the_limit_is_413_too() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 1000).await;
    let resp = chunked_put(
        app.port,
        "/api/state/chunky",
        &[vec![b'x'; 600], vec![b'y'; 600]],
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(resp.contains("\"code\":413"), "{resp}");
    assert_error(app.get("/api/state/chunky").await, StatusCode::NOT_FOUND).await;
    let ok = chunked_put(
        app.port,
        "/api/state/chunky",
        &[vec![b'x'; 500], vec![b'y'; 500]],
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[actix_web::test]
async fn a_ten_mebibyte_body_is_accepted_and_one_byte_more_is_not() {
    let app = TestApp::spawn().await;
    let exact = vec![b'z'; 10 * 1024 * 1024];
    assert_eq!(app.put_state("tenmib", &exact).await["version"], 1);
    let mut over = exact;
    over.push(b'z');
    assert_error(
        app.put_raw("tenmib", &over).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    let hist = assert_json(app.get("/api/state/tenmib?history=1").await, StatusCode::OK).await;
    assert_eq!(hist["versions"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn health_only_answers_get() {
    let app = TestApp::spawn().await;
    let resp = app.request(Method::POST, "/health").send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "GET");
    assert_error(resp, StatusCode::METHOD_NOT_ALLOWED).await;
}
