//! Liveness (API §8): stale marking driven by run-once sweeps with a sub-second
//! threshold, `agent.stale` / `agent.active` events, the background timer, and the
//! supervisor restarting a panicking worker behind the same address.

use std::time::Duration;

use koor::liveness::{GetMonitorStats, InjectFault, MonitorStats, RunOnce, SweepError};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

/// A server whose instances go stale after 200 ms, with the background sweep off so that
/// only the test's sweeps run.
async fn spawn_fast() -> TestApp {
    TestApp::spawn_with(|c| {
        c.stale_after = Duration::from_millis(200);
        c.liveness_interval = None;
    })
    .await
}

/// Lets the stale threshold pass.
async fn outlive_threshold() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn check(app: &TestApp) -> Value {
    let body = app.post("/api/liveness/check", None, StatusCode::OK).await;
    assert_eq!(body["checked"], true);
    assert_eq!(
        body["count"].as_u64().unwrap() as usize,
        body["newly_stale"].as_array().unwrap().len()
    );
    body
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

async fn events(app: &TestApp, topic: &str) -> Vec<Value> {
    app.get_json(&format!("/api/events/history?topic={topic}"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

#[actix_web::test]
async fn silent_active_instances_go_stale_once_and_others_do_not() {
    let app = spawn_fast().await;
    let silent = app.active_instance("silent").await;
    let pending = app.register("pending", Value::Null).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let chatty = app.active_instance("chatty").await;
    outlive_threshold().await;
    app.post(
        &format!("/api/instances/{chatty}/heartbeat"),
        None,
        StatusCode::OK,
    )
    .await;

    let first = check(&app).await;
    assert_eq!(ids(&first["newly_stale"]), [silent.as_str()]);
    assert_eq!(first["newly_stale"][0]["status"], "stale");
    assert!(first["newly_stale"][0].get("token").is_none());
    assert_eq!(check(&app).await["count"], 0, "reported only once");

    assert_eq!(
        ids(&app.get_json("/api/instances/stale").await),
        [silent.as_str()]
    );
    let status = |id: &str| format!("/api/instances/{id}");
    assert_eq!(app.get_json(&status(&pending)).await["status"], "pending");
    assert_eq!(app.get_json(&status(&chatty)).await["status"], "active");

    let stale_events = events(&app, "agent.stale").await;
    assert_eq!(stale_events.len(), 1);
    assert_eq!(stale_events[0]["source"], "liveness-monitor");
    let data = &stale_events[0]["data"];
    assert_eq!(data["instance_id"], silent);
    assert_eq!(data["name"], "silent");
    for field in ["workspace", "stack", "last_seen"] {
        assert!(data[field].is_string(), "{field} in {data}");
    }
}

#[actix_web::test]
async fn a_heartbeat_revives_a_stale_instance_and_publishes_agent_active() {
    let app = spawn_fast().await;
    let id = app.active_instance("back").await;
    outlive_threshold().await;
    assert_eq!(check(&app).await["count"], 1);
    app.post(
        &format!("/api/instances/{id}/heartbeat"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        app.get_json(&format!("/api/instances/{id}")).await["status"],
        "active"
    );
    assert_eq!(app.get_json("/api/instances/stale").await, json!([]));
    // Published after the heartbeat's commit; wait for it rather than sleeping. The
    // first `agent.active` is the activation of the pending instance, the second the
    // revival.
    let active = crate::specs::wait_events(&app, "agent.active", 2).await;
    assert_eq!(active.len(), 2, "{active:?}");
    assert!(
        active
            .iter()
            .all(|e| e["data"]["instance_id"] == id.as_str())
    );
    assert!(
        active[1]["data"]["last_seen"].as_str() > active[0]["data"]["last_seen"].as_str(),
        "{active:?}"
    );
    // Activate also revives a stale instance, and a second sweep sees it silent again.
    outlive_threshold().await;
    assert_eq!(check(&app).await["count"], 1);
    app.post(
        &format!("/api/instances/{id}/activate"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        app.get_json(&format!("/api/instances/{id}")).await["status"],
        "active"
    );
}

#[actix_web::test]
async fn the_background_sweep_marks_instances_stale_on_its_own() {
    let app = TestApp::spawn_with(|c| {
        c.stale_after = Duration::from_millis(150);
        c.liveness_interval = Some(Duration::from_millis(100));
    })
    .await;
    let id = app.active_instance("timer").await;
    let stale = app
        .get_json("/api/events/wait?after=0&topic=agent.stale&timeout=10")
        .await;
    assert_eq!(stale[0]["data"]["instance_id"], id, "{stale}");
    assert_eq!(ids(&app.get_json("/api/instances/stale").await), [id]);
    // Already caught by the timer: a forced check does not report it again.
    assert_eq!(check(&app).await["count"], 0);
}

#[actix_web::test]
async fn a_panicking_sweep_restarts_the_worker_and_the_same_address_works_again() {
    let app = spawn_fast().await;
    let monitor = app.domains.liveness.clone();
    let id = app.active_instance("survivor").await;
    outlive_threshold().await;

    monitor.send(InjectFault).await.unwrap();
    let failed = monitor.send(RunOnce).await.expect("the mailbox stays open");
    assert!(
        matches!(&failed, Err(SweepError::Failed(e)) if e.message == "injected fault"),
        "{failed:?}"
    );
    assert_eq!(
        monitor.send(GetMonitorStats).await.unwrap(),
        MonitorStats {
            sweeps: 0,
            restarts: 1
        }
    );
    // The failed sweep lost nothing: the next one, through the same Addr, does the work.
    let moved = monitor.send(RunOnce).await.unwrap().unwrap();
    assert_eq!(
        moved.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert_eq!(
        monitor.send(GetMonitorStats).await.unwrap(),
        MonitorStats {
            sweeps: 1,
            restarts: 1
        }
    );

    // Over HTTP: a failed sweep is a JSON 500 that leaks nothing, then the next works.
    monitor.send(InjectFault).await.unwrap();
    let resp = app
        .request(reqwest::Method::POST, "/api/liveness/check")
        .send()
        .await
        .unwrap();
    let body = assert_error(resp, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert!(!body.to_string().contains("injected"), "{body}");
    assert_eq!(check(&app).await["count"], 0);
    assert_eq!(monitor.send(GetMonitorStats).await.unwrap().restarts, 2);
}
