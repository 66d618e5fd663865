//! Compliance (API §12): which instances and specs a pass checks, when a contract fails,
//! runs in history, `compliance.violation` events, agent metrics, the background timer and
//! the supervisor restarting a panicking worker behind the same address.

use std::time::Duration;

use koor::compliance::{GetMonitorStats, InjectFault, RunOnce};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::specs::{put_spec, wait_events};

/// A server without the background pass, so that only the test's passes run.
async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| c.compliance_interval = None).await
}

/// Registers and activates an instance working in `workspace`; returns its id.
async fn agent_in(app: &TestApp, name: &str, workspace: &str) -> String {
    let id = app.register(name, json!({"workspace": workspace})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(
        &format!("/api/instances/{id}/activate"),
        None,
        StatusCode::OK,
    )
    .await;
    id
}

async fn put_contract(app: &TestApp, project: &str, name: &str, endpoints: Value) {
    let spec = json!({"kind": "contract", "version": 1, "endpoints": endpoints});
    put_spec(app, project, name, spec.to_string().as_bytes()).await;
}

fn good_endpoints() -> Value {
    json!({"POST /api/trucks": {"request": {"plate": {"type": "string", "required": true}},
                                "response": {"id": {"type": "string"}}}})
}

/// One forced pass; checks the envelope and returns the runs.
async fn run(app: &TestApp) -> Vec<Value> {
    let body = app.post("/api/compliance/run", None, StatusCode::OK).await;
    assert_eq!(body["checked"], true, "{body}");
    let runs = body["runs"].as_array().unwrap().clone();
    assert_eq!(body["count"], runs.len(), "{body}");
    runs
}

async fn history(app: &TestApp, query: &str) -> Vec<Value> {
    app.get_json(&format!("/api/compliance/history{query}"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn run_ids(runs: &[Value]) -> Vec<i64> {
    runs.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

/// The sum of `metric` over every hourly bucket of `instance`.
async fn metric(app: &TestApp, instance: &str, name: &str) -> i64 {
    app.get_json(&format!("/api/metrics/agents/{instance}"))
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["metric_name"] == name)
        .map(|row| {
            assert_eq!(row["instance_id"], instance, "{row}");
            assert_eq!(row["period"].as_str().unwrap().len(), 13, "{row}");
            row["metric_value"].as_i64().unwrap()
        })
        .sum()
}

#[actix_web::test]
async fn a_pass_with_nothing_to_check_is_empty() {
    let app = spawn().await;
    assert_eq!(
        app.post("/api/compliance/run", None, StatusCode::OK).await,
        json!({"checked": true, "runs": [], "count": 0})
    );
    assert_eq!(app.get_json("/api/compliance/history").await, json!([]));
}

#[actix_web::test]
async fn a_pass_checks_the_valid_contracts_of_active_instances_in_spec_name_order() {
    let app = TestApp::spawn_with(|c| {
        c.compliance_interval = None;
        c.liveness_interval = None;
        c.stale_after = Duration::from_millis(400);
    })
    .await;
    let project = "Truck-Wash";
    put_contract(
        &app,
        project,
        "b-broken",
        json!({"GET /api/ok": {"response": {"id": {"type": "string"}}}, "GET /api/empty": {}}),
    )
    .await;
    put_contract(&app, project, "a-good", good_endpoints()).await;
    // Not valid contracts: ignored, even though they would fail if checked.
    put_spec(&app, project, "c-notes", br#"{"text": "hello"}"#).await;
    put_spec(
        &app,
        project,
        "d-empty",
        br#"{"kind": "contract", "endpoints": {}}"#,
    )
    .await;
    put_spec(
        &app,
        project,
        "e-schema",
        br#"{"kind": "schema", "endpoints": {"GET /x": {}}}"#,
    )
    .await;
    put_spec(&app, project, "f-raw", b"not json").await;

    // A stale instance (silent past the threshold) is skipped.
    let gone = agent_in(&app, "gone", project).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let worker = agent_in(&app, "worker", project).await;
    let checked = app.post("/api/liveness/check", None, StatusCode::OK).await;
    assert_eq!(checked["count"], 1, "{checked}");
    assert_eq!(checked["newly_stale"][0]["id"], gone.as_str(), "{checked}");
    // So are pending instances, active ones without a workspace, and projects without specs.
    let pending = app.register("waiting", json!({"workspace": project})).await;
    let nowhere = app.active_instance("nowhere").await;
    let idle = agent_in(&app, "idle", "Empty-Project").await;

    let runs = run(&app).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    for r in &runs {
        let mut fields: Vec<&str> = r.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "contract",
                "id",
                "instance_id",
                "pass",
                "project",
                "run_at",
                "violations"
            ]
        );
        assert_eq!(r["instance_id"], worker.as_str());
        assert_eq!(r["project"], project);
        assert!(r["run_at"].as_str().unwrap().ends_with('Z'), "{r}");
    }
    assert_eq!(runs[0]["contract"], "a-good");
    assert_eq!(runs[0]["pass"], true);
    assert_eq!(runs[0]["violations"], json!([]));
    assert_eq!(runs[1]["contract"], "b-broken");
    assert_eq!(runs[1]["pass"], false);
    let violations = runs[1]["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0]["path"], "endpoints.GET /api/empty");
    assert!(
        violations[0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(runs[0]["id"].as_i64() < runs[1]["id"].as_i64());

    // In history at once, newest first.
    let mut newest_first = runs.clone();
    newest_first.reverse();
    assert_eq!(history(&app, "").await, newest_first);
    for skipped in [
        gone.as_str(),
        pending["id"].as_str().unwrap(),
        nowhere.as_str(),
        idle.as_str(),
    ] {
        assert_eq!(
            history(&app, &format!("?instance_id={skipped}")).await,
            Vec::<Value>::new()
        );
    }
}

#[actix_web::test]
async fn every_active_instance_of_a_project_gets_its_own_runs() {
    let app = spawn().await;
    put_contract(&app, "p", "api", good_endpoints()).await;
    let a = agent_in(&app, "a", "p").await;
    let b = agent_in(&app, "b", "p").await;
    let runs = run(&app).await;
    let mut instances: Vec<&str> = runs
        .iter()
        .map(|r| r["instance_id"].as_str().unwrap())
        .collect();
    instances.sort_unstable();
    let mut want = vec![a.as_str(), b.as_str()];
    want.sort_unstable();
    assert_eq!(instances, want);
    assert!(
        runs.iter()
            .all(|r| r["pass"] == true && r["contract"] == "api")
    );
}

#[actix_web::test]
async fn an_endpoint_fails_when_it_defines_no_request_response_or_query_shape() {
    let app = spawn().await;
    put_contract(
        &app,
        "p",
        "shapes",
        json!({
            "GET /query": {"query": {"q": {"type": "string"}}},
            "GET /array": {"response_array": {"id": {"type": "string"}}},
            "POST /request": {"request": {"a": {"type": "string"}}},
            "GET /response": {"response": {"id": {"type": "string"}}},
            "GET /status-only": {"response_status": 204},
            "GET /error-only": {"error": {"message": {"type": "string"}}},
            "GET /nothing": {}
        }),
    )
    .await;
    agent_in(&app, "a", "p").await;
    let runs = run(&app).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["pass"], false);
    let mut paths: Vec<&str> = runs[0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "endpoints.GET /error-only",
            "endpoints.GET /nothing",
            "endpoints.GET /status-only"
        ]
    );
}

#[actix_web::test]
async fn failing_runs_publish_compliance_violation_before_the_pass_answers() {
    let app = spawn().await;
    put_contract(&app, "p", "a-good", good_endpoints()).await;
    put_contract(&app, "p", "b-bad", json!({"GET /x": {}})).await;
    let id = agent_in(&app, "a", "p").await;

    let runs = run(&app).await;
    let events = app
        .get_json("/api/events/history?topic=compliance.violation")
        .await;
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events[0]["source"], "compliance-scheduler");
    assert_eq!(
        events[0]["data"],
        json!({"instance_id": id, "project": "p", "contract": "b-bad",
               "violations": runs[1]["violations"]})
    );
    run(&app).await;
    let events = app
        .get_json("/api/events/history?topic=compliance.violation")
        .await;
    assert_eq!(events.as_array().unwrap().len(), 2, "{events}");
}

#[actix_web::test]
async fn passes_record_compliance_runs_and_violations_per_agent() {
    let app = spawn().await;
    put_contract(&app, "p", "a-good", good_endpoints()).await;
    put_contract(&app, "p", "b-bad", json!({"GET /x": {}, "GET /y": {}})).await;
    put_contract(&app, "clean", "api", good_endpoints()).await;
    let failing = agent_in(&app, "failing", "p").await;
    let passing = agent_in(&app, "passing", "clean").await;

    run(&app).await;
    assert_eq!(metric(&app, &failing, "compliance_runs").await, 2);
    assert_eq!(metric(&app, &failing, "violations").await, 2);
    assert_eq!(metric(&app, &passing, "compliance_runs").await, 1);
    assert_eq!(metric(&app, &passing, "violations").await, 0);

    run(&app).await;
    assert_eq!(metric(&app, &failing, "compliance_runs").await, 4);
    assert_eq!(metric(&app, &failing, "violations").await, 4);
    assert_eq!(metric(&app, &passing, "compliance_runs").await, 2);
}

#[actix_web::test]
async fn history_filters_by_instance_and_keeps_the_newest_runs() {
    let app = spawn().await;
    put_contract(&app, "p", "api", good_endpoints()).await;
    put_contract(&app, "q", "api", json!({"GET /x": {}})).await;
    let a = agent_in(&app, "a", "p").await;
    let b = agent_in(&app, "b", "q").await;
    for _ in 0..30 {
        assert_eq!(run(&app).await.len(), 2);
    }

    let all = history(&app, "").await;
    assert_eq!(all.len(), 50);
    let ids = run_ids(&all);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    for limit in ["0", "-1", "abc"] {
        assert_eq!(
            history(&app, &format!("?limit={limit}")).await.len(),
            50,
            "{limit}"
        );
    }
    assert_eq!(run_ids(&history(&app, "?limit=3").await), &ids[..3]);
    assert_eq!(history(&app, "?limit=100").await.len(), 60);

    let of_a = history(&app, &format!("?instance_id={a}")).await;
    assert_eq!(of_a.len(), 30);
    assert!(of_a.iter().all(|r| r["instance_id"] == a.as_str()));
    let of_b = history(&app, &format!("?instance_id={b}&limit=2")).await;
    assert_eq!(of_b.len(), 2);
    assert!(
        of_b.iter()
            .all(|r| r["instance_id"] == b.as_str() && r["pass"] == false)
    );
    assert!(of_b[0]["id"].as_i64() > of_b[1]["id"].as_i64());
    assert_eq!(
        history(&app, "?instance_id=nobody").await,
        Vec::<Value>::new()
    );
}

#[actix_web::test]
async fn the_background_pass_runs_on_its_own() {
    let app =
        TestApp::spawn_with(|c| c.compliance_interval = Some(Duration::from_millis(100))).await;
    put_contract(&app, "p", "bad", json!({"GET /x": {}})).await;
    let id = agent_in(&app, "timer", "p").await;
    let events = wait_events(&app, "compliance.violation", 1).await;
    assert_eq!(events[0]["data"]["instance_id"], id.as_str(), "{events:?}");
    assert_eq!(events[0]["data"]["contract"], "bad");
    assert!(
        !history(&app, &format!("?instance_id={id}"))
            .await
            .is_empty()
    );
}

#[actix_web::test]
async fn a_panicking_pass_restarts_the_worker_and_the_same_address_works_again() {
    let app = spawn().await;
    put_contract(&app, "p", "api", good_endpoints()).await;
    let id = agent_in(&app, "survivor", "p").await;
    let monitor = app.domains.compliance.clone();

    monitor.send(InjectFault).await.unwrap();
    let failed = monitor.send(RunOnce).await.expect("the mailbox stays open");
    assert!(failed.is_err());
    assert_eq!(monitor.send(GetMonitorStats).await.unwrap().restarts, 1);
    assert_eq!(history(&app, "").await, Vec::<Value>::new());

    // Through the same Addr, the next pass does the work.
    let ok = monitor.send(RunOnce).await.unwrap();
    assert!(ok.is_ok());
    let runs = history(&app, "").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["instance_id"], id.as_str());
    assert_eq!(runs[0]["contract"], "api");
    assert_eq!(monitor.send(GetMonitorStats).await.unwrap().restarts, 1);
    // And over HTTP too.
    assert_eq!(run(&app).await.len(), 1);
    assert_eq!(history(&app, "").await.len(), 2);
}
