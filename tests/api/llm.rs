//! LLM usage (API §17) and budgets: recording with validation and defaults, the one
//! selector of the listing, summaries, the side effects of a record (audit, event, agent
//! metrics), the calling agent as the default instance, and budgets with their spend,
//! crossings announced once per period (also across a restart) and the CLI.

use std::process::Output;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_json};

/// A usage body for `instance`, `project`, `session`, `model`, (tokens in, out) and cost.
fn usage(
    instance: &str,
    project: &str,
    session: &str,
    model: &str,
    tokens: (i64, i64),
    cost: f64,
) -> Value {
    json!({"provider": "openai", "model": model, "instance_id": instance, "project": project,
           "session_tag": session, "tokens_in": tokens.0, "tokens_out": tokens.1,
           "cost_usd": cost})
}

/// A record that must succeed; returns the answer.
async fn record(app: &TestApp, body: Value) -> Value {
    app.post("/api/llm/usage", Some(body), StatusCode::OK).await
}

async fn post_raw(app: &TestApp, body: &str) -> reqwest::Response {
    app.request(Method::POST, "/api/llm/usage")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn put_budget(app: &TestApp, scope: &str, body: &str) -> reqwest::Response {
    app.request(Method::PUT, &format!("/api/llm/budgets/{scope}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// A budget PUT that must succeed; returns the status.
async fn set_budget(app: &TestApp, scope: &str, body: Value) -> Value {
    assert_json(
        put_budget(app, scope, &body.to_string()).await,
        StatusCode::OK,
    )
    .await
}

/// The ids of a list of records.
fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

async fn listed(app: &TestApp, query: &str) -> Vec<i64> {
    ids(&app.get_json(&format!("/api/llm/usage{query}")).await)
}

/// Every stored event on `topic` (newest first).
async fn events(app: &TestApp, topic: &str) -> Vec<Value> {
    app.get_json(&format!("/api/events/history?topic={topic}&last=1000"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// The `topic` events about budget `scope`.
async fn announcements(app: &TestApp, topic: &str, scope: &str) -> Vec<Value> {
    events(app, topic)
        .await
        .into_iter()
        .filter(|e| e["data"]["scope"] == scope)
        .collect()
}

/// How many `topic` events about budget `scope` there are.
async fn count(app: &TestApp, topic: &str, scope: &str) -> usize {
    announcements(app, topic, scope).await.len()
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|got| (got - want).abs() < 1e-9)
}

#[actix_web::test]
async fn records_are_listed_newest_first_by_one_selector() {
    let app = TestApp::spawn().await;
    let a = record(&app, usage("i1", "p1", "s1", "gpt-4", (10, 5), 0.01)).await;
    assert_eq!(a["recorded"], true);
    assert_eq!(a["over_budget"], false);
    assert!(a.get("exceeded").is_none(), "{a}");
    let b = record(&app, usage("i2", "p1", "s2", "gpt-4", (1, 1), 0.0)).await;
    let c = record(&app, usage("i1", "p2", "s2", "claude", (2, 2), 0.0)).await;
    let d = record(&app, json!({"provider": "local", "model": "llama"})).await;
    let [a, b, c, d] = [a, b, c, d].map(|r| r["id"].as_i64().unwrap());
    assert!(0 < a && a < b && b < c && c < d, "{a} {b} {c} {d}");

    let cases = [
        ("", vec![d, c, b, a]),
        ("?instance=i1", vec![c, a]),
        ("?project=p1", vec![b, a]),
        ("?session_tag=s2", vec![c, b]),
        // Only one selector applies: instance > project > session_tag.
        ("?instance=i2&project=p2&session_tag=s1", vec![b]),
        ("?project=p2&session_tag=s1", vec![c]),
        // An empty value is not given.
        ("?instance=&project=p1", vec![b, a]),
        ("?instance=nobody", vec![]),
        ("?limit=2", vec![d, c]),
        ("?limit=0", vec![d, c, b, a]),
        ("?limit=abc&unknown=1", vec![d, c, b, a]),
    ];
    for (query, want) in cases {
        assert_eq!(listed(&app, query).await, want, "{query}");
    }

    let list = app.get_json("/api/llm/usage?instance=i1").await;
    let first = &list[1];
    assert!(
        first["created_at"].as_str().unwrap().ends_with('Z'),
        "{first}"
    );
    assert_eq!(
        *first,
        json!({"id": a, "instance_id": "i1", "project": "p1", "provider": "openai",
               "model": "gpt-4", "tokens_in": 10, "tokens_out": 5, "cost_usd": 0.01,
               "request_type": "completion", "session_tag": "s1",
               "created_at": first["created_at"]})
    );
    let newest = app.get_json("/api/llm/usage?limit=1").await;
    let defaults = &newest[0];
    assert_eq!(
        *defaults,
        json!({"id": d, "instance_id": "", "project": "", "provider": "local",
               "model": "llama", "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0,
               "request_type": "completion", "session_tag": "",
               "created_at": defaults["created_at"]})
    );
}

#[actix_web::test]
async fn time_bounds_are_inclusive_instants() {
    let app = TestApp::spawn().await;
    let id = record(&app, usage("i", "p", "", "m", (1, 1), 0.0)).await["id"]
        .as_i64()
        .unwrap();
    let created = app.get_json("/api/llm/usage").await[0]["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    let cases = [
        (format!("?from={created}&to={created}"), vec![id]),
        (
            "?from=2000-01-01&to=2999-01-01T00:00:00Z".to_string(),
            vec![id],
        ),
        ("?from=2999-01-01".to_string(), vec![]),
        ("?to=2000-01-01".to_string(), vec![]),
        ("?project=p&to=2999-01-01".to_string(), vec![id]),
    ];
    for (query, want) in cases {
        assert_eq!(listed(&app, &query).await, want, "{query}");
    }
    for path in [
        "/api/llm/usage?from=yesterday",
        "/api/llm/usage?to=2026-13-45",
        "/api/llm/usage/summary?from=soon",
    ] {
        assert_error(app.get(path).await, StatusCode::BAD_REQUEST).await;
    }
}

#[actix_web::test]
async fn invalid_records_are_400_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let cases = [
        ("", ""),
        ("{nope", ""),
        ("[]", "object"),
        ("\"x\"", "object"),
        ("null", "object"),
        ("42", "object"),
        (r#"{"model": "m"}"#, "provider"),
        (r#"{"provider": "", "model": "m"}"#, "provider"),
        (r#"{"provider": 7, "model": "m"}"#, "provider"),
        (r#"{"provider": "p"}"#, "model"),
        (
            r#"{"provider": "p", "model": "m", "tokens_in": -1}"#,
            "tokens_in",
        ),
        (
            r#"{"provider": "p", "model": "m", "tokens_in": 1.5}"#,
            "tokens_in",
        ),
        (
            r#"{"provider": "p", "model": "m", "tokens_in": "10"}"#,
            "tokens_in",
        ),
        (
            r#"{"provider": "p", "model": "m", "tokens_out": -3}"#,
            "tokens_out",
        ),
        (
            r#"{"provider": "p", "model": "m", "cost_usd": -0.01}"#,
            "cost_usd",
        ),
        (
            r#"{"provider": "p", "model": "m", "cost_usd": "1"}"#,
            "cost_usd",
        ),
        (
            r#"{"provider": "p", "model": "m", "request_type": "chat"}"#,
            "request_type",
        ),
        (
            r#"{"provider": "p", "model": "m", "project": 5}"#,
            "project",
        ),
        (
            r#"{"provider": "p", "model": "m", "session_tag": []}"#,
            "session_tag",
        ),
    ];
    for (body, field) in cases {
        let err = assert_error(post_raw(&app, body).await, StatusCode::BAD_REQUEST).await;
        assert!(
            err["error"].as_str().unwrap().contains(field),
            "{body}: {err}"
        );
    }
    assert_eq!(app.get_json("/api/llm/usage").await, json!([]));

    // Unknown fields are ignored; embedding is the other request type.
    let ok = post_raw(
        &app,
        r#"{"provider": "p", "model": "m", "request_type": "embedding", "extra": {"x": 1}}"#,
    )
    .await;
    assert_json(ok, StatusCode::OK).await;
    assert_eq!(
        app.get_json("/api/llm/usage").await[0]["request_type"],
        "embedding"
    );
}

#[actix_web::test]
async fn summaries_group_by_each_column_and_sum_costs_as_floats() {
    let app = TestApp::spawn().await;
    for body in [
        usage("i1", "p1", "s1", "gpt-4", (100, 50), 0.1),
        usage("i1", "p1", "s2", "gpt-4", (200, 100), 0.2),
        usage("i2", "p2", "s1", "claude", (300, 150), 0.3),
        usage("", "", "", "claude", (1, 1), 0.7),
    ] {
        record(&app, body).await;
    }
    let groups = |s: &Value| -> Vec<(String, i64, i64, f64, i64)> {
        s["groups"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, g)| {
                (
                    k.clone(),
                    g["total_tokens_in"].as_i64().unwrap(),
                    g["total_tokens_out"].as_i64().unwrap(),
                    g["total_cost_usd"].as_f64().unwrap(),
                    g["request_count"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    // (group key, tokens in, tokens out, cost, requests)
    type Group<'a> = (&'a str, i64, i64, f64, i64);
    let cases: [(&str, &str, Vec<Group>); 5] = [
        (
            "",
            "project",
            vec![
                ("", 1, 1, 0.7, 1),
                ("p1", 300, 150, 0.3, 2),
                ("p2", 300, 150, 0.3, 1),
            ],
        ),
        (
            "?group_by=project",
            "project",
            vec![
                ("", 1, 1, 0.7, 1),
                ("p1", 300, 150, 0.3, 2),
                ("p2", 300, 150, 0.3, 1),
            ],
        ),
        (
            "?group_by=model",
            "model",
            vec![("claude", 301, 151, 1.0, 2), ("gpt-4", 300, 150, 0.3, 2)],
        ),
        (
            "?group_by=instance",
            "instance",
            vec![
                ("", 1, 1, 0.7, 1),
                ("i1", 300, 150, 0.3, 2),
                ("i2", 300, 150, 0.3, 1),
            ],
        ),
        (
            "?group_by=session_tag",
            "session_tag",
            vec![
                ("", 1, 1, 0.7, 1),
                ("s1", 400, 200, 0.4, 2),
                ("s2", 200, 100, 0.2, 1),
            ],
        ),
    ];
    for (query, name, want) in cases {
        let s = app
            .get_json(&format!("/api/llm/usage/summary{query}"))
            .await;
        assert_eq!(s["group_by"], name, "{query}");
        assert_eq!((s["from"].clone(), s["to"].clone()), (json!(""), json!("")));
        let mut got = groups(&s);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got.len(), want.len(), "{query}: {s}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                (g.0.as_str(), g.1, g.2, g.4),
                (w.0, w.1, w.2, w.4),
                "{query}"
            );
            assert!((g.3 - w.3).abs() < 1e-9, "{query}: {g:?}");
        }
        let total = &s["total"];
        assert_eq!(total["total_tokens_in"], 601, "{query}");
        assert_eq!(total["total_tokens_out"], 301, "{query}");
        assert_eq!(total["request_count"], 4, "{query}");
        assert!(close(&total["total_cost_usd"], 1.3), "{query}: {total}");
    }

    // from/to are echoed raw; an empty range has no groups and zero totals.
    let s = app
        .get_json("/api/llm/usage/summary?group_by=model&from=2999-01-01")
        .await;
    assert_eq!(
        s,
        json!({"group_by": "model", "from": "2999-01-01", "to": "", "groups": {},
               "total": {"total_tokens_in": 0, "total_tokens_out": 0,
                         "total_cost_usd": 0.0, "request_count": 0}})
    );
    let s = app
        .get_json("/api/llm/usage/summary?to=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(s["to"], "2999-01-01T00:00:00Z");
    assert_eq!(s["total"]["request_count"], 4);
}

#[actix_web::test]
async fn summary_refuses_an_unknown_grouping() {
    let app = TestApp::spawn().await;
    for query in [
        "group_by=provider",
        "group_by=PROJECT",
        "group_by=instance_id",
    ] {
        let resp = app.get(&format!("/api/llm/usage/summary?{query}")).await;
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
}

#[actix_web::test]
async fn a_record_is_audited_published_and_counted_for_its_agent() {
    let app = TestApp::spawn().await;
    let agent = app.active_instance("agent").await;
    let answer = record(
        &app,
        json!({"provider": "anthropic", "model": "claude", "instance_id": agent,
               "project": "proj", "tokens_in": 120, "tokens_out": 30, "cost_usd": 0.5}),
    )
    .await;
    let stored = app.get_json("/api/llm/usage").await[0].clone();
    assert_eq!(stored["id"], answer["id"]);

    let audit = app.get_json("/api/audit?action=llm.usage").await;
    let audit = audit.as_array().unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["actor"], agent.as_str());
    assert_eq!(audit[0]["resource"], "proj/claude");
    assert_eq!(audit[0]["outcome"], "success");
    let detail: Value = serde_json::from_str(audit[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["tokens_in"], 120);
    assert_eq!(detail["tokens_out"], 30);
    assert!(close(&detail["cost_usd"], 0.5), "{detail}");

    let published = events(&app, "llm.usage.recorded").await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["source"], "llmcost");
    assert_eq!(published[0]["data"], stored);

    // A record without an instance is stored, published and audited but counts for nobody.
    record(&app, usage("", "proj", "", "claude", (5, 5), 0.0)).await;
    assert_eq!(events(&app, "llm.usage.recorded").await.len(), 2);
    let audit = app.get_json("/api/audit?action=llm.usage").await;
    assert_eq!(audit.as_array().unwrap().len(), 2, "{audit}");
    assert_eq!(audit[0]["actor"], "");

    let rows = app.get_json(&format!("/api/metrics/agents/{agent}")).await;
    let metric = |name: &str| -> i64 {
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["metric_name"] == name)
            .map(|r| r["metric_value"].as_i64().unwrap())
            .sum()
    };
    assert_eq!(metric("llm_requests"), 1, "{rows}");
    assert_eq!(metric("llm_tokens_in"), 120, "{rows}");
    assert_eq!(metric("llm_tokens_out"), 30, "{rows}");
    let everyone = app.get_json("/api/metrics/agents").await;
    assert!(
        everyone
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["instance_id"] != ""),
        "{everyone}"
    );
}

#[actix_web::test]
async fn the_calling_agent_is_the_default_instance() {
    let app = TestApp::spawn().await;
    let reg = app.register("caller", Value::Null).await;
    let id = reg["id"].as_str().unwrap().to_string();
    let token = reg["token"].as_str().unwrap().to_string();

    let resp = app
        .request(Method::POST, "/api/llm/usage")
        .header("x-koor-instance-token", &token)
        .json(&json!({"provider": "p", "model": "m", "tokens_in": 7}))
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
    let mine = app.get_json(&format!("/api/llm/usage?instance={id}")).await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["instance_id"], id.as_str());

    // An instance_id in the body wins over the caller.
    let resp = app
        .request(Method::POST, "/api/llm/usage")
        .header("x-koor-instance", &id)
        .json(&json!({"provider": "p", "model": "m", "instance_id": "explicit"}))
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
    assert_eq!(listed(&app, "?instance=explicit").await.len(), 1);
    assert_eq!(listed(&app, &format!("?instance={id}")).await.len(), 1);

    let rows = app.get_json(&format!("/api/metrics/agents/{id}")).await;
    let requests: i64 = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric_name"] == "llm_requests")
        .map(|r| r["metric_value"].as_i64().unwrap())
        .sum();
    assert_eq!(requests, 1, "{rows}");
}

#[actix_web::test]
async fn invalid_budgets_are_400() {
    let app = TestApp::spawn().await;
    for scope in ["team:x", "project:", "instance:", "nocolon"] {
        let resp = put_budget(&app, scope, r#"{"max_tokens": 10}"#).await;
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    let cases = [
        ("", ""),
        ("[]", "object"),
        ("{}", "max_tokens"),
        (r#"{"period": "day"}"#, "max_tokens"),
        (r#"{"period": "week", "max_tokens": 1}"#, "period"),
        (r#"{"period": 1, "max_tokens": 1}"#, "period"),
        (r#"{"max_tokens": 0}"#, "max_tokens"),
        (r#"{"max_tokens": -1}"#, "max_tokens"),
        (r#"{"max_tokens": 1.5}"#, "max_tokens"),
        (r#"{"max_tokens": "10"}"#, "max_tokens"),
        (r#"{"max_cost_usd": 0}"#, "max_cost_usd"),
        (r#"{"max_cost_usd": -2.5}"#, "max_cost_usd"),
        (r#"{"max_cost_usd": "1"}"#, "max_cost_usd"),
    ];
    for (body, field) in cases {
        let err = assert_error(
            put_budget(&app, "project:p", body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            err["error"].as_str().unwrap().contains(field),
            "{body}: {err}"
        );
    }
    assert_eq!(app.get_json("/api/llm/budgets").await, json!([]));
    assert_error(
        app.get("/api/llm/budgets/project:p").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        app.get("/api/llm/budgets/bad").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[actix_web::test]
async fn budgets_show_spend_and_what_remains() {
    let app = TestApp::spawn().await;
    record(&app, usage("i1", "p", "", "m", (100, 50), 0.25)).await;
    record(&app, usage("i1", "other", "", "m", (1000, 0), 0.5)).await;

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let s = set_budget(
        &app,
        "project:p",
        json!({"max_tokens": 1000, "max_cost_usd": 1.0}),
    )
    .await;
    assert_eq!(
        s,
        json!({"scope": "project:p", "period": "day",
               "period_start": format!("{today}T00:00:00.000000Z"),
               "max_tokens": 1000, "max_cost_usd": 1.0,
               "spent_tokens": 150, "spent_cost_usd": 0.25,
               "remaining_tokens": 850, "remaining_cost_usd": 0.75,
               "used_percent": 25.0, "status": "ok"})
    );
    assert_eq!(app.get_json("/api/llm/budgets/project:p").await, s);

    let i = set_budget(
        &app,
        "instance:i1",
        json!({"period": "month", "max_cost_usd": 1.0}),
    )
    .await;
    assert_eq!(i["period"], "month");
    assert_eq!(i["period_start"], format!("{month}-01T00:00:00.000000Z"));
    assert_eq!(i["spent_tokens"], 1150);
    assert!(close(&i["spent_cost_usd"], 0.75), "{i}");
    assert_eq!(i["max_tokens"], Value::Null);
    assert_eq!(i["remaining_tokens"], Value::Null);
    assert!(close(&i["used_percent"], 75.0), "{i}");
    assert_eq!(i["status"], "ok");

    let all = app.get_json("/api/llm/budgets").await;
    let scopes: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["instance:i1", "project:p"]);

    let audit = app.get_json("/api/audit?action=llm.budget.put").await;
    let audit = audit.as_array().unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0]["resource"], "instance:i1");
    let detail: Value = serde_json::from_str(audit[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["period"], "month");
    assert_eq!(detail["max_tokens"], Value::Null);
}

#[actix_web::test]
async fn crossings_are_announced_once_and_over_budget_records_are_kept() {
    let app = TestApp::spawn().await;
    set_budget(&app, "project:p", json!({"max_tokens": 1000})).await;
    let r = record(&app, usage("", "p", "", "m", (400, 100), 0.0)).await;
    assert_eq!(r["over_budget"], false);
    assert_eq!(count(&app, "budget.warning", "project:p").await, 0);

    let r = record(&app, usage("", "p", "", "m", (300, 0), 0.0)).await;
    assert_eq!(r["over_budget"], false, "80 % is a warning, not over: {r}");
    let w = announcements(&app, "budget.warning", "project:p").await;
    assert_eq!(w.len(), 1);
    assert_eq!(w[0]["source"], "llmcost");
    assert_eq!(w[0]["data"]["status"], "warning");
    assert_eq!(w[0]["data"]["spent_tokens"], 800);

    record(&app, usage("", "p", "", "m", (100, 0), 0.0)).await;
    assert_eq!(count(&app, "budget.warning", "project:p").await, 1);
    assert_eq!(count(&app, "budget.exceeded", "project:p").await, 0);

    let r = record(&app, usage("", "p", "", "m", (0, 100), 0.0)).await;
    assert_eq!(r["over_budget"], true);
    assert_eq!(r["exceeded"], json!(["project:p"]));
    let x = announcements(&app, "budget.exceeded", "project:p").await;
    assert_eq!(x.len(), 1);
    assert_eq!(x[0]["data"]["status"], "exceeded");
    assert_eq!(x[0]["data"]["spent_tokens"], 1000);
    assert_eq!(x[0]["data"]["remaining_tokens"], 0);

    for _ in 0..3 {
        let r = record(&app, usage("", "p", "", "m", (10, 0), 0.0)).await;
        assert_eq!(r["over_budget"], true);
    }
    assert_eq!(count(&app, "budget.warning", "project:p").await, 1);
    assert_eq!(count(&app, "budget.exceeded", "project:p").await, 1);
    assert_eq!(listed(&app, "?project=p").await.len(), 7);
    let status = app.get_json("/api/llm/budgets/project:p").await;
    assert_eq!(status["spent_tokens"], 1030);
    assert_eq!(status["status"], "exceeded");

    // A record over several budgets at once; a jump past 100 % announces both.
    set_budget(&app, "instance:i9", json!({"max_cost_usd": 1.0})).await;
    let r = record(&app, usage("i9", "p", "", "m", (0, 0), 2.0)).await;
    assert_eq!(r["over_budget"], true);
    let mut over: Vec<&str> = r["exceeded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    over.sort_unstable();
    assert_eq!(over, ["instance:i9", "project:p"]);
    assert_eq!(count(&app, "budget.warning", "instance:i9").await, 1);
    assert_eq!(count(&app, "budget.exceeded", "instance:i9").await, 1);
    assert_eq!(count(&app, "budget.exceeded", "project:p").await, 1);

    // Replacing a budget forgets what was announced.
    let s = set_budget(&app, "project:p", json!({"max_tokens": 2000})).await;
    assert_eq!(s["status"], "ok");
    record(&app, usage("", "p", "", "m", (600, 0), 0.0)).await;
    assert_eq!(count(&app, "budget.warning", "project:p").await, 2);
    assert_eq!(count(&app, "budget.exceeded", "project:p").await, 1);
}

#[actix_web::test]
async fn deleted_budgets_are_gone_and_methods_are_checked() {
    let app = TestApp::spawn().await;
    set_budget(&app, "project:p", json!({"max_tokens": 10})).await;
    let resp = app
        .request(Method::DELETE, "/api/llm/budgets/project:p")
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_json(resp, StatusCode::OK).await,
        json!({"deleted": "project:p"})
    );
    assert_error(
        app.get("/api/llm/budgets/project:p").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let again = app
        .request(Method::DELETE, "/api/llm/budgets/project:p")
        .send()
        .await
        .unwrap();
    assert_error(again, StatusCode::NOT_FOUND).await;
    let audit = app.get_json("/api/audit?action=llm.budget.delete").await;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit[0]["resource"], "project:p");

    // A record with no budget left is simply stored.
    let r = record(&app, usage("", "p", "", "m", (100, 0), 0.0)).await;
    assert_eq!(r["over_budget"], false);

    for (method, path, allow) in [
        (Method::PATCH, "/api/llm/usage", "GET, POST"),
        (Method::DELETE, "/api/llm/usage/summary", "GET"),
        (Method::POST, "/api/llm/budgets", "GET"),
        (
            Method::POST,
            "/api/llm/budgets/project:p",
            "GET, PUT, DELETE",
        ),
    ] {
        let resp = app.request(method.clone(), path).send().await.unwrap();
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        assert_error(resp, StatusCode::METHOD_NOT_ALLOWED).await;
    }
}

#[actix_web::test]
async fn budgets_and_announcements_survive_a_restart() {
    let app = TestApp::spawn().await;
    set_budget(&app, "project:p", json!({"max_tokens": 100})).await;
    let before = record(&app, usage("", "p", "", "m", (90, 0), 0.0)).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(count(&app, "budget.warning", "project:p").await, 1);
    app.stop().await;

    let dir = app.dir.path().to_path_buf();
    let again = TestApp::spawn_with(move |c| c.data_dir = dir).await;
    let status = again.get_json("/api/llm/budgets/project:p").await;
    assert_eq!(status["spent_tokens"], 90);
    assert_eq!(status["status"], "warning");

    let after = record(&again, usage("", "p", "", "m", (5, 0), 0.0)).await;
    assert!(after["id"].as_i64().unwrap() > before);
    assert_eq!(after["over_budget"], false);
    assert_eq!(
        count(&again, "budget.warning", "project:p").await,
        1,
        "the warning is not announced again after a restart"
    );
    let over = record(&again, usage("", "p", "", "m", (5, 0), 0.0)).await;
    assert_eq!(over["over_budget"], true);
    assert_eq!(count(&again, "budget.exceeded", "project:p").await, 1);
}

#[actix_web::test]
async fn concurrent_records_are_all_stored_with_distinct_ids() {
    let app = TestApp::spawn().await;
    let sends = (0..50).map(|i| {
        app.request(Method::POST, "/api/llm/usage")
            .json(&usage("i", "burst", "", "m", (i, 1), 0.01))
            .send()
    });
    let mut got = Vec::new();
    for resp in futures_util::future::join_all(sends).await {
        got.push(
            assert_json(resp.unwrap(), StatusCode::OK).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), 50);
    let mut stored = listed(&app, "?project=burst&limit=100").await;
    stored.sort_unstable();
    assert_eq!(stored, got);
    let s = app
        .get_json("/api/llm/usage/summary?group_by=project")
        .await;
    assert_eq!(s["groups"]["burst"]["request_count"], 50);
    assert_eq!(
        s["groups"]["burst"]["total_tokens_in"],
        (0..50).sum::<i64>()
    );
    assert!(close(&s["groups"]["burst"]["total_cost_usd"], 0.5), "{s}");
    assert_eq!(events(&app, "llm.usage.recorded").await.len(), 50);
}

/// Runs `koor ARGS` as a client of `app`.
async fn koor(app: &TestApp, args: &[&str]) -> Output {
    crate::cli::koor(&app.address, app.dir.path(), args, None).await
}

fn json_out(o: &Output) -> Value {
    assert!(o.status.success(), "{o:?}");
    serde_json::from_slice(&o.stdout).unwrap()
}

#[actix_web::test]
async fn cli_records_lists_summarizes_and_manages_budgets() {
    let app = TestApp::spawn().await;
    let r = json_out(
        &koor(
            &app,
            &[
                "llm",
                "record",
                "--provider",
                "openai",
                "--model",
                "gpt-4",
                "--project",
                "cli",
                "--session",
                "s1",
                "--tokens-in",
                "5",
                "--tokens-out",
                "2",
                "--cost",
                "0.5",
                "--type",
                "embedding",
            ],
        )
        .await,
    );
    assert_eq!(r["recorded"], true);
    let list = json_out(&koor(&app, &["llm", "usage", "--session", "s1"]).await);
    assert_eq!(list[0]["project"], "cli");
    assert_eq!(list[0]["request_type"], "embedding");
    assert_eq!(list[0]["tokens_out"], 2);
    let s = json_out(&koor(&app, &["llm", "summary", "--by", "model"]).await);
    assert_eq!(s["groups"]["gpt-4"]["request_count"], 1);

    let b = json_out(
        &koor(
            &app,
            &["llm", "budget", "set", "project:cli", "--tokens", "8"],
        )
        .await,
    );
    assert_eq!(b["spent_tokens"], 7);
    assert_eq!(b["status"], "warning");
    let got = json_out(&koor(&app, &["llm", "budget", "get", "project:cli"]).await);
    assert_eq!(got["max_tokens"], 8);
    let all = json_out(&koor(&app, &["llm", "budget", "list"]).await);
    assert_eq!(all.as_array().unwrap().len(), 1);

    let no_limit = koor(&app, &["llm", "budget", "set", "project:cli"]).await;
    assert_eq!(no_limit.status.code(), Some(2), "{no_limit:?}");
    let bad = koor(&app, &["llm", "summary", "--by", "provider"]).await;
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");

    json_out(&koor(&app, &["llm", "budget", "delete", "project:cli"]).await);
    let gone = koor(&app, &["llm", "budget", "get", "project:cli"]).await;
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
}
