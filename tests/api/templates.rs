//! Templates (API §14): create with defaults, `data` kept as the JSON supplied, listing
//! and filters, delete, and apply (rules import into a project; contracts and bundles
//! stored as a spec named after the template).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_json};
use crate::specs::put_spec;
use crate::validation::{fired, rule, rules_of, validate};

async fn create(app: &TestApp, body: Value) -> Value {
    app.post("/api/templates", Some(body), StatusCode::OK).await
}

async fn apply(app: &TestApp, id: &str, body: &str) -> reqwest::Response {
    app.request(Method::POST, &format!("/api/templates/{id}/apply"))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// An apply that must succeed; checks the answer.
async fn apply_ok(app: &TestApp, id: &str, project: &str, kind: &str) {
    let body = json!({"project": project}).to_string();
    assert_eq!(
        assert_json(apply(app, id, &body).await, StatusCode::OK).await,
        json!({"applied": id, "project": project, "kind": kind})
    );
}

async fn list_ids(app: &TestApp, query: &str) -> Vec<String> {
    app.get_json(&format!("/api/templates{query}"))
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert!(t.get("data").is_none(), "summaries carry no data: {t}");
            t["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The current `(version, parsed JSON)` of a spec.
async fn spec_json(app: &TestApp, project: &str, name: &str) -> (String, Value) {
    let resp = app.get(&format!("/api/specs/{project}/{name}")).await;
    assert_eq!(resp.status(), StatusCode::OK, "{project}/{name}");
    let version = resp.headers()["x-koor-version"]
        .to_str()
        .unwrap()
        .to_string();
    (version, resp.json().await.unwrap())
}

#[actix_web::test]
async fn create_returns_the_full_template_with_defaults() {
    let app = TestApp::spawn().await;
    let t = create(&app, json!({"id": "strict", "name": "Strict API Rules"})).await;
    assert!(t["created_at"].as_str().unwrap().ends_with('Z'), "{t}");
    assert!(t["updated_at"].as_str().unwrap().ends_with('Z'), "{t}");
    assert_eq!(
        t,
        json!({"id": "strict", "name": "Strict API Rules", "description": "", "kind": "rules",
               "data": [], "tags": [], "version": 1,
               "created_at": t["created_at"], "updated_at": t["updated_at"]})
    );
    assert_eq!(app.get_json("/api/templates/strict").await, t);

    for kind in ["contracts", "bundle"] {
        let t = create(&app, json!({"id": kind, "name": kind, "kind": kind})).await;
        assert_eq!(t["kind"], kind);
        assert_eq!(t["data"], json!({}), "{kind}");
    }
    let full = create(
        &app,
        json!({"id": "full", "name": "Full", "description": "d", "kind": "rules",
               "data": [{"rule_id": "r", "pattern": "p"}], "tags": ["api", "strict"]}),
    )
    .await;
    assert_eq!(full["description"], "d");
    assert_eq!(full["tags"], json!(["api", "strict"]));
}

#[actix_web::test]
async fn data_is_returned_as_the_json_value_supplied() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            "rules",
            json!([{"rule_id": "r", "pattern": r"\d+\s*\\", "applies_to": ["*.go"]}]),
        ),
        (
            "contracts",
            json!({"kind": "contract", "endpoints": {"GET /x": {"response": {}}}}),
        ),
        ("bundle", json!([1, "two", {"three": 3.5}, null, true])),
        ("bundle", json!("just a string")),
        (
            "bundle",
            json!({"nested": {"ünïcode": "✓ \"quoted\"", "n": -12, "big": 1e300}}),
        ),
    ];
    for (i, (kind, data)) in cases.iter().enumerate() {
        let id = format!("t{i}");
        let t = create(
            &app,
            json!({"id": id, "name": "n", "kind": kind, "data": data}),
        )
        .await;
        assert_eq!(t["data"], *data, "{kind}");
        assert_eq!(
            app.get_json(&format!("/api/templates/{id}")).await["data"],
            *data,
            "{kind}"
        );
    }
}

#[actix_web::test]
async fn the_list_is_newest_first_without_data_and_filters_by_kind_and_tag() {
    let app = TestApp::spawn().await;
    create(
        &app,
        json!({"id": "first", "name": "1", "kind": "rules", "tags": ["api", "strict"]}),
    )
    .await;
    create(
        &app,
        json!({"id": "second", "name": "2", "kind": "contracts", "tags": ["api"]}),
    )
    .await;
    create(&app, json!({"id": "third", "name": "3", "kind": "bundle"})).await;
    create(
        &app,
        json!({"id": "fourth", "name": "4", "kind": "rules", "tags": ["apis"]}),
    )
    .await;

    let summaries = app.get_json("/api/templates").await;
    let fourth = &summaries[0];
    for (field, want) in [
        ("id", json!("fourth")),
        ("name", json!("4")),
        ("kind", json!("rules")),
        ("tags", json!(["apis"])),
        ("version", json!(1)),
        ("description", json!("")),
    ] {
        assert_eq!(fourth[field], want, "{field} in {fourth}");
    }
    let cases: &[(&str, &[&str])] = &[
        ("", &["fourth", "third", "second", "first"]),
        ("?kind=rules", &["fourth", "first"]),
        ("?kind=contracts", &["second"]),
        ("?tag=api", &["second", "first"]),
        ("?tag=strict", &["first"]),
        ("?kind=rules&tag=api", &["first"]),
        ("?kind=nope", &[]),
        ("?tag=ap", &[]),
        ("?unknown=1", &["fourth", "third", "second", "first"]),
    ];
    for (query, want) in cases {
        assert_eq!(list_ids(&app, query).await, *want, "{query}");
    }
}

#[actix_web::test]
async fn a_duplicate_id_is_409_and_keeps_the_original() {
    let app = TestApp::spawn().await;
    create(&app, json!({"id": "dup", "name": "Original"})).await;
    let resp = app
        .request(Method::POST, "/api/templates")
        .json(&json!({"id": "dup", "name": "Copy", "kind": "bundle"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::CONFLICT).await;
    let t = app.get_json("/api/templates/dup").await;
    assert_eq!(
        (&t["name"], &t["kind"]),
        (&json!("Original"), &json!("rules"))
    );
    assert_eq!(list_ids(&app, "").await, ["dup"]);
}

#[actix_web::test]
async fn invalid_templates_are_400_and_store_nothing() {
    let app = TestApp::spawn().await;
    let bodies: &[&str] = &[
        r#"{"name": "N"}"#,
        r#"{"id": "", "name": "N"}"#,
        r#"{"id": "x"}"#,
        r#"{"id": "x", "name": ""}"#,
        r#"{"id": "x", "name": "N", "kind": "policy"}"#,
        r#"{"id": "x", "name": "N", "kind": "rules", "data": {"rule_id": "r"}}"#,
        r#"{"id": "x", "name": "N", "data": "not an array"}"#,
        r#"{"id": "x", "name": "N", "tags": "api"}"#,
        r#"[{"id": "x", "name": "N"}]"#,
        "not json",
        "",
    ];
    for body in bodies {
        let resp = app
            .request(Method::POST, "/api/templates")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(app.get_json("/api/templates").await, json!([]));
    assert_error(app.get("/api/templates/x").await, StatusCode::NOT_FOUND).await;
}

#[actix_web::test]
async fn delete_removes_a_template_and_unknown_ids_are_404() {
    let app = TestApp::spawn().await;
    assert_error(app.get("/api/templates/none").await, StatusCode::NOT_FOUND).await;
    create(&app, json!({"id": "gone", "name": "G"})).await;
    create(&app, json!({"id": "stays", "name": "S"})).await;
    let del = |id: &'static str| {
        let req = app.request(Method::DELETE, &format!("/api/templates/{id}"));
        async move { req.send().await.unwrap() }
    };
    assert_eq!(
        assert_json(del("gone").await, StatusCode::OK).await,
        json!({"deleted": "gone"})
    );
    assert_error(app.get("/api/templates/gone").await, StatusCode::NOT_FOUND).await;
    assert_error(del("gone").await, StatusCode::NOT_FOUND).await;
    assert_error(del("none").await, StatusCode::NOT_FOUND).await;
    assert_eq!(list_ids(&app, "").await, ["stays"]);
    // The id is free again.
    create(&app, json!({"id": "gone", "name": "Again"})).await;
}

#[actix_web::test]
async fn applying_rules_imports_them_into_the_project_as_accepted_upserts() {
    let app = TestApp::spawn().await;
    app.post(
        "/api/rules/propose",
        Some(json!({"project": "web", "rule_id": "no-eval", "pattern": "old"})),
        StatusCode::OK,
    )
    .await;
    create(
        &app,
        json!({"id": "sec", "name": "Security", "kind": "rules", "data": [
            {"rule_id": "no-eval", "pattern": r"eval\(", "project": "elsewhere",
             "severity": "warning", "message": "no eval"},
            {"rule_id": "todo", "pattern": "TODO", "source": "learned"}
        ]}),
    )
    .await;
    apply_ok(&app, "sec", "web", "rules").await;

    let no_eval = rule(&app, "web", "no-eval").await;
    for (field, want) in [
        ("project", json!("web")),
        ("pattern", json!(r"eval\(")),
        ("severity", json!("warning")),
        ("message", json!("no eval")),
        ("match_type", json!("regex")),
        ("applies_to", json!(["*"])),
        ("source", json!("external")),
        ("status", json!("accepted")),
    ] {
        assert_eq!(no_eval[field], want, "{field} in {no_eval}");
    }
    let todo = rule(&app, "web", "todo").await;
    assert_eq!(
        (&todo["source"], &todo["status"]),
        (&json!("learned"), &json!("accepted"))
    );
    assert_eq!(rules_of(&app, "elsewhere").await, Vec::<Value>::new());
    // The pending proposal was overwritten, so it can no longer be accepted.
    let resp = app
        .request(Method::POST, "/api/rules/web/no-eval/accept")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::NOT_FOUND).await;

    let got = validate(&app, "web", json!({"content": "x = eval(y)\nold TODO"})).await;
    assert_eq!(fired(&got), ["no-eval", "todo"]);
    assert_eq!(got[0]["line"], 1);

    // Applying again, or to another project, upserts.
    apply_ok(&app, "sec", "web", "rules").await;
    assert_eq!(rules_of(&app, "web").await.len(), 2);
    apply_ok(&app, "sec", "api", "rules").await;
    assert_eq!(rules_of(&app, "api").await.len(), 2);
}

#[actix_web::test]
async fn a_rules_template_with_an_invalid_element_applies_nothing() {
    let app = TestApp::spawn().await;
    create(
        &app,
        json!({"id": "half", "name": "H", "data": [
            {"rule_id": "fine", "pattern": "x"}, {"rule_id": "no-pattern"}]}),
    )
    .await;
    create(
        &app,
        json!({"id": "anon", "name": "A", "data": [{"pattern": "x"}]}),
    )
    .await;
    for id in ["half", "anon"] {
        assert_error(
            apply(&app, id, r#"{"project": "p"}"#).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    assert_eq!(rules_of(&app, "p").await, Vec::<Value>::new());

    create(&app, json!({"id": "empty", "name": "E", "data": []})).await;
    apply_ok(&app, "empty", "p", "rules").await;
    assert_eq!(rules_of(&app, "p").await, Vec::<Value>::new());
}

#[actix_web::test]
async fn applying_contracts_or_a_bundle_stores_a_spec_named_after_the_template() {
    let app = TestApp::spawn().await;
    let contract = json!({"kind": "contract", "version": 1, "endpoints": {
        "POST /api/trucks": {"request": {"plate": {"type": "string", "required": true}}}}});
    create(
        &app,
        json!({"id": "api-contract", "name": "API", "kind": "contracts", "data": contract}),
    )
    .await;
    apply_ok(&app, "api-contract", "Truck-Wash", "contracts").await;
    assert_eq!(
        spec_json(&app, "Truck-Wash", "api-contract").await,
        ("1".to_string(), contract.clone())
    );
    // A second apply is the next version of the same spec.
    apply_ok(&app, "api-contract", "Truck-Wash", "contracts").await;
    assert_eq!(spec_json(&app, "Truck-Wash", "api-contract").await.0, "2");
    let listed = app.get_json("/api/specs/Truck-Wash").await;
    assert_eq!(listed["specs"][0]["name"], "api-contract");
    assert_eq!(listed["specs"][0]["version"], 2);

    // The stored spec works as a contract.
    let check = app
        .post(
            "/api/contracts/Truck-Wash/api-contract/validate",
            Some(json!({"endpoint": "POST /api/trucks", "payload": {"plate": "AB-1"}})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(check, json!({"valid": true, "violations": []}));

    // A bundle continues an existing spec's versions.
    put_spec(&app, "p", "kit", b"{\"before\": true}").await;
    let data = json!({"rules": [], "notes": ["a", "b"]});
    create(
        &app,
        json!({"id": "kit", "name": "Kit", "kind": "bundle", "data": data}),
    )
    .await;
    apply_ok(&app, "kit", "p", "bundle").await;
    assert_eq!(spec_json(&app, "p", "kit").await, ("2".to_string(), data));
}

#[actix_web::test]
async fn apply_needs_a_project_and_an_existing_template() {
    let app = TestApp::spawn().await;
    create(&app, json!({"id": "t", "name": "T"})).await;
    assert_error(
        apply(&app, "missing", r#"{"project": "p"}"#).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    for body in [
        "{}",
        r#"{"project": ""}"#,
        r#"{"project": 5}"#,
        "",
        "not json",
        "[]",
    ] {
        assert_error(apply(&app, "t", body).await, StatusCode::BAD_REQUEST).await;
        // Body checks come before the lookup.
        assert_error(apply(&app, "missing", body).await, StatusCode::BAD_REQUEST).await;
    }
}
