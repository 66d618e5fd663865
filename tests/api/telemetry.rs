//! `GET /metrics`: Prometheus text format that a Prometheus parser reads, with request
//! series by route pattern and the domain series, behind the same auth as the API.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, assert_error, subscribe};

/// Scrapes `/metrics` and parses it; returns (name + sorted labels) -> value.
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    let mut out = HashMap::new();
    for s in parsed.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert(format!("{}{{{}}}", s.metric, labels.join(",")), value);
    }
    out
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("{key} missing; have {:?}", m.keys().collect::<Vec<_>>()))
}

#[actix_web::test]
async fn metrics_parse_and_cover_requests_and_domains() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.put_state(&format!("m/{i}"), b"1").await;
    }
    app.get("/api/state/nope").await;
    app.get("/no/such/route").await;
    let id = app.active_instance("scraped").await;
    app.register("waiting", json!({})).await;
    app.publish("build.done", json!({})).await;
    let _socket = subscribe(&app, "pattern=*").await;
    let hook = json!({"id": "h", "url": "http://127.0.0.1:9/", "patterns": ["never.*"]});
    app.post("/api/webhooks", Some(hook), StatusCode::OK).await;

    let m = scrape(&app).await;
    let route = "/api/state/:key";
    assert_eq!(
        get(
            &m,
            &format!("koor_http_requests_total{{method=PUT,route={route},status=200}}")
        ),
        3.0
    );
    assert_eq!(
        get(
            &m,
            &format!("koor_http_requests_total{{method=GET,route={route},status=404}}")
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            "koor_http_requests_total{method=GET,route=unmatched,status=404}"
        ),
        1.0
    );
    // The latency histogram's +Inf bucket holds every observed request.
    assert_eq!(
        get(
            &m,
            &format!("koor_http_request_duration_seconds{{method=PUT,route={route}}}")
        ),
        3.0
    );

    assert_eq!(get(&m, "koor_instances{status=active}"), 1.0, "{id}");
    assert_eq!(get(&m, "koor_instances{status=pending}"), 1.0);
    assert_eq!(get(&m, "koor_instances{status=stale}"), 0.0);
    assert_eq!(get(&m, "koor_websocket_subscribers{}"), 1.0);
    // state.updated x3, agent events and build.done: at least the four published here.
    assert!(get(&m, "koor_events_published_total{}") >= 4.0);
    assert!(m.contains_key("koor_webhook_attempts_total{outcome=delivered}"));
    assert_eq!(get(&m, "koor_webhook_queue_depth{}"), 0.0);
    assert!(get(&m, "koor_db_pool_connections{state=max}") >= 1.0);
    assert!(get(&m, "koor_db_pool_connections{state=open}") >= 1.0);
}

#[actix_web::test]
async fn metrics_need_the_token_when_one_is_set() {
    let app = TestApp::spawn_with_token("sekrit").await;
    let anonymous = reqwest::Client::new()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, StatusCode::UNAUTHORIZED).await;
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("status=\"401\""),
        "the refused scrape is counted: {text}"
    );
    let post = app.request(Method::POST, "/metrics").send().await.unwrap();
    assert_error(post, StatusCode::METHOD_NOT_ALLOWED).await;
}
