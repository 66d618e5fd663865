//! Contracts (API §11): payload validation against a contract spec, and the live test of
//! an endpoint against a small stand-in service started by the test.

use std::sync::Mutex;

use actix_web::{App, HttpResponse, HttpServer, web};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};
use crate::specs::put_spec;

fn trucks_contract() -> Value {
    json!({"kind": "contract", "version": 1, "endpoints": {
        "POST /api/trucks": {
            "request": {
                "plate": {"type": "string", "required": true},
                "type": {"type": "string", "enum": ["semi", "tanker"]},
                "note": {"type": "string", "nullable": true},
                "anything": {"type": ""},
                "active": {"type": "boolean"},
                "address": {"type": "object",
                            "fields": {"city": {"type": "string", "required": true}}},
                "axles": {"type": "array",
                          "items": {"type": "object", "fields": {"load": {"type": "number"}}}}
            },
            "response_status": 201,
            "response": {"id": {"type": "string", "required": true}},
            "error": {"message": {"type": "string", "required": true}}
        },
        "GET /api/trucks": {
            "query": {"limit": {"type": "number"}},
            "response_array": {"id": {"type": "string", "required": true}}
        },
        "DELETE /api/trucks": {"response_status": 204}
    }})
}

async fn put_contract(app: &TestApp, project: &str, name: &str, contract: &Value) {
    put_spec(app, project, name, contract.to_string().as_bytes()).await;
}

async fn post_raw(app: &TestApp, path: &str, body: &str) -> reqwest::Response {
    app.request(Method::POST, path)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// `/validate` that must answer 200; checks `valid` against the violations and returns
/// the sorted, de-duplicated violation paths.
async fn violation_paths(app: &TestApp, request: Value) -> Vec<String> {
    let body = app
        .post(
            "/api/contracts/fleet/trucks/validate",
            Some(request),
            StatusCode::OK,
        )
        .await;
    let violations = body["violations"].as_array().unwrap();
    assert_eq!(body["valid"], violations.is_empty(), "{body}");
    let mut paths: Vec<String> = violations
        .iter()
        .map(|v| {
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
            v["path"].as_str().unwrap().to_string()
        })
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

#[actix_web::test]
async fn payloads_are_checked_field_by_field_with_dotted_paths() {
    let app = TestApp::spawn().await;
    put_contract(&app, "fleet", "trucks", &trucks_contract()).await;
    let post = "POST /api/trucks";
    let get = "GET /api/trucks";
    // (endpoint, direction, payload, expected violation paths)
    let cases: Vec<(&str, Option<&str>, Value, Vec<&str>)> = vec![
        (post, None, json!({"plate": "AB-1", "type": "semi"}), vec![]),
        (
            post,
            Some("request"),
            json!({"plate": "AB-1", "note": null, "anything": [1, {"x": 2}], "active": false,
                   "address": {"city": "Oslo"}, "axles": [{"load": 1.5}, {"load": 2}]}),
            vec![],
        ),
        (
            post,
            None,
            json!({"plate": "AB-1", "plate_number": "x"}),
            vec!["request.plate_number"],
        ),
        (post, None, json!({}), vec!["request.plate"]),
        (post, None, json!({"plate": null}), vec!["request.plate"]),
        (post, None, json!({"plate": 7}), vec!["request.plate"]),
        (
            post,
            None,
            json!({"plate": "x", "type": "boat"}),
            vec!["request.type"],
        ),
        (
            post,
            None,
            json!({"plate": "x", "type": null}),
            vec!["request.type"],
        ),
        (
            post,
            None,
            json!({"plate": "x", "active": "yes"}),
            vec!["request.active"],
        ),
        (
            post,
            None,
            json!({"plate": "x", "address": null}),
            vec!["request.address"],
        ),
        (
            post,
            None,
            json!({"plate": "x", "address": "Oslo"}),
            vec!["request.address"],
        ),
        (
            post,
            None,
            json!({"plate": "x", "address": {"city": 5}}),
            vec!["request.address.city"],
        ),
        (
            post,
            None,
            json!({"plate": "x", "address": {}}),
            vec!["request.address.city"],
        ),
        (
            post,
            None,
            json!({"plate": "x", "address": {"city": "a", "zip": "1"}}),
            vec!["request.address.zip"],
        ),
        (
            post,
            None,
            json!({"plate": "x", "axles": {"load": 1}}),
            vec!["request.axles"],
        ),
        (
            post,
            None,
            json!({"plate": "x", "axles": [{"load": 1}, {"load": "heavy"}]}),
            vec!["request.axles[1].load"],
        ),
        (
            post,
            None,
            json!({"plate": "x", "axles": [{"load": 1, "extra": true}]}),
            vec!["request.axles[0].extra"],
        ),
        (
            post,
            None,
            json!({"plate": 1, "type": "boat", "extra": 0}),
            vec!["request.extra", "request.plate", "request.type"],
        ),
        (post, Some("response"), json!({"id": "t1"}), vec![]),
        (
            post,
            Some("response"),
            json!({"id": 5}),
            vec!["response.id"],
        ),
        (
            post,
            Some("response"),
            json!({"id": "a", "name": "b"}),
            vec!["response.name"],
        ),
        (post, Some("error"), json!({"message": "boom"}), vec![]),
        (post, Some("error"), json!({}), vec!["error.message"]),
        (get, Some("query"), json!({"limit": 10}), vec![]),
        (
            get,
            Some("query"),
            json!({"offset": 1}),
            vec!["query.offset"],
        ),
        (
            get,
            Some("response"),
            json!([{"id": "a"}, {"id": "b"}]),
            vec![],
        ),
        (
            get,
            Some("response"),
            json!([{"id": "a"}, {"id": 2}]),
            vec!["response[1].id"],
        ),
        (
            get,
            Some("response"),
            json!([{"id": "a"}, {}]),
            vec!["response[1].id"],
        ),
    ];
    for (endpoint, direction, payload, want) in cases {
        let mut request = json!({"endpoint": endpoint, "payload": payload});
        if let Some(d) = direction {
            request["direction"] = json!(d);
        }
        assert_eq!(
            violation_paths(&app, request.clone()).await,
            want,
            "{request}"
        );
    }
}

#[actix_web::test]
async fn unknown_endpoints_directions_and_missing_schemas_are_violations_not_errors() {
    let app = TestApp::spawn().await;
    put_contract(&app, "fleet", "trucks", &trucks_contract()).await;
    for request in [
        json!({"endpoint": "PATCH /api/trucks", "payload": {}}),
        json!({"endpoint": "POST /api/trucks", "direction": "sideways", "payload": {}}),
        json!({"endpoint": "DELETE /api/trucks", "direction": "request", "payload": {}}),
        json!({"endpoint": "GET /api/trucks", "direction": "error", "payload": {}}),
    ] {
        assert!(
            !violation_paths(&app, request.clone()).await.is_empty(),
            "{request}"
        );
    }
}

#[actix_web::test]
async fn validate_errors_are_404_for_a_missing_spec_and_400_for_a_bad_contract_or_body() {
    let app = TestApp::spawn().await;
    put_contract(&app, "fleet", "trucks", &trucks_contract()).await;
    let ok_body = r#"{"endpoint": "POST /api/trucks", "payload": {"plate": "x"}}"#;
    assert_error(
        post_raw(&app, "/api/contracts/fleet/nope/validate", ok_body).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Another project's spec of the same name is not this one.
    assert_error(
        post_raw(&app, "/api/contracts/other/trucks/validate", ok_body).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    for (i, spec) in [
        r#"{"kind": "notes", "endpoints": {"GET /x": {"response": {}}}}"#,
        r#"{"kind": "contract", "endpoints": {}}"#,
        r#"{"kind": "contract"}"#,
        r#"{"kind": "contract", "endpoints": ["GET /x"]}"#,
        r#"[{"kind": "contract"}]"#,
        "not json",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("bad{i}");
        put_spec(&app, "fleet", &name, spec.as_bytes()).await;
        assert_error(
            post_raw(
                &app,
                &format!("/api/contracts/fleet/{name}/validate"),
                ok_body,
            )
            .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    for body in [r#"{"payload": {"plate": "x"}}"#, "not json", "", "[]"] {
        assert_error(
            post_raw(&app, "/api/contracts/fleet/trucks/validate", body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        // Body checks come before the lookup.
        assert_error(
            post_raw(&app, "/api/contracts/fleet/nope/validate", body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

type Seen = web::Data<Mutex<Vec<Value>>>;

async fn list_trucks() -> HttpResponse {
    HttpResponse::Ok().json(json!([{"id": "t1"}, {"id": "t2"}]))
}

async fn create_truck(seen: Seen, body: web::Bytes) -> HttpResponse {
    let got = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push(got);
    HttpResponse::Created().json(json!({"id": "new"}))
}

async fn bad_ids() -> HttpResponse {
    HttpResponse::Ok().json(json!([{"id": 7}, {"id": "ok"}]))
}

async fn wrong_status() -> HttpResponse {
    HttpResponse::Ok().json(json!({"id": "x"}))
}

/// A stand-in service on a free port: its base URL and the JSON bodies POSTed to it.
async fn start_target() -> (String, Seen) {
    let seen: Seen = web::Data::new(Mutex::new(Vec::new()));
    let data = seen.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/api/trucks", web::get().to(list_trucks))
            .route("/api/trucks", web::post().to(create_truck))
            .route("/api/bad", web::get().to(bad_ids))
            .route("/api/status", web::put().to(wrong_status))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    (format!("http://127.0.0.1:{port}"), seen)
}

fn service_contract() -> Value {
    json!({"kind": "contract", "version": 1, "endpoints": {
        "GET /api/trucks": {"response_status": 200,
                            "response_array": {"id": {"type": "string", "required": true}}},
        "POST /api/trucks": {"request": {"plate": {"type": "string", "required": true}},
                             "response_status": 201,
                             "response": {"id": {"type": "string", "required": true}}},
        "GET /api/bad": {"response_array": {"id": {"type": "string"}}},
        "PUT /api/status": {"request": {"plate": {"type": "string"}},
                            "response_status": 201,
                            "response": {"id": {"type": "string"}}}
    }})
}

async fn run_test(app: &TestApp, request: Value) -> Value {
    app.post(
        "/api/contracts/fleet/service/test",
        Some(request),
        StatusCode::OK,
    )
    .await
}

#[actix_web::test]
async fn test_calls_the_service_and_reports_a_conforming_exchange() {
    let (base, seen) = start_target().await;
    let app = TestApp::spawn().await;
    put_contract(&app, "fleet", "service", &service_contract()).await;

    let body = run_test(
        &app,
        json!({"endpoint": "GET /api/trucks", "base_url": base}),
    )
    .await;
    assert_eq!(
        body,
        json!({"valid": true, "endpoint": "GET /api/trucks", "status_code": 200,
               "request_violations": [], "response_violations": [], "error": ""})
    );

    let body = run_test(
        &app,
        json!({"endpoint": "POST /api/trucks", "base_url": base,
               "test_data": {"plate": "AB-12"}}),
    )
    .await;
    assert_eq!(body["valid"], true, "{body}");
    assert_eq!(body["status_code"], 201);
    assert_eq!(body["response_violations"], json!([]));
    assert_eq!(body["error"], "");
    // The test data went out as the JSON body.
    assert_eq!(*seen.lock().unwrap(), vec![json!({"plate": "AB-12"})]);
}

#[actix_web::test]
async fn test_reports_a_wrong_status_or_body_as_invalid() {
    let (base, _seen) = start_target().await;
    let app = TestApp::spawn().await;
    put_contract(&app, "fleet", "service", &service_contract()).await;

    let body = run_test(&app, json!({"endpoint": "GET /api/bad", "base_url": base})).await;
    assert_eq!(body["valid"], false, "{body}");
    assert_eq!(body["status_code"], 200);
    assert_eq!(body["error"], "");
    let paths: Vec<&str> = body["response_violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["response[0].id"], "{body}");

    let body = run_test(
        &app,
        json!({"endpoint": "PUT /api/status", "base_url": base, "test_data": {"plate": "x"}}),
    )
    .await;
    assert_eq!(body["valid"], false, "{body}");
    assert_eq!(body["status_code"], 200);
}

#[actix_web::test]
async fn test_of_an_unreachable_service_is_invalid_with_an_error() {
    let app = TestApp::spawn().await;
    put_contract(&app, "fleet", "service", &service_contract()).await;
    let body = run_test(
        &app,
        json!({"endpoint": "GET /api/trucks", "base_url": "http://127.0.0.1:9"}),
    )
    .await;
    assert_eq!(body["valid"], false, "{body}");
    assert_eq!(body["endpoint"], "GET /api/trucks");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

#[actix_web::test]
async fn test_errors_are_400_for_bad_requests_and_404_for_a_missing_spec() {
    let app = TestApp::spawn().await;
    put_contract(&app, "fleet", "service", &service_contract()).await;
    put_spec(&app, "fleet", "notes", b"{\"text\": \"hello\"}").await;
    let base = "http://127.0.0.1:9";
    for (path, body) in [
        ("service", json!({"base_url": base})),
        ("service", json!({"endpoint": "GET /api/trucks"})),
        (
            "service",
            json!({"endpoint": "DELETE /api/trucks", "base_url": base}),
        ),
        (
            "notes",
            json!({"endpoint": "GET /api/trucks", "base_url": base}),
        ),
    ] {
        let resp = app
            .request(Method::POST, &format!("/api/contracts/fleet/{path}/test"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    assert_error(
        post_raw(&app, "/api/contracts/fleet/service/test", "not json").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let resp = app
        .request(Method::POST, "/api/contracts/fleet/missing/test")
        .json(&json!({"endpoint": "GET /api/trucks", "base_url": base}))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::NOT_FOUND).await;
}
