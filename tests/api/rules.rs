//! The rule lifecycle (API §10): proposals, accept/reject, export by source and the
//! all-or-nothing import upsert, plus the `rule.proposed` event.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_json};
use crate::specs::wait_events;
use crate::validation::{fired, put_rules, rule, rules_of, validate};

/// Proposes a rule; must answer `{"project", "rule_id", "status": "proposed"}`.
async fn propose(app: &TestApp, project: &str, rule_id: &str, extra: Value) {
    let mut body = json!({"project": project, "rule_id": rule_id, "pattern": "forbidden"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    assert_eq!(
        app.post("/api/rules/propose", Some(body), StatusCode::OK)
            .await,
        json!({"project": project, "rule_id": rule_id, "status": "proposed"})
    );
}

async fn decide(app: &TestApp, project: &str, rule_id: &str, action: &str) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!("/api/rules/{project}/{rule_id}/{action}"),
    )
    .send()
    .await
    .unwrap()
}

async fn import(app: &TestApp, rules: Value) -> reqwest::Response {
    app.request(Method::POST, "/api/rules/import")
        .json(&rules)
        .send()
        .await
        .unwrap()
}

/// An import that must succeed.
async fn import_ok(app: &TestApp, rules: Value) {
    let count = rules.as_array().unwrap().len();
    assert_eq!(
        assert_json(import(app, rules).await, StatusCode::OK).await,
        json!({"imported": count})
    );
}

/// Accepts or rejects a proposal; must succeed.
async fn decide_ok(app: &TestApp, project: &str, rule_id: &str, action: &str) {
    assert_json(decide(app, project, rule_id, action).await, StatusCode::OK).await;
}

/// `(project, rule_id)` of every exported rule, in order.
async fn export(app: &TestApp, query: &str) -> Vec<(String, String)> {
    app.get_json(&format!("/api/rules/export{query}"))
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "accepted", "{r}");
            (
                r["project"].as_str().unwrap().to_string(),
                r["rule_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(p, r)| (p.to_string(), r.to_string()))
        .collect()
}

#[actix_web::test]
async fn a_proposal_is_stored_as_learned_and_proposed_with_defaults() {
    let app = TestApp::spawn().await;
    propose(&app, "p", "bare", Value::Null).await;
    propose(
        &app,
        "p",
        "full",
        json!({"severity": "warning", "match_type": "missing", "message": "Use tokens",
               "applies_to": ["*.css"], "stack": "goth", "proposed_by": "agent-x",
               "context": "found hex colours", "source": "local", "status": "accepted"}),
    )
    .await;
    let bare = rule(&app, "p", "bare").await;
    assert_eq!(
        bare,
        json!({"project": "p", "rule_id": "bare", "severity": "error", "match_type": "regex",
               "pattern": "forbidden", "message": "", "applies_to": ["*"], "stack": "",
               "source": "learned", "status": "proposed", "created_at": bare["created_at"]})
    );
    assert!(bare["created_at"].as_str().unwrap().ends_with('Z'));
    let full = rule(&app, "p", "full").await;
    assert_eq!(
        full,
        json!({"project": "p", "rule_id": "full", "severity": "warning", "match_type": "missing",
               "pattern": "forbidden", "message": "Use tokens", "applies_to": ["*.css"],
               "stack": "goth", "source": "learned", "status": "proposed",
               "proposed_by": "agent-x", "context": "found hex colours",
               "created_at": full["created_at"]})
    );
    let got = validate(&app, "p", json!({"content": "forbidden"})).await;
    assert_eq!(got, Vec::<Value>::new());
}

#[actix_web::test]
async fn a_proposal_publishes_rule_proposed() {
    let app = TestApp::spawn().await;
    propose(
        &app,
        "web",
        "no-hex",
        json!({"proposed_by": "agent-7", "context": "secret context"}),
    )
    .await;
    // A refused duplicate publishes nothing; the next proposal is the second event.
    let dup = app
        .request(Method::POST, "/api/rules/propose")
        .json(&json!({"project": "web", "rule_id": "no-hex", "pattern": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(dup, StatusCode::CONFLICT).await;
    propose(&app, "web", "second", json!({"proposed_by": "agent-8"})).await;

    let events = wait_events(&app, "rule.proposed", 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["source"], "rules");
    assert_eq!(
        events[0]["data"],
        json!({"project": "web", "rule_id": "no-hex", "proposed_by": "agent-7"})
    );
    assert_eq!(events[1]["source"], "rules");
    assert_eq!(
        events[1]["data"],
        json!({"project": "web", "rule_id": "second", "proposed_by": "agent-8"})
    );
}

#[actix_web::test]
async fn proposing_an_existing_rule_id_is_409_whatever_its_status_or_source() {
    let app = TestApp::spawn().await;
    put_rules(&app, "p", json!([{"rule_id": "local", "pattern": "orig"}])).await;
    import_ok(
        &app,
        json!([{"project": "p", "rule_id": "ext", "pattern": "orig"}]),
    )
    .await;
    for id in ["pending", "acc", "rej"] {
        propose(&app, "p", id, json!({"pattern": "orig"})).await;
    }
    decide_ok(&app, "p", "acc", "accept").await;
    decide_ok(&app, "p", "rej", "reject").await;
    let before = rules_of(&app, "p").await;

    for id in ["local", "ext", "pending", "acc", "rej"] {
        let resp = app
            .request(Method::POST, "/api/rules/propose")
            .json(&json!({"project": "p", "rule_id": id, "pattern": "changed",
                          "severity": "warning"}))
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::CONFLICT).await;
    }
    assert_eq!(rules_of(&app, "p").await, before);
    // The same rule_id in another project is a different rule.
    propose(&app, "q", "local", Value::Null).await;
}

#[actix_web::test]
async fn proposals_need_project_rule_id_and_pattern() {
    let app = TestApp::spawn().await;
    let bodies: &[&str] = &[
        r#"{"rule_id": "r", "pattern": "x"}"#,
        r#"{"project": "p", "pattern": "x"}"#,
        r#"{"project": "p", "rule_id": "r"}"#,
        r#"{"project": "", "rule_id": "r", "pattern": "x"}"#,
        r#"{"project": "p", "rule_id": "", "pattern": "x"}"#,
        r#"{"project": "p", "rule_id": "r", "pattern": ""}"#,
        r#"{"project": "p", "rule_id": "r", "pattern": 5}"#,
        r#"[{"project": "p", "rule_id": "r", "pattern": "x"}]"#,
        "not json",
        "",
    ];
    for body in bodies {
        let resp = app
            .request(Method::POST, "/api/rules/propose")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(rules_of(&app, "p").await, Vec::<Value>::new());
}

#[actix_web::test]
async fn accept_and_reject_move_only_proposed_rules_and_keep_their_fields() {
    let app = TestApp::spawn().await;
    let extra = json!({"severity": "warning", "message": "m", "stack": "goth",
                       "proposed_by": "agent-x", "context": "ctx"});
    propose(&app, "p", "yes", extra.clone()).await;
    propose(&app, "p", "no", extra).await;
    let before = rule(&app, "p", "yes").await;

    let resp = decide(&app, "p", "yes", "accept").await;
    assert_eq!(
        assert_json(resp, StatusCode::OK).await,
        json!({"project": "p", "rule_id": "yes", "status": "accepted"})
    );
    let mut expected = before.clone();
    expected["status"] = json!("accepted");
    assert_eq!(rule(&app, "p", "yes").await, expected);

    let resp = decide(&app, "p", "no", "reject").await;
    assert_eq!(
        assert_json(resp, StatusCode::OK).await,
        json!({"project": "p", "rule_id": "no", "status": "rejected"})
    );
    let rejected = rule(&app, "p", "no").await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["source"], "learned");
    assert_eq!(rejected["proposed_by"], "agent-x");

    // Decided, unknown, in another project, or never proposed: 404, nothing changes.
    put_rules(&app, "loc", json!([{"rule_id": "local", "pattern": "x"}])).await;
    import_ok(
        &app,
        json!([{"project": "loc", "rule_id": "ext", "pattern": "x"}]),
    )
    .await;
    propose(&app, "p", "waiting", Value::Null).await;
    for (project, id) in [
        ("p", "yes"),
        ("p", "no"),
        ("p", "unknown"),
        ("other", "waiting"),
        ("loc", "local"),
        ("loc", "ext"),
    ] {
        for action in ["accept", "reject"] {
            assert_error(
                decide(&app, project, id, action).await,
                StatusCode::NOT_FOUND,
            )
            .await;
        }
    }
    assert_eq!(rule(&app, "p", "yes").await["status"], "accepted");
    assert_eq!(rule(&app, "p", "no").await["status"], "rejected");
    assert_eq!(rule(&app, "p", "waiting").await["status"], "proposed");
    assert_eq!(rule(&app, "loc", "ext").await["status"], "accepted");
}

#[actix_web::test]
async fn export_lists_accepted_rules_of_the_chosen_sources_by_project_then_rule_id() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "b-proj",
        json!([{"rule_id": "z", "pattern": "1"}, {"rule_id": "a", "pattern": "1"}]),
    )
    .await;
    put_rules(&app, "_global", json!([{"rule_id": "g", "pattern": "1"}])).await;
    for id in ["m", "n", "o"] {
        propose(&app, "a-proj", id, Value::Null).await;
    }
    decide_ok(&app, "a-proj", "m", "accept").await;
    decide_ok(&app, "a-proj", "o", "reject").await;
    import_ok(
        &app,
        json!([
            {"project": "a-proj", "rule_id": "e", "pattern": "1"},
            {"project": "c-proj", "rule_id": "k", "pattern": "1", "source": "local"},
        ]),
    )
    .await;

    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "",
            &[
                ("_global", "g"),
                ("a-proj", "m"),
                ("b-proj", "a"),
                ("b-proj", "z"),
                ("c-proj", "k"),
            ],
        ),
        ("?source=external", &[("a-proj", "e")]),
        ("?source=learned", &[("a-proj", "m")]),
        (
            "?source=local",
            &[
                ("_global", "g"),
                ("b-proj", "a"),
                ("b-proj", "z"),
                ("c-proj", "k"),
            ],
        ),
        (
            "?source=local,external",
            &[
                ("_global", "g"),
                ("a-proj", "e"),
                ("b-proj", "a"),
                ("b-proj", "z"),
                ("c-proj", "k"),
            ],
        ),
        ("?source=nonsense", &[]),
    ];
    for (query, want) in cases {
        assert_eq!(export(&app, query).await, pairs(want), "{query}");
    }

    // Full rule objects.
    let all = app.get_json("/api/rules/export?source=learned").await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(all[0], rule(&app, "a-proj", "m").await);
    assert_eq!(all[0]["source"], "learned");
}

#[actix_web::test]
async fn import_applies_defaults_and_answers_the_count() {
    let app = TestApp::spawn().await;
    let resp = import(
        &app,
        json!([
            {"project": "p", "rule_id": "one", "pattern": "x"},
            {"project": "q", "rule_id": "two", "pattern": "y", "severity": "warning",
             "match_type": "missing", "message": "m", "applies_to": ["*.go"], "stack": "go",
             "source": "learned", "status": "proposed"},
        ]),
    )
    .await;
    assert_eq!(
        assert_json(resp, StatusCode::OK).await,
        json!({"imported": 2})
    );
    let one = rule(&app, "p", "one").await;
    assert_eq!(
        one,
        json!({"project": "p", "rule_id": "one", "severity": "error", "match_type": "regex",
               "pattern": "x", "message": "", "applies_to": ["*"], "stack": "",
               "source": "external", "status": "accepted", "created_at": one["created_at"]})
    );
    let two = rule(&app, "q", "two").await;
    assert_eq!(
        (
            &two["severity"],
            &two["match_type"],
            &two["message"],
            &two["applies_to"],
            &two["stack"],
            &two["source"],
            &two["status"],
        ),
        (
            &json!("warning"),
            &json!("missing"),
            &json!("m"),
            &json!(["*.go"]),
            &json!("go"),
            &json!("learned"),
            &json!("accepted"),
        )
    );
    assert_eq!(
        fired(&validate(&app, "p", json!({"content": "x"})).await),
        ["one"]
    );
}

#[actix_web::test]
async fn import_is_all_or_nothing_and_names_the_bad_item() {
    let app = TestApp::spawn().await;
    import_ok(
        &app,
        json!([{"project": "p", "rule_id": "keep", "pattern": "old"}]),
    )
    .await;
    let before = rules_of(&app, "p").await;
    let defects = [
        json!({"rule_id": "third", "pattern": "z"}),
        json!({"project": "p", "pattern": "z"}),
        json!({"project": "p", "rule_id": "third"}),
        json!({"project": "", "rule_id": "third", "pattern": "z"}),
        json!({"project": "p", "rule_id": "", "pattern": "z"}),
        json!({"project": "p", "rule_id": "third", "pattern": ""}),
    ];
    for defect in defects {
        let body = json!([
            {"project": "p", "rule_id": "keep", "pattern": "new"},
            {"project": "p", "rule_id": "fresh", "pattern": "y"},
            defect.clone(),
        ]);
        let err = assert_error(import(&app, body).await, StatusCode::BAD_REQUEST).await;
        let text = err["error"].as_str().unwrap();
        assert!(text.contains('2'), "the error names index 2: {text}");
        assert_eq!(rules_of(&app, "p").await, before, "after {defect}");
    }
}

#[actix_web::test]
async fn import_rejects_bodies_that_are_not_a_non_empty_array_of_objects() {
    let app = TestApp::spawn().await;
    for body in [
        "[]",
        r#"{"project": "p", "rule_id": "r", "pattern": "x"}"#,
        "not json",
        "",
        "null",
        "[1]",
    ] {
        let resp = app
            .request(Method::POST, "/api/rules/import")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(
        export(&app, "?source=local,learned,external").await,
        pairs(&[])
    );
}

#[actix_web::test]
async fn import_upserts_over_proposals_rejections_and_local_rules() {
    let app = TestApp::spawn().await;
    put_rules(&app, "p", json!([{"rule_id": "loc", "pattern": "a"}])).await;
    propose(
        &app,
        "p",
        "r",
        json!({"pattern": "old", "severity": "warning", "stack": "react",
               "message": "old msg", "applies_to": ["*.tsx"], "match_type": "missing"}),
    )
    .await;
    propose(&app, "p", "rej", Value::Null).await;
    decide_ok(&app, "p", "rej", "reject").await;

    let resp = import(
        &app,
        json!([
            {"project": "p", "rule_id": "r", "pattern": "new", "message": "new msg"},
            {"project": "p", "rule_id": "rej", "pattern": "again"},
            {"project": "p", "rule_id": "loc", "pattern": "b", "source": "learned"},
        ]),
    )
    .await;
    assert_eq!(
        assert_json(resp, StatusCode::OK).await,
        json!({"imported": 3})
    );
    let rules = rules_of(&app, "p").await;
    assert_eq!(rules.len(), 3, "{rules:?}");
    let r = rule(&app, "p", "r").await;
    for (field, want) in [
        ("pattern", json!("new")),
        ("message", json!("new msg")),
        ("severity", json!("error")),
        ("match_type", json!("regex")),
        ("stack", json!("")),
        ("applies_to", json!(["*"])),
        ("source", json!("external")),
        ("status", json!("accepted")),
    ] {
        assert_eq!(r[field], want, "{field} in {r}");
    }
    assert_eq!(rule(&app, "p", "rej").await["status"], "accepted");
    let loc = rule(&app, "p", "loc").await;
    assert_eq!(
        (&loc["source"], &loc["pattern"]),
        (&json!("learned"), &json!("b"))
    );

    // No longer a proposal.
    assert_error(
        decide(&app, "p", "r", "accept").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let got = validate(&app, "p", json!({"content": "old\nnew\nagain"})).await;
    assert_eq!(fired(&got), ["r", "rej"]);
}

#[actix_web::test]
async fn every_rule_lists_by_status_and_one_rule_deletes_alone() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "web",
        json!([{"rule_id": "keep", "pattern": "x"}, {"rule_id": "drop", "pattern": "y"}]),
    )
    .await;
    propose(&app, "web", "pending", json!({})).await;
    propose(
        &app,
        "api",
        "also-pending",
        json!({"proposed_by": "agent-7"}),
    )
    .await;

    let all = app.get_json("/api/rules").await;
    let ids: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}/{}:{}", r["project"], r["rule_id"], r["status"]).replace('"', ""))
        .collect();
    assert_eq!(
        ids,
        [
            "api/also-pending:proposed",
            "web/drop:accepted",
            "web/keep:accepted",
            "web/pending:proposed"
        ]
    );
    let proposed = app.get_json("/api/rules?status=proposed").await;
    assert_eq!(proposed.as_array().unwrap().len(), 2, "{proposed}");
    assert_eq!(proposed[0]["proposed_by"], "agent-7");
    let web_proposed = app.get_json("/api/rules?status=proposed&project=web").await;
    assert_eq!(web_proposed.as_array().unwrap().len(), 1);
    assert_eq!(app.get_json("/api/rules?status=rejected").await, json!([]));

    // Deleting one accepted rule leaves the pending proposal and the other rule alone.
    let deleted = app
        .request(Method::DELETE, "/api/rules/web/drop")
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_json(deleted, StatusCode::OK).await,
        json!({"deleted": "web/drop"})
    );
    let left: Vec<Value> = rules_of(&app, "web").await;
    let left: Vec<&str> = left
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["keep", "pending"]);
    let found = validate(&app, "web", json!({"content": "x y", "filename": "a.txt"})).await;
    assert_eq!(fired(&found), ["keep"], "the deleted rule no longer fires");

    let again = app
        .request(Method::DELETE, "/api/rules/web/drop")
        .send()
        .await
        .unwrap();
    assert_error(again, StatusCode::NOT_FOUND).await;
    let proposal = app
        .request(Method::DELETE, "/api/rules/api/also-pending")
        .send()
        .await
        .unwrap();
    assert_eq!(proposal.status(), StatusCode::OK);
    let audit = app.get_json("/api/audit?action=rule.delete").await;
    let resources: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].as_str().unwrap())
        .collect();
    assert_eq!(resources, ["api/also-pending", "web/drop"]);
    let wrong = app
        .request(Method::POST, "/api/rules")
        .send()
        .await
        .unwrap();
    assert_error(wrong, StatusCode::METHOD_NOT_ALLOWED).await;
}
