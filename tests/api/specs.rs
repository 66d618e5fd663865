//! Specs end to end: API §5, koor's conditional writes, `spec.*` events and `?schema=`
//! validation against a JSON Schema stored as another spec of the project.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_json, sha256_hex};

/// `PUT /api/specs/{path}` (path may carry a query) with an optional header, unchecked.
pub async fn put_spec_raw(
    app: &TestApp,
    path: &str,
    header: Option<(&str, &str)>,
    body: &[u8],
) -> reqwest::Response {
    let mut req = app
        .request(Method::PUT, &format!("/api/specs/{path}"))
        .body(body.to_vec());
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    req.send().await.unwrap()
}

/// A spec write that must succeed; returns the metadata.
pub async fn put_spec(app: &TestApp, project: &str, name: &str, body: &[u8]) -> Value {
    let resp = put_spec_raw(app, &format!("{project}/{name}"), None, body).await;
    assert_json(resp, StatusCode::OK).await
}

async fn delete_spec(app: &TestApp, path: &str, header: Option<(&str, &str)>) -> reqwest::Response {
    let mut req = app.request(Method::DELETE, &format!("/api/specs/{path}"));
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    req.send().await.unwrap()
}

/// The current `(version, bytes)` of a spec, or `None` when it does not exist.
async fn current(app: &TestApp, project: &str, name: &str) -> Option<(String, Vec<u8>)> {
    let resp = app.get(&format!("/api/specs/{project}/{name}")).await;
    if resp.status() == StatusCode::NOT_FOUND {
        assert_error(resp, StatusCode::NOT_FOUND).await;
        return None;
    }
    assert_eq!(resp.status(), StatusCode::OK);
    let version = resp.headers()["x-koor-version"]
        .to_str()
        .unwrap()
        .to_string();
    Some((version, resp.bytes().await.unwrap().to_vec()))
}

/// Long-polls `/api/events/wait` until at least `n` events match `topic`; oldest first.
pub async fn wait_events(app: &TestApp, topic: &str, n: usize) -> Vec<Value> {
    let mut got: Vec<Value> = Vec::new();
    while got.len() < n {
        let after = got.last().map_or(0, |e| e["id"].as_i64().unwrap());
        let batch = app
            .get_json(&format!(
                "/api/events/wait?after={after}&topic={topic}&timeout=10"
            ))
            .await;
        let batch = batch.as_array().unwrap().clone();
        assert!(
            !batch.is_empty(),
            "no {topic} event within 10 s; got {got:?}"
        );
        got.extend(batch);
    }
    got
}

#[actix_web::test]
async fn put_then_get_serves_the_bytes_verbatim_as_json_with_etag_and_version() {
    let app = TestApp::spawn().await;
    let raw = br#"{ "states": ["idle",  "hover"],"css_class" :"c-button" }"#;
    // The request content type does not matter: specs are always served as JSON.
    let resp = app
        .request(Method::PUT, "/api/specs/Truck-Wash/button-schema")
        .header("content-type", "text/plain")
        .body(raw.to_vec())
        .send()
        .await
        .unwrap();
    let meta = assert_json(resp, StatusCode::OK).await;
    let mut keys: Vec<&str> = meta
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["hash", "name", "project", "updated_at", "version"]);
    assert_eq!(meta["project"], "Truck-Wash");
    assert_eq!(meta["name"], "button-schema");
    assert_eq!(meta["version"], 1);
    assert_eq!(meta["hash"], sha256_hex(raw));
    assert!(meta["updated_at"].as_str().unwrap().ends_with('Z'));

    let resp = app.get("/api/specs/Truck-Wash/button-schema").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(resp.headers()["etag"], format!("\"{}\"", sha256_hex(raw)));
    assert_eq!(resp.headers()["x-koor-version"], "1");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), raw);
}

#[actix_web::test]
async fn every_write_adds_a_version_and_the_list_is_name_ascending_without_data() {
    let app = TestApp::spawn().await;
    for want in 1..=3 {
        assert_eq!(
            put_spec(&app, "p", "zeta", b"{\"same\":true}").await["version"],
            want
        );
    }
    put_spec(&app, "p", "alpha", b"{\"secret\":\"zzz\"}").await;
    put_spec(&app, "p", "mid", b"[1]").await;
    put_spec(&app, "other", "alpha", b"{}").await;

    let body = app.get_json("/api/specs/p").await;
    assert_eq!(body["project"], "p");
    let specs = body["specs"].as_array().unwrap();
    let listed: Vec<(&str, i64)> = specs
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(listed, [("alpha", 1), ("mid", 1), ("zeta", 3)]);
    for s in specs {
        let mut fields: Vec<&str> = s.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["name", "updated_at", "version"], "{s}");
    }
    assert!(!body.to_string().contains("zzz"));
    assert_eq!(
        app.get_json("/api/specs/nobody").await,
        json!({"project": "nobody", "specs": []})
    );
}

#[actix_web::test]
async fn specs_are_scoped_per_project() {
    let app = TestApp::spawn().await;
    put_spec(&app, "p1", "shared", b"{\"owner\":\"p1\"}").await;
    put_spec(&app, "p2", "shared", b"{\"owner\":\"p2\"}").await;
    put_spec(&app, "p2", "shared", b"{\"owner\":\"p2\",\"v\":2}").await;
    assert_eq!(
        current(&app, "p1", "shared").await.unwrap(),
        ("1".to_string(), b"{\"owner\":\"p1\"}".to_vec())
    );
    assert_eq!(current(&app, "p2", "shared").await.unwrap().0, "2");
    // Deleting one project's spec leaves the other's alone.
    assert_json(delete_spec(&app, "p2/shared", None).await, StatusCode::OK).await;
    assert!(current(&app, "p1", "shared").await.is_some());
}

#[actix_web::test]
async fn if_none_match_answers_304_only_for_the_current_quoted_tag() {
    let app = TestApp::spawn().await;
    let raw = b"{\"cached\":1}";
    put_spec(&app, "p", "c", raw).await;
    let etag = format!("\"{}\"", sha256_hex(raw));
    for header in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".into(),
    ] {
        let resp = app
            .request(Method::GET, "/api/specs/p/c")
            .header("if-none-match", header.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{header}");
        assert_eq!(resp.headers()["etag"], etag.as_str());
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    for header in [sha256_hex(raw), "\"stale\"".into()] {
        let resp = app
            .request(Method::GET, "/api/specs/p/c")
            .header("if-none-match", header.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{header}");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), raw);
    }
    // A new version makes the old tag stale.
    put_spec(&app, "p", "c", b"{\"cached\":2}").await;
    let resp = app
        .request(Method::GET, "/api/specs/p/c")
        .header("if-none-match", etag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn empty_bodies_and_bad_names_are_400_and_missing_specs_404() {
    let app = TestApp::spawn().await;
    assert_error(
        put_spec_raw(&app, "p/empty", None, b"").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_error(
        put_spec_raw(&app, "p/a%2Fb", None, b"{}").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(app.get_json("/api/specs/p").await["specs"], json!([]));
    assert_error(app.get("/api/specs/p/empty").await, StatusCode::NOT_FOUND).await;
    assert_error(
        delete_spec(&app, "p/empty", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Names are single segments: a deeper path is no spec route.
    assert_error(app.get("/api/specs/p/a/b").await, StatusCode::NOT_FOUND).await;
}

#[actix_web::test]
async fn delete_removes_the_spec_and_a_later_put_restarts_at_version_one() {
    let app = TestApp::spawn().await;
    put_spec(&app, "p", "gone", b"1").await;
    put_spec(&app, "p", "gone", b"2").await;
    assert_eq!(
        assert_json(delete_spec(&app, "p/gone", None).await, StatusCode::OK).await,
        json!({"deleted": "p/gone"})
    );
    assert!(current(&app, "p", "gone").await.is_none());
    assert_eq!(app.get_json("/api/specs/p").await["specs"], json!([]));
    assert_error(
        delete_spec(&app, "p/gone", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(put_spec(&app, "p", "gone", b"3").await["version"], 1);
}

#[actix_web::test]
async fn body_over_the_limit_is_413_and_nothing_is_stored() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 1024).await;
    let exact = vec![b' '; 1024];
    assert_eq!(put_spec(&app, "p", "edge", &exact).await["version"], 1);
    let over = vec![b' '; 1025];
    assert_error(
        put_spec_raw(&app, "p/edge", None, &over).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_error(
        put_spec_raw(&app, "p/fresh", None, &over).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(current(&app, "p", "edge").await.unwrap().0, "1");
    assert!(current(&app, "p", "fresh").await.is_none());
}

#[actix_web::test]
async fn put_returns_412_when_if_match_is_stale_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let v1 = put_spec(&app, "p", "cfg", b"{\"n\":1}").await;
    let etag1 = format!("\"{}\"", v1["hash"].as_str().unwrap());
    put_spec(&app, "p", "cfg", b"{\"n\":2}").await;

    for stale in [etag1.as_str(), "1", "\"nope\", 7"] {
        let err = assert_error(
            put_spec_raw(&app, "p/cfg", Some(("if-match", stale)), b"{\"n\":3}").await,
            StatusCode::PRECONDITION_FAILED,
        )
        .await;
        assert_eq!(err["current_version"], 2, "{stale}");
    }
    assert_eq!(
        current(&app, "p", "cfg").await.unwrap(),
        ("2".to_string(), b"{\"n\":2}".to_vec())
    );

    // The current tag (also weak or in a list), the current version and `*` all pass.
    let cur = format!("\"{}\"", sha256_hex(b"{\"n\":2}"));
    let ok = put_spec_raw(&app, "p/cfg", Some(("if-match", &cur)), b"{\"n\":3}").await;
    assert_eq!(assert_json(ok, StatusCode::OK).await["version"], 3);
    let ok = put_spec_raw(&app, "p/cfg", Some(("if-match", "3")), b"{\"n\":4}").await;
    assert_eq!(assert_json(ok, StatusCode::OK).await["version"], 4);
    let weak = format!("\"x\", W/\"{}\"", sha256_hex(b"{\"n\":4}"));
    let ok = put_spec_raw(&app, "p/cfg", Some(("if-match", &weak)), b"{\"n\":5}").await;
    assert_eq!(assert_json(ok, StatusCode::OK).await["version"], 5);
    let ok = put_spec_raw(&app, "p/cfg", Some(("if-match", "*")), b"{\"n\":6}").await;
    assert_eq!(assert_json(ok, StatusCode::OK).await["version"], 6);
}

#[actix_web::test]
async fn if_none_match_star_creates_only_and_if_match_never_holds_for_a_missing_spec() {
    let app = TestApp::spawn().await;
    let ok = put_spec_raw(&app, "p/new", Some(("if-none-match", "*")), b"1").await;
    assert_eq!(assert_json(ok, StatusCode::OK).await["version"], 1);
    let err = assert_error(
        put_spec_raw(&app, "p/new", Some(("if-none-match", "*")), b"2").await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(err["current_version"], 1);
    assert_eq!(current(&app, "p", "new").await.unwrap().1, b"1");

    for tag in ["*", "1", "\"abc\""] {
        let err = assert_error(
            put_spec_raw(&app, "p/absent", Some(("if-match", tag)), b"1").await,
            StatusCode::PRECONDITION_FAILED,
        )
        .await;
        assert_eq!(err["current_version"], Value::Null, "{tag}");
    }
    assert!(current(&app, "p", "absent").await.is_none());

    // Malformed preconditions are 400.
    for (name, value) in [("if-none-match", "\"x\""), ("if-match", "garbage")] {
        assert_error(
            put_spec_raw(&app, "p/new", Some((name, value)), b"3").await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    assert_eq!(current(&app, "p", "new").await.unwrap().0, "1");
}

#[actix_web::test]
async fn if_version_query_guards_put_and_delete() {
    let app = TestApp::spawn().await;
    let ok = put_spec_raw(&app, "p/q?if_version=0", None, b"1").await;
    assert_eq!(assert_json(ok, StatusCode::OK).await["version"], 1);
    for (q, want) in [("0", json!(1)), ("5", json!(1))] {
        let err = assert_error(
            put_spec_raw(&app, &format!("p/q?if_version={q}"), None, b"2").await,
            StatusCode::PRECONDITION_FAILED,
        )
        .await;
        assert_eq!(err["current_version"], want);
    }
    for bad in ["x", "-1", "1.5"] {
        assert_error(
            put_spec_raw(&app, &format!("p/q?if_version={bad}"), None, b"2").await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let ok = put_spec_raw(&app, "p/q?if_version=1", None, b"2").await;
    assert_eq!(assert_json(ok, StatusCode::OK).await["version"], 2);

    // Stale DELETE preconditions keep the spec.
    let err = assert_error(
        delete_spec(&app, "p/q?if_version=1", None).await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(err["current_version"], 2);
    assert_error(
        delete_spec(&app, "p/q", Some(("if-match", "\"stale\""))).await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(current(&app, "p", "q").await.unwrap().0, "2");

    let ok = delete_spec(&app, "p/q", Some(("if-match", "2"))).await;
    assert_eq!(
        assert_json(ok, StatusCode::OK).await,
        json!({"deleted": "p/q"})
    );
    // `if_version=0` on a missing spec holds, then the delete finds nothing.
    assert_error(
        delete_spec(&app, "p/q?if_version=0", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        delete_spec(&app, "p/q", Some(("if-match", "*"))).await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
}

#[actix_web::test]
async fn of_racing_conditional_spec_writers_exactly_one_wins() {
    let app = TestApp::spawn().await;
    put_spec(&app, "p", "lock", b"{\"owner\":null}").await;
    let writers = (0..16).map(|i| {
        let req = app
            .request(Method::PUT, "/api/specs/p/lock")
            .header("if-match", "1")
            .body(format!("{{\"owner\":{i}}}"));
        async move { req.send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(writers).await;
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let lost = statuses
        .iter()
        .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!((won, lost), (1, 15), "{statuses:?}");
    assert_eq!(current(&app, "p", "lock").await.unwrap().0, "2");
}

#[actix_web::test]
async fn writes_publish_spec_events_with_project_name_and_version_only() {
    let app = TestApp::spawn().await;
    put_spec(&app, "Truck-Wash", "creds", b"{\"token\":\"s3cr3t\"}").await;
    put_spec(&app, "Truck-Wash", "creds", b"{\"token\":\"s3cr3t-2\"}").await;
    assert_json(
        delete_spec(&app, "Truck-Wash/creds", None).await,
        StatusCode::OK,
    )
    .await;

    let updated = wait_events(&app, "spec.updated", 2).await;
    assert_eq!(updated.len(), 2, "{updated:?}");
    for (i, event) in updated.iter().enumerate() {
        assert_eq!(event["topic"], "spec.updated");
        assert_eq!(event["source"], "specs");
        assert_eq!(
            event["data"],
            json!({"project": "Truck-Wash", "name": "creds", "version": i + 1})
        );
    }
    let deleted = wait_events(&app, "spec.deleted", 1).await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["source"], "specs");
    assert_eq!(
        deleted[0]["data"],
        json!({"project": "Truck-Wash", "name": "creds", "version": 2})
    );
    assert!(deleted[0]["id"].as_i64() > updated[1]["id"].as_i64());
    let all = app.get_json("/api/events/history?topic=spec.*").await;
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    assert!(!all.to_string().contains("s3cr3t"));
}

#[actix_web::test]
async fn failed_spec_writes_publish_nothing() {
    let app = TestApp::spawn().await;
    put_spec(&app, "p", "s", b"{\"v\":1}").await;
    assert_error(
        put_spec_raw(&app, "p/s", Some(("if-match", "9")), b"{\"v\":2}").await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert_error(
        delete_spec(&app, "p/s?if_version=9", None).await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert_error(
        put_spec_raw(&app, "p/s", None, b"").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_error(
        delete_spec(&app, "p/missing", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    put_spec(&app, "p", "s", b"{\"v\":2}").await;
    // Events follow commit order: once version 2's event is in, every earlier one is.
    let events = wait_events(&app, "spec.*", 2).await;
    let versions: Vec<(&str, i64)> = events
        .iter()
        .map(|e| {
            (
                e["topic"].as_str().unwrap(),
                e["data"]["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [("spec.updated", 1), ("spec.updated", 2)]);
}

const PERSON_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["name"],
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer", "minimum": 0},
    "email": {"type": "string", "format": "email"},
    "address": {"type": "object",
                "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}},
    "tags": {"type": "array", "items": {"type": "string"}}
  }
}"#;

/// The sorted, de-duplicated violation paths of a 422, checking its shape.
async fn schema_violations(resp: reqwest::Response) -> Vec<String> {
    let body = assert_error(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
    let violations = body["violations"].as_array().unwrap();
    assert!(!violations.is_empty(), "{body}");
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
async fn schema_checked_writes_store_valid_documents() {
    let app = TestApp::spawn().await;
    put_spec(&app, "p", "person", PERSON_SCHEMA.as_bytes()).await;
    let doc = br#"{"name": "Ada", "age": 36, "email": "ada@example.com",
                   "address": {"zip": "12345"}, "tags": ["x"]}"#;
    let resp = put_spec_raw(&app, "p/ada?schema=person", None, doc).await;
    let meta = assert_json(resp, StatusCode::OK).await;
    assert_eq!(meta["version"], 1);
    assert_eq!(meta["hash"], sha256_hex(doc));
    assert_eq!(current(&app, "p", "ada").await.unwrap().1, doc);
    let resp = put_spec_raw(&app, "p/ada?schema=person", None, br#"{"name":"Ada L."}"#).await;
    assert_eq!(assert_json(resp, StatusCode::OK).await["version"], 2);
}

#[actix_web::test]
async fn schema_failures_are_422_with_json_pointer_paths_and_store_nothing() {
    let app = TestApp::spawn().await;
    put_spec(&app, "p", "person", PERSON_SCHEMA.as_bytes()).await;
    let cases: &[(&str, &[&str])] = &[
        (r#"{"name": "a", "age": -1}"#, &["/age"]),
        (r#"{"name": "a", "age": 1.5}"#, &["/age"]),
        (r#"{"name": "a", "email": "not-an-email"}"#, &["/email"]),
        (
            r#"{"name": "a", "address": {"zip": "12"}}"#,
            &["/address/zip"],
        ),
        (r#"{"name": "a", "tags": ["x", 2]}"#, &["/tags/1"]),
        (r#"{"age": 3}"#, &[""]),
        ("[]", &[""]),
        (r#"{"name": 7, "age": -2}"#, &["/age", "/name"]),
    ];
    for (i, (doc, want)) in cases.iter().enumerate() {
        let name = format!("doc{i}");
        let resp = put_spec_raw(
            &app,
            &format!("p/{name}?schema=person"),
            None,
            doc.as_bytes(),
        )
        .await;
        assert_eq!(schema_violations(resp).await, *want, "{doc}");
        assert!(
            current(&app, "p", &name).await.is_none(),
            "{doc} was stored"
        );
    }

    // A failing update leaves the existing version untouched.
    put_spec(&app, "p", "kept", br#"{"name": "ok"}"#).await;
    let resp = put_spec_raw(&app, "p/kept?schema=person", None, br#"{"name": 1}"#).await;
    assert_eq!(schema_violations(resp).await, ["/name"]);
    assert_eq!(
        current(&app, "p", "kept").await.unwrap(),
        ("1".to_string(), br#"{"name": "ok"}"#.to_vec())
    );
    let names: Vec<String> = app.get_json("/api/specs/p").await["specs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["kept", "person"]);
}

#[actix_web::test]
async fn schema_errors_are_404_for_a_missing_schema_and_400_for_bad_input() {
    let app = TestApp::spawn().await;
    put_spec(&app, "p", "person", PERSON_SCHEMA.as_bytes()).await;
    // The schema is looked up in the same project only.
    put_spec(&app, "q", "only-in-q", PERSON_SCHEMA.as_bytes()).await;
    for schema in ["missing", "only-in-q"] {
        assert_error(
            put_spec_raw(
                &app,
                &format!("p/doc?schema={schema}"),
                None,
                br#"{"name":"a"}"#,
            )
            .await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    assert_error(
        put_spec_raw(&app, "p/doc?schema=person", None, b"not json").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    for (i, bad_schema) in [
        r#"{"type": "no-such-type"}"#,
        r#"{"required": "name"}"#,
        "not json at all",
    ]
    .iter()
    .enumerate()
    {
        let schema = format!("bad{i}");
        put_spec(&app, "p", &schema, bad_schema.as_bytes()).await;
        assert_error(
            put_spec_raw(
                &app,
                &format!("p/doc?schema={schema}"),
                None,
                br#"{"name":"a"}"#,
            )
            .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    assert!(current(&app, "p", "doc").await.is_none());
}

#[actix_web::test]
async fn a_changed_schema_applies_to_the_next_write() {
    let app = TestApp::spawn().await;
    put_spec(&app, "p", "s", br#"{"required": ["name"]}"#).await;
    let doc = br#"{"name": "a"}"#;
    let ok = put_spec_raw(&app, "p/doc?schema=s", None, doc).await;
    assert_eq!(assert_json(ok, StatusCode::OK).await["version"], 1);
    // Deleted: no schema any more.
    assert_json(delete_spec(&app, "p/s", None).await, StatusCode::OK).await;
    assert_error(
        put_spec_raw(&app, "p/doc?schema=s", None, doc).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Created again, back at version 1 but with other content: the new schema applies.
    put_spec(&app, "p", "s", br#"{"required": ["id"]}"#).await;
    let resp = put_spec_raw(&app, "p/doc?schema=s", None, doc).await;
    assert_eq!(schema_violations(resp).await, [""]);
    // A new version of the schema is used at once.
    put_spec(&app, "p", "s", b"{}").await;
    let ok = put_spec_raw(&app, "p/doc?schema=s", None, doc).await;
    assert_eq!(assert_json(ok, StatusCode::OK).await["version"], 2);
}
