//! The dashboard listener (API §19): embedded pages and assets, the API on the same
//! origin without counting towards the token tax, the session cookie, and the Host and
//! Origin checks. The page itself is driven in a real browser by `tests/browser/`.

use std::net::TcpListener;

use koor::app::{Application, StartError};
use koor::config::{Config, Secret};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, ETAG, IF_NONE_MATCH, ORIGIN, SET_COOKIE};
use serde_json::json;

use crate::helpers::{TestApp, assert_error, assert_json, next_json};

async fn with_dashboard(token: Option<&str>) -> (TestApp, String) {
    let token = token.map(str::to_string);
    let app = TestApp::spawn_with(move |c| {
        c.dashboard_bind = "127.0.0.1:0".into();
        if let Some(t) = token {
            c.auth_token = Secret::new(t);
        }
    })
    .await;
    let port = app.dashboard_port.expect("the dashboard listens");
    (app, format!("http://127.0.0.1:{port}"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[actix_web::test]
async fn pages_and_assets_are_served_from_the_binary() {
    let (_app, dash) = with_dashboard(None).await;
    let http = client();
    for page in [
        "/",
        "/state",
        "/rules",
        "/webhooks",
        "/compliance",
        "/audit",
        "/tasks",
        "/locks",
        "/topology",
        "/storage",
        "/cluster",
        "/keys",
    ] {
        let resp = http.get(format!("{dash}{page}")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{page}");
        assert_eq!(resp.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(
            resp.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'"),
            "{page} has a CSP"
        );
        let html = resp.text().await.unwrap();
        assert!(html.contains("app.js"), "{page} loads the app");
    }
    let js = http.get(format!("{dash}/app.js")).send().await.unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert_eq!(js.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
    let etag = js.headers()[ETAG].clone();
    assert!(!js.bytes().await.unwrap().is_empty());
    let again = http
        .get(format!("{dash}/app.js"))
        .header(IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let css = http.get(format!("{dash}/style.css")).send().await.unwrap();
    assert_eq!(css.headers()[CONTENT_TYPE], "text/css; charset=utf-8");

    for missing in [
        "/nope.js",
        "/.hidden",
        "/index.html",
        "/a/b.js",
        "/..%2FCargo.toml",
    ] {
        let resp = http.get(format!("{dash}{missing}")).send().await.unwrap();
        assert_error(resp, StatusCode::NOT_FOUND).await;
    }
    let resp = http.post(format!("{dash}/state")).send().await.unwrap();
    assert_error(resp, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[actix_web::test]
async fn the_api_on_the_dashboard_is_the_api_but_not_counted() {
    let (app, dash) = with_dashboard(None).await;
    let http = client();
    app.post("/api/metrics/reset", None, StatusCode::OK).await;

    let put = http
        .put(format!("{dash}/api/state/from-dashboard"))
        .body(r#"{"v":1}"#)
        .send()
        .await
        .unwrap();
    let put = assert_json(put, StatusCode::OK).await;
    assert_eq!(put["version"], 1);
    let resp = http
        .get(format!("{dash}/api/state/from-dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), r#"{"v":1}"#);
    let history = http
        .get(format!("{dash}/api/state/from-dashboard?history=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_json(history, StatusCode::OK).await["versions"][0]["version"],
        1
    );

    let tax = app.get_json("/api/metrics").await;
    assert_eq!(
        tax["token_tax"]["rest_calls"], 0,
        "dashboard calls are not counted: {tax}"
    );

    // The write is the same write: visible on the API port, and audited there.
    let via_api = app.get("/api/state/from-dashboard").await;
    assert_eq!(via_api.text().await.unwrap(), r#"{"v":1}"#);
    let audit = app.get_json("/api/audit?action=state.put").await;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");

    // The dashboard offers no MCP endpoint and no Prometheus scrape.
    for path in ["/mcp", "/metrics"] {
        let resp = http.get(format!("{dash}{path}")).send().await.unwrap();
        assert_error(resp, StatusCode::NOT_FOUND).await;
    }
}

#[actix_web::test]
async fn the_event_stream_reaches_the_dashboard_origin() {
    let (app, dash) = with_dashboard(None).await;
    let url = format!(
        "{}/api/events/subscribe?pattern=dash.*",
        dash.replace("http", "ws")
    );
    let (resp, mut ws) = awc::Client::new()
        .ws(url)
        .origin(dash.as_str())
        .connect()
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    let published = app.publish("dash.hello", json!({"n": 1})).await;
    let frame = next_json(&mut ws).await.expect("the event arrives");
    assert_eq!(frame["id"], published["id"]);
    assert_eq!(frame["data"], json!({"n": 1}));
}

#[actix_web::test]
async fn a_cross_site_socket_or_form_and_a_foreign_host_are_refused() {
    let (_app, dash) = with_dashboard(None).await;
    let url = format!("{}/api/events/subscribe", dash.replace("http", "ws"));
    let refused = awc::Client::new()
        .ws(url)
        .origin("http://evil.example")
        .connect()
        .await;
    match refused {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            assert_eq!(status.as_u16(), 403)
        }
        other => panic!(
            "a cross-site WebSocket must be refused, got {:?}",
            other.map(|r| r.0)
        ),
    }
    let http = client();
    let form = http
        .post(format!("{dash}/api/metrics/reset"))
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_error(form, StatusCode::FORBIDDEN).await;
    let rebound = http
        .get(format!("{dash}/api/state"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_error(rebound, StatusCode::FORBIDDEN).await;
}

#[actix_web::test]
async fn with_a_token_the_dashboard_signs_in_once_per_browser_session() {
    let (app, dash) = with_dashboard(Some("dash-secret")).await;
    let http = client();

    // Pages load without the token (they hold no data); the API does not.
    let page = http.get(format!("{dash}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let status = assert_json(
        http.get(format!("{dash}/session")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        status,
        json!({"auth_required": true, "authenticated": false})
    );
    let denied = http.get(format!("{dash}/api/state")).send().await.unwrap();
    assert_error(denied, StatusCode::UNAUTHORIZED).await;

    let wrong = http
        .post(format!("{dash}/session"))
        .body(r#"{"token":"guess"}"#)
        .send()
        .await
        .unwrap();
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert_error(wrong, StatusCode::UNAUTHORIZED).await;
    let bad = http
        .post(format!("{dash}/session"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_error(bad, StatusCode::BAD_REQUEST).await;

    let signed = http
        .post(format!("{dash}/session"))
        .body(r#"{"token":"dash-secret"}"#)
        .send()
        .await
        .unwrap();
    let set = signed.headers()[SET_COOKIE].to_str().unwrap().to_string();
    let body = assert_json(signed, StatusCode::OK).await;
    assert_eq!(body, json!({"authenticated": true}));
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains("dash-secret"),
        "the cookie never holds the token"
    );
    assert!(
        !set.to_ascii_lowercase().contains("expires"),
        "a browser-session cookie"
    );
    let cookie = set.split(';').next().unwrap().to_string();

    let with = |req: reqwest::RequestBuilder| req.header(COOKIE, cookie.clone());
    let keys = with(http.get(format!("{dash}/api/state")))
        .send()
        .await
        .unwrap();
    assert_json(keys, StatusCode::OK).await;
    let status = assert_json(
        with(http.get(format!("{dash}/session")))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["authenticated"], true);
    // The WebSocket handshake carries the cookie too.
    let (resp, _ws) = awc::Client::new()
        .ws(format!(
            "{}/api/events/subscribe",
            dash.replace("http", "ws")
        ))
        .set_header("cookie", cookie.clone())
        .connect()
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    // The bearer token works as on the API port; the cookie is no credential there.
    let bearer = http
        .get(format!("{dash}/api/state"))
        .bearer_auth("dash-secret")
        .send()
        .await
        .unwrap();
    assert_json(bearer, StatusCode::OK).await;
    let on_api = client()
        .get(app.url("/api/state"))
        .header(COOKIE, cookie.clone())
        .send()
        .await
        .unwrap();
    assert_error(on_api, StatusCode::UNAUTHORIZED).await;

    let out = with(http.delete(format!("{dash}/session")))
        .send()
        .await
        .unwrap();
    assert!(
        out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_json(out, StatusCode::OK).await;
}

#[actix_web::test]
async fn an_empty_bind_disables_the_dashboard_and_a_taken_one_is_handled() {
    let app = TestApp::spawn().await;
    assert_eq!(app.dashboard_port, None, "\"\" disables the dashboard");

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let config = |dir: &std::path::Path, explicit: bool| Config {
        bind: "127.0.0.1:0".into(),
        dashboard_bind: bind.clone(),
        dashboard_bind_explicit: explicit,
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    let dir = tempfile::tempdir().unwrap();
    match Application::build(config(dir.path(), true)).await {
        Err(StartError::Bind { bind: b, .. }) => assert_eq!(b, bind),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a configured dashboard address that is taken must fail the start"),
    }
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(config(dir.path(), false))
        .await
        .expect("a default address that is taken only disables the dashboard");
    assert_eq!(app.dashboard_port(), None);
}

#[actix_web::test]
async fn a_key_signs_in_to_the_dashboard_with_its_scopes_until_revoked() {
    let (app, dash) = with_dashboard(Some("dash-secret")).await;
    let http = client();
    let created = app
        .request(reqwest::Method::POST, "/api/keys")
        .json(&json!({"name": "viewer", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    let created = assert_json(created, StatusCode::OK).await;
    let secret = created["key"].as_str().unwrap();
    let signed = http
        .post(format!("{dash}/session"))
        .json(&json!({"token": secret}))
        .send()
        .await
        .unwrap();
    let set = signed.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert_json(signed, StatusCode::OK).await;
    assert!(!set.contains(secret), "the cookie never holds the key");
    let cookie = set.split(';').next().unwrap().to_string();
    let with = |req: reqwest::RequestBuilder| req.header(COOKIE, cookie.clone());
    let me = with(http.get(format!("{dash}/api/whoami")))
        .send()
        .await
        .unwrap();
    let me = assert_json(me, StatusCode::OK).await;
    assert_eq!(me["principal"], "key");
    assert_eq!(me["scopes"], json!(["read"]));
    let put = with(http.put(format!("{dash}/api/state/x")).body("1"))
        .send()
        .await
        .unwrap();
    assert_error(put, StatusCode::FORBIDDEN).await;
    let id = created["id"].as_str().unwrap();
    let revoked = app
        .request(reqwest::Method::DELETE, &format!("/api/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_json(revoked, StatusCode::OK).await;
    let after = with(http.get(format!("{dash}/api/state")))
        .send()
        .await
        .unwrap();
    assert_error(after, StatusCode::UNAUTHORIZED).await;
}
