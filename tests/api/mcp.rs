//! MCP at `/mcp` (API §18) driven by rmcp's own Streamable HTTP client: identity and
//! guidance, the pinned tool list and its byte budget, every tool's effect checked over
//! REST, tool errors, auth, the Host allow-list, attribution and call counting.

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_json};

/// The whole `tools/list` response must stay under this many bytes (about 750 tokens).
const TOOLS_LIST_BUDGET: usize = 3000;

type Client = RunningService<RoleClient, ()>;

async fn connect_with(app: &TestApp, headers: &[(&str, &str)]) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(app.url("/mcp"));
    if let Some(token) = &app.token {
        config = config.auth_header(token.clone());
    }
    let custom: HashMap<HeaderName, HeaderValue> = headers
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        })
        .collect();
    config = config.custom_headers(custom);
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    ().serve(transport)
        .await
        .expect("the MCP handshake succeeds")
}

async fn connect(app: &TestApp) -> Client {
    connect_with(app, &[]).await
}

async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let args: JsonObject = args.as_object().cloned().unwrap_or_default();
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args))
        .await
        .expect("a tool call is answered")
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A successful call's JSON result.
async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let r = call(client, tool, args).await;
    assert_ne!(r.is_error, Some(true), "{tool} failed: {}", text(&r));
    serde_json::from_str(&text(&r)).expect("tool results are JSON")
}

/// A failed call's message.
async fn refused(client: &Client, tool: &str, args: Value) -> String {
    let r = call(client, tool, args).await;
    assert_eq!(r.is_error, Some(true), "{tool} should fail: {}", text(&r));
    text(&r)
}

#[actix_web::test]
async fn initialize_names_the_server_and_points_data_to_rest() {
    let app = TestApp::spawn().await;
    let client = connect(&app).await;
    let info = client.peer_info().expect("the server introduced itself");
    let server = info.server_info.as_ref().unwrap();
    assert_eq!(server.name, "koor");
    assert_eq!(server.version, env!("CARGO_PKG_VERSION"));
    let instructions = info.instructions.as_deref().unwrap();
    assert!(instructions.contains("get_endpoints"), "{instructions}");
    assert!(instructions.contains("REST"), "{instructions}");
    assert_eq!(
        serde_json::to_value(&info.capabilities).unwrap()["tools"],
        json!({"listChanged": false})
    );
    client.cancel().await.unwrap();
}

#[actix_web::test]
async fn the_tool_list_is_pinned_and_within_its_byte_budget() {
    let app = TestApp::spawn().await;
    let client = connect(&app).await;
    let tools = client.list_all_tools().await.unwrap();
    let listed = serde_json::to_value(&tools).unwrap();
    let pinned: Value =
        serde_json::from_str(include_str!("mcp_tools.json")).expect("the snapshot is JSON");
    assert_eq!(
        listed,
        pinned,
        "the tool list changed; if on purpose, update tests/api/mcp_tools.json to:\n{}",
        serde_json::to_string_pretty(&listed).unwrap()
    );
    client.cancel().await.unwrap();

    // The complete HTTP response body, as an agent's client receives it.
    let resp = app
        .client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.bytes().await.unwrap();
    assert!(
        body.len() < TOOLS_LIST_BUDGET,
        "tools/list is {} bytes; the budget is {TOOLS_LIST_BUDGET}",
        body.len()
    );
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed["result"]["tools"], pinned);
}

#[actix_web::test]
async fn every_tool_acts_through_the_same_domains_as_rest() {
    let app = TestApp::spawn().await;
    let client = connect(&app).await;

    // register_instance: a pending instance, audited like REST.
    let reg = ok(
        &client,
        "register_instance",
        json!({"name": "mcp-agent", "workspace": "/ws", "intent": "start",
               "stack": "rust", "capabilities": "sql, ,review"}),
    )
    .await;
    let id = reg["instance_id"].as_str().unwrap().to_string();
    assert!(!reg["token"].as_str().unwrap().is_empty());
    assert!(reg["message"].as_str().unwrap().contains(&id));
    let inst = app.get_json(&format!("/api/instances/{id}")).await;
    assert_eq!(inst["status"], "pending");
    assert_eq!(inst["capabilities"], json!(["sql", "review"]));
    assert_eq!(inst["workspace"], "/ws");
    let audit = app.get_json("/api/audit?action=instance.register").await;
    assert_eq!(audit[0]["resource"], id.as_str());
    assert_eq!(audit[0]["actor"], "mcp-agent");

    // discover_instances: filters like REST, never shows tokens.
    app.register("other", json!({"stack": "go"})).await;
    let found = ok(&client, "discover_instances", json!({"stack": "rust"})).await;
    assert_eq!(found["count"], 1);
    assert_eq!(found["instances"][0]["id"], id.as_str());
    assert!(found["instances"][0].get("token").is_none());
    assert!(
        !text(&call(&client, "discover_instances", json!({})).await)
            .contains(reg["token"].as_str().unwrap())
    );

    // set_intent: visible over REST.
    let set = ok(
        &client,
        "set_intent",
        json!({"instance_id": id, "intent": "refactor db"}),
    )
    .await;
    assert_eq!(set["intent"], "refactor db");
    let inst = app.get_json(&format!("/api/instances/{id}")).await;
    assert_eq!(inst["intent"], "refactor db");

    // get_endpoints: where the data goes.
    let raw = text(&call(&client, "get_endpoints", json!({})).await);
    let ends: Value = serde_json::from_str(&raw).expect("tool results are JSON");
    // Compact JSON: the exact bytes of the value re-serialised without whitespace, and its
    // size pinned (it was about 1.7 kB pretty-printed). The API base appears twice.
    assert_eq!(raw, ends.to_string());
    let size = raw.len() - 2 * app.url("").len();
    assert_eq!(
        size, 1_319,
        "get_endpoints changed size; if on purpose, re-pin: {raw}"
    );
    assert_eq!(ends["api_base"], app.url(""));
    let routes = ends["endpoints"].to_string();
    for path in [
        "/api/state",
        "/api/specs",
        "/api/events/publish",
        "/api/events/history",
        "/api/events/subscribe",
        "/api/instances",
        "/api/validate",
        "/api/rules",
    ] {
        assert!(routes.contains(path), "{path} missing: {routes}");
    }

    // propose_rule: stored as a proposal, audited, accepted over REST.
    let proposed = ok(
        &client,
        "propose_rule",
        json!({"project": "web", "rule_id": "no-hex", "pattern": "#[0-9a-f]{6}",
               "message": "use tokens", "proposed_by": "mcp-agent"}),
    )
    .await;
    assert_eq!(proposed["status"], "proposed");
    let audit = app.get_json("/api/audit?action=rule.propose").await;
    assert_eq!(audit[0]["resource"], "web/no-hex");
    assert_eq!(audit[0]["actor"], "mcp-agent");
    let accepted = app
        .post("/api/rules/web/no-hex/accept", None, StatusCode::OK)
        .await;
    assert_eq!(accepted["status"], "accepted");

    // validate_contract: the same check as POST /api/contracts/…/validate.
    let contract = json!({"kind": "contract", "endpoints": {"POST /users": {
        "request": {"name": {"type": "string", "required": true}}}}});
    let resp = app
        .request(reqwest::Method::PUT, "/api/specs/web/users")
        .json(&contract)
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
    let good = ok(
        &client,
        "validate_contract",
        json!({"project": "web", "contract": "users", "endpoint": "POST /users",
               "direction": "request", "payload": "{\"name\": \"ada\"}"}),
    )
    .await;
    assert_eq!(good["valid"], true, "{good}");
    let bad = ok(
        &client,
        "validate_contract",
        json!({"project": "web", "contract": "users", "endpoint": "POST /users",
               "direction": "request", "payload": "{}"}),
    )
    .await;
    assert_eq!(bad["valid"], false, "{bad}");
    assert!(!bad["violations"].as_array().unwrap().is_empty());
    client.cancel().await.unwrap();
}

#[actix_web::test]
async fn bad_arguments_and_unknown_ids_are_tool_errors_that_change_nothing() {
    let app = TestApp::spawn().await;
    let client = connect(&app).await;

    let msg = refused(&client, "register_instance", json!({"workspace": "/w"})).await;
    assert!(msg.contains("name is required"), "{msg}");
    let msg = refused(&client, "register_instance", json!({"name": 7})).await;
    assert!(msg.contains("name must be a string"), "{msg}");
    let msg = refused(
        &client,
        "set_intent",
        json!({"instance_id": "nope", "intent": "x"}),
    )
    .await;
    assert!(msg.contains("nope"), "{msg}");
    let msg = refused(
        &client,
        "propose_rule",
        json!({"project": "p", "rule_id": "r"}),
    )
    .await;
    assert!(msg.contains("pattern is required"), "{msg}");
    // A rule that is already accepted cannot be proposed again (a 409 over REST).
    let rule = json!({"project": "p", "rule_id": "kept", "pattern": "x", "message": "m"});
    app.post("/api/rules/propose", Some(rule.clone()), StatusCode::OK)
        .await;
    app.post("/api/rules/p/kept/accept", None, StatusCode::OK)
        .await;
    let before = app.get_json("/api/audit/summary").await;
    let msg = refused(&client, "propose_rule", rule).await;
    assert!(!msg.is_empty());
    let msg = refused(
        &client,
        "validate_contract",
        json!({"project": "p", "contract": "none", "endpoint": "GET /", "direction": "request",
               "payload": "{"}),
    )
    .await;
    assert!(msg.contains("payload is not valid JSON"), "{msg}");
    let msg = refused(
        &client,
        "validate_contract",
        json!({"project": "p", "contract": "none", "endpoint": "GET /", "direction": "request",
               "payload": "{}"}),
    )
    .await;
    assert!(msg.contains("not found"), "{msg}");
    let unknown = client
        .call_tool(CallToolRequestParams::new("drop_tables"))
        .await;
    assert!(
        unknown.is_err(),
        "an unknown tool is a protocol error: {unknown:?}"
    );

    assert_eq!(app.get_json("/api/instances").await, json!([]));
    assert_eq!(app.get_json("/api/audit/summary").await, before);
    client.cancel().await.unwrap();
}

#[actix_web::test]
async fn mcp_needs_the_bearer_token_like_rest() {
    let app = TestApp::spawn_with_token("mcp-secret").await;
    let anonymous = reqwest::Client::new()
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, StatusCode::UNAUTHORIZED).await;
    // With the token, rmcp's client works end to end.
    let client = connect(&app).await;
    let ends = ok(&client, "get_endpoints", json!({})).await;
    assert!(ends["message"].as_str().unwrap().contains("Bearer"));
    client.cancel().await.unwrap();
}

async fn post_with_host(app: &TestApp, host: &str) -> StatusCode {
    app.client
        .post(app.url("/mcp"))
        .header("host", host)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap()
        .status()
}

#[actix_web::test]
async fn hosts_beyond_loopback_are_accepted_only_when_configured() {
    let plain = TestApp::spawn().await;
    assert_eq!(post_with_host(&plain, "localhost").await, StatusCode::OK);
    assert_eq!(
        post_with_host(&plain, "koor.lan:9800").await,
        StatusCode::FORBIDDEN
    );

    let lan = TestApp::spawn_with(|c| c.mcp_allowed_hosts = vec!["koor.lan".into()]).await;
    assert_eq!(post_with_host(&lan, "koor.lan:9800").await, StatusCode::OK);
    assert_eq!(
        post_with_host(&lan, "evil.example").await,
        StatusCode::FORBIDDEN
    );

    let any = TestApp::spawn_with(|c| c.mcp_allowed_hosts = vec!["*".into()]).await;
    assert_eq!(post_with_host(&any, "proxy.internal").await, StatusCode::OK);
}

#[actix_web::test]
async fn calls_are_attributed_and_counted_apart_from_rest() {
    let app = TestApp::spawn().await;
    let reg = app.register("claude", Value::Null).await;
    let token = reg["token"].as_str().unwrap().to_string();
    app.post("/api/metrics/reset", None, StatusCode::OK).await;

    let client = connect_with(&app, &[("x-koor-instance-token", token.as_str())]).await;
    ok(
        &client,
        "propose_rule",
        json!({"project": "p", "rule_id": "r", "pattern": "x", "message": "m"}),
    )
    .await;
    client.cancel().await.unwrap();
    let audit = app.get_json("/api/audit?action=rule.propose").await;
    assert_eq!(audit[0]["actor"], "claude");
    let detail: Value = serde_json::from_str(audit[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["instance_id"], reg["id"]);

    let tax = app.get_json("/api/metrics").await["token_tax"].clone();
    // initialize, notifications/initialized, tools/call (and perhaps a session close):
    // every HTTP request to /mcp counts once, and none of them as REST.
    assert!(tax["mcp_calls"].as_u64().unwrap() >= 3, "{tax}");
    assert_eq!(tax["rest_calls"], 1, "the audit read only: {tax}");
}
