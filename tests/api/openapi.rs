//! `GET /openapi.json` (API §26): OpenAPI 3.1, behind the API's auth, with an entry for
//! every registered route, and every JSON body endpoint refusing a non-object with 400
//! (API §1.3), walked from the document so that new routes are covered automatically.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, assert_error, assert_json};

/// Every `web::resource("…")` path registered in the server's source (the dashboard's own
/// listener excluded), with `{name:regex}` written `{name}` as in the document.
fn registered_paths() -> BTreeSet<String> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let pattern = regex::Regex::new(r#"web::resource\(\s*"([^"]+)"\s*\)"#).unwrap();
    let param = regex::Regex::new(r"\{([A-Za-z_]+):[^}]*\}").unwrap();
    let mut found = BTreeSet::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("dashboard") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for c in pattern.captures_iter(&text) {
                    found.insert(param.replace_all(&c[1], "{$1}").into_owned());
                }
            }
        }
    }
    found
}

/// `path` with every `{param}` replaced by `value`.
fn concrete(path: &str, value: &str) -> String {
    let param = regex::Regex::new(r"\{[^}]+\}").unwrap();
    param.replace_all(path, value).into_owned()
}

/// Every (method, path, operation) of the document.
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            out.push((method, path.clone(), op.clone()));
        }
    }
    out
}

#[actix_web::test]
async fn the_document_is_openapi_3_1_behind_the_api_auth() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let anonymous = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = anonymous
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::UNAUTHORIZED).await;

    let doc = app.get_json("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    assert!(ops.len() >= 60, "{} operations", ops.len());
    for (method, path, op) in &ops {
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.contains_key("200"), "{method} {path}");
        for code in ["400", "401", "404", "500"] {
            assert!(responses.contains_key(code), "{method} {path} lacks {code}");
        }
    }
    // Every route family of API.md is there.
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for family in [
        "/health",
        "/api/state",
        "/api/specs",
        "/api/events",
        "/api/instances",
        "/api/liveness",
        "/api/validate",
        "/api/rules",
        "/api/contracts",
        "/api/compliance",
        "/api/webhooks",
        "/api/templates",
        "/api/audit",
        "/api/metrics",
        "/api/llm",
        "/api/tasks",
        "/api/locks",
        "/openapi.json",
    ] {
        assert!(paths.iter().any(|p| p.starts_with(family)), "{family}");
    }
}

#[actix_web::test]
async fn every_registered_route_has_a_document_entry_and_every_entry_a_route() {
    let app = TestApp::spawn().await;
    let doc = app.get_json("/openapi.json").await;
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let registered = registered_paths();
    assert!(registered.len() > 40, "{registered:?}");
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes without an entry in src/http/openapi.rs: {missing:?}"
    );

    // And every documented operation is served (not the JSON 404 of unknown routes, nor a
    // 405), probed with an array body so that nothing is written and nothing waits.
    for (method, path, _) in operations(&doc) {
        let url = format!("{}?timeout=0", concrete(&path, "x"));
        let resp = app
            .request(method.clone(), &url)
            .body("[]")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {text}"
        );
        assert!(!text.contains("no route for"), "{method} {path}: {text}");
    }
}

#[actix_web::test]
async fn every_json_body_endpoint_refuses_a_non_object_with_400() {
    let app = TestApp::spawn().await;
    let doc = app.get_json("/openapi.json").await;
    let mut walked = 0;
    for (method, path, op) in operations(&doc) {
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        if schema["type"] != "object" {
            continue;
        }
        walked += 1;
        let url = concrete(&path, "x");
        for body in [
            "[]",
            r#"["topic"]"#,
            r#"["a","b","c","d","e"]"#,
            r#""text""#,
            "7",
            "null",
        ] {
            let resp = app
                .request(method.clone(), &url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let err = assert_error(resp, StatusCode::BAD_REQUEST).await;
            assert!(err["error"].is_string(), "{method} {path} {body}: {err}");
        }
    }
    assert!(walked >= 20, "only {walked} JSON body endpoints walked");
    // Nothing was stored by any of them.
    assert_eq!(
        app.get_json("/api/events/history").await,
        serde_json::json!([])
    );
    assert_eq!(app.get_json("/api/instances").await, serde_json::json!([]));
    let resp = app.get("/health").await;
    assert_json(resp, StatusCode::OK).await;
}

/// Asserts that `value`, answered by `method path` with 200, matches the document.
fn assert_documented(doc: &Value, method: &str, path: &str, value: &Value) {
    let schema =
        &doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents no JSON answer"
    );
    // The operation's schema, with the document's components beside it for its `$ref`s.
    let root = serde_json::json!({"components": doc["components"], "allOf": [schema]});
    let validator = jsonschema::draft202012::new(&root).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{method} {path}: {errors:?} in {value}");
}

#[actix_web::test]
async fn real_answers_match_the_documented_schemas() {
    let app = TestApp::spawn().await;
    let doc = app.get_json("/openapi.json").await;
    let put = app.put_state("team/plan", br#"{"step": 1}"#).await;
    assert_documented(&doc, "put", "/api/state/{key}", &put);
    assert_documented(&doc, "get", "/api/state", &app.get_json("/api/state").await);
    let event = app
        .publish("deploy.done", serde_json::json!({"ok": true}))
        .await;
    assert_documented(&doc, "post", "/api/events/publish", &event);
    let history = app.get_json("/api/events/history").await;
    assert_documented(&doc, "get", "/api/events/history", &history);
    let registered = app
        .register("backend", serde_json::json!({"capabilities": ["x"]}))
        .await;
    assert_documented(&doc, "post", "/api/instances/register", &registered);
    let instances = app.get_json("/api/instances").await;
    assert_documented(&doc, "get", "/api/instances", &instances);
    let hook = app
        .post(
            "/api/webhooks",
            Some(serde_json::json!({"id": "h", "url": "http://127.0.0.1:9/"})),
            StatusCode::OK,
        )
        .await;
    assert_documented(&doc, "post", "/api/webhooks", &hook);
    assert_documented(
        &doc,
        "get",
        "/api/webhooks",
        &app.get_json("/api/webhooks").await,
    );
    let specs = app.get_json("/api/specs/shop").await;
    assert_documented(&doc, "get", "/api/specs/{project}", &specs);
    let rules = app.get_json("/api/validate/shop/rules").await;
    assert_documented(&doc, "get", "/api/validate/{project}/rules", &rules);
    let health = app.get_json("/health").await;
    assert_documented(&doc, "get", "/health", &health);
    // An error answer matches the shared error schema.
    let resp = app.get("/api/instances/nobody").await;
    let err = assert_error(resp, StatusCode::NOT_FOUND).await;
    let root = serde_json::json!({"components": doc["components"],
                                  "$ref": "#/components/schemas/Error"});
    assert!(
        jsonschema::draft202012::new(&root).unwrap().is_valid(&err),
        "{err}"
    );
}
