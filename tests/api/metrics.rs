//! Metrics (API §16): the summary, the token tax counted in middleware, reset, and the
//! per-agent hourly buckets (heartbeats, REST calls of an identified agent).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_json};

async fn tax(app: &TestApp) -> Value {
    app.get_json("/api/metrics").await["token_tax"].clone()
}

fn hour_now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H").to_string()
}

#[actix_web::test]
async fn summary_reports_keys_instances_last_event_and_binds() {
    let app = TestApp::spawn_with(|c| c.dashboard_bind = String::new()).await;
    let empty = app.get_json("/api/metrics").await;
    assert_eq!(
        (
            &empty["state_keys"],
            &empty["instances"],
            &empty["last_event_id"]
        ),
        (&json!(0), &json!(0), &json!(0))
    );
    app.put_state("a", b"1").await;
    app.put_state("a", b"2").await;
    app.put_state("b/c", b"3").await;
    app.register("x", Value::Null).await;
    app.active_instance("y").await;
    let ev = app.publish("metric.tick", json!(1)).await;

    let body = app.get_json("/api/metrics").await;
    assert_eq!(body["state_keys"], 2);
    assert_eq!(body["instances"], 2);
    assert!(body["last_event_id"].as_i64().unwrap() >= ev["id"].as_i64().unwrap());
    assert_eq!(body["api_bind"], "127.0.0.1:0");
    assert_eq!(body["dashboard_bind"], "");
    assert!(body["uptime"].as_str().is_some_and(|u| u.ends_with('s')));
}

#[actix_web::test]
async fn token_tax_counts_rest_and_mcp_calls_but_not_metrics_or_health() {
    let app = TestApp::spawn().await;
    let reset = app.post("/api/metrics/reset", None, StatusCode::OK).await;
    assert_eq!(reset, json!({"reset": true}));
    assert_eq!(tax(&app).await["total_calls"], 0);

    app.get("/api/state").await;
    app.get("/api/instances").await;
    app.get("/api/no-such-route").await;
    app.get("/api/metrics/agents").await;
    app.get("/health").await;
    app.get("/api/metrics").await;
    app.request(Method::POST, "/mcp").send().await.unwrap();

    let t = tax(&app).await;
    assert_eq!(
        t,
        json!({"mcp_calls": 1, "rest_calls": 4, "total_calls": 5,
               "mcp_estimated_tokens": 300, "rest_tokens_saved": 1200,
               "savings_percent": 80.0})
    );
    app.post("/api/metrics/reset", None, StatusCode::OK).await;
    let t = tax(&app).await;
    assert_eq!(
        (&t["total_calls"], &t["savings_percent"]),
        (&json!(0), &json!(0.0))
    );
}

#[actix_web::test]
async fn rejected_requests_are_not_counted() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let anon = app.client.get(app.url("/api/state")).send().await.unwrap();
    assert_error(anon, StatusCode::UNAUTHORIZED).await;
    assert_eq!(tax(&app).await["rest_calls"], 0);
    app.get("/api/state").await;
    assert_eq!(tax(&app).await["rest_calls"], 1);
}

#[actix_web::test]
async fn heartbeats_fill_hourly_buckets_per_agent() {
    let app = TestApp::spawn().await;
    let a = app.active_instance("a").await;
    let b = app.active_instance("b").await;
    for _ in 0..3 {
        app.post(
            &format!("/api/instances/{a}/heartbeat"),
            None,
            StatusCode::OK,
        )
        .await;
    }
    app.post(
        &format!("/api/instances/{b}/heartbeat"),
        None,
        StatusCode::OK,
    )
    .await;
    let hour = hour_now();
    let day = &hour[..10];

    let detail = app.get_json(&format!("/api/metrics/agents/{a}")).await;
    assert_eq!(
        detail,
        json!([{"instance_id": a, "metric_name": "heartbeats", "metric_value": 3, "period": hour}])
    );
    assert_eq!(
        app.get_json(&format!("/api/metrics/agents?instance_id={a}&period={day}"))
            .await,
        detail
    );

    let mut expected = vec![
        json!({"instance_id": a, "metrics": {"heartbeats": 3}}),
        json!({"instance_id": b, "metrics": {"heartbeats": 1}}),
    ];
    expected.sort_by(|x, y| x["instance_id"].as_str().cmp(&y["instance_id"].as_str()));
    assert_eq!(app.get_json("/api/metrics/agents").await, json!(expected));
    assert_eq!(
        app.get_json(&format!("/api/metrics/agents?period={hour}"))
            .await,
        json!(expected)
    );
    for empty in [
        "/api/metrics/agents?period=2999-01-01".to_string(),
        format!("/api/metrics/agents/{a}?period=1999"),
        "/api/metrics/agents/nobody".to_string(),
        "/api/metrics/agents?instance_id=nobody".to_string(),
    ] {
        assert_eq!(app.get_json(&empty).await, json!([]), "{empty}");
    }
}

#[actix_web::test]
async fn rest_calls_are_credited_to_the_agent_named_by_id_or_token() {
    let app = TestApp::spawn().await;
    let reg = app.register("caller", Value::Null).await;
    let id = reg["id"].as_str().unwrap().to_string();
    let token = reg["token"].as_str().unwrap().to_string();
    for (header, value) in [
        ("x-koor-instance", id.as_str()),
        ("x-koor-instance-token", token.as_str()),
        ("x-koor-instance", "not-registered"),
        ("x-koor-instance-token", id.as_str()),
    ] {
        let resp = app
            .request(Method::GET, "/api/state")
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_json(resp, StatusCode::OK).await;
    }
    // Credited off the request path; wait (bounded) for the two valid calls to land.
    let path = format!("/api/metrics/agents/{id}");
    let mut rows = Value::Null;
    for _ in 0..100 {
        rows = app.get_json(&path).await;
        if rows[0]["metric_value"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows[0]["metric_name"], "rest_calls", "{rows}");
    assert_eq!(rows[0]["metric_value"], 2, "{rows}");
    let all = app.get_json("/api/metrics/agents").await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
}
