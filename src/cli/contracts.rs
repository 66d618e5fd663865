//! `koor contract …`: API contracts stored as specs (API §11).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, path_escape, read_input};
use super::specs::{json_body, pretty, read_json, spec_path, split_spec, usage};

#[derive(Debug, Subcommand)]
pub enum ContractCmd {
    /// Store a contract (a JSON object with "kind": "contract") as a spec.
    Set {
        #[arg(value_name = "PROJECT/NAME")]
        spec: String,
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print a contract, pretty-printed.
    Get {
        #[arg(value_name = "PROJECT/NAME")]
        spec: String,
    },
    /// Check a payload against one endpoint; prints PASS or FAIL and the violations.
    Validate {
        #[arg(value_name = "PROJECT/NAME")]
        spec: String,
        /// The endpoint, e.g. "POST /api/trucks".
        #[arg(long, value_name = "METHOD /PATH")]
        endpoint: String,
        /// request (the server's default), response, query or error.
        #[arg(long)]
        direction: Option<String>,
        /// The payload as JSON (else --file or standard input; nothing means {}).
        #[arg(long, value_name = "JSON", conflicts_with = "file")]
        payload: Option<String>,
        /// Read the payload from this file.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Call every endpoint of a contract on a running service and check the answers.
    Test {
        #[arg(value_name = "PROJECT/NAME")]
        spec: String,
        /// Base URL of the service under test, e.g. http://localhost:3000.
        #[arg(long, value_name = "URL")]
        target: String,
        /// JSON body sent to POST/PUT/PATCH endpoints (default {}).
        #[arg(long, value_name = "JSON")]
        data: Option<String>,
    },
}

/// Why a value is not a contract, if it is not one.
pub fn check_contract(value: &Value) -> Result<(), String> {
    let Some(object) = value.as_object() else {
        return Err("a contract must be a JSON object".into());
    };
    match object.get("kind") {
        Some(Value::String(kind)) if kind == "contract" => Ok(()),
        None => Err("a contract needs \"kind\": \"contract\" (there is no \"kind\")".into()),
        Some(other) => Err(format!(
            "a contract needs \"kind\": \"contract\" (found \"kind\": {other})"
        )),
    }
}

/// `path: message` for each violation in a list.
fn violation_texts(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let path = v["path"].as_str().unwrap_or("");
            let message = v["message"].as_str().unwrap_or("");
            if path.is_empty() {
                message.to_string()
            } else {
                format!("{path}: {message}")
            }
        })
        .collect()
}

/// The lines `contract validate` prints for a validation result, and whether it passed.
pub fn validate_lines(result: &Value) -> (bool, Vec<String>) {
    let violations = violation_texts(&result["violations"]);
    let valid = result["valid"].as_bool().unwrap_or(false) && violations.is_empty();
    if valid {
        return (true, vec!["PASS".into()]);
    }
    let mut lines = vec!["FAIL".to_string()];
    lines.extend(violations.into_iter().map(|v| format!("  {v}")));
    (false, lines)
}

/// The line `contract test` prints for one endpoint's test result, and whether it passed.
pub fn test_line(endpoint: &str, result: &Value) -> (bool, String) {
    let mut problems = Vec::new();
    if let Some(error) = result["error"].as_str().filter(|e| !e.is_empty()) {
        problems.push(error.to_string());
    }
    problems.extend(violation_texts(&result["request_violations"]));
    problems.extend(violation_texts(&result["response_violations"]));
    if result["valid"].as_bool() == Some(true) && problems.is_empty() {
        return (true, format!("PASS {endpoint}"));
    }
    if problems.is_empty() {
        problems.push(match result["status_code"].as_u64() {
            Some(code) => format!("failed (status {code})"),
            None => "failed".into(),
        });
    }
    (false, format!("FAIL {endpoint}: {}", problems.join("; ")))
}

/// The endpoint keys of a contract, sorted.
pub fn endpoints(contract: &Value) -> Vec<String> {
    let mut keys: Vec<String> = contract["endpoints"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys().cloned())
        .collect();
    keys.sort();
    keys
}

/// The payload for `contract validate`: --payload, --file, piped standard input, else {}.
fn read_payload(payload: Option<String>, file: Option<PathBuf>) -> Result<Value, String> {
    let from_stdin = payload.is_none() && file.is_none();
    if from_stdin && std::io::stdin().is_terminal() {
        return Ok(json!({}));
    }
    let bytes = read_input(payload, file)?;
    if from_stdin && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("the payload is not valid JSON: {e}"))
}

/// `/api/contracts/P/NAME/<action>` for a `PROJECT/NAME` argument, or a printed usage error.
fn action_path(spec: &str, action: &str) -> Result<String, ExitCode> {
    let (project, name) = split_spec(spec).map_err(|e| usage(&e))?;
    Ok(format!(
        "/api/contracts/{}/{}/{action}",
        path_escape(project),
        path_escape(name)
    ))
}

pub async fn run(client: &Client, cmd: ContractCmd) -> ExitCode {
    match cmd {
        ContractCmd::Set { spec, data, file } => {
            let path = match spec_path(&spec) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let (bytes, value) = match read_json(data, file) {
                Ok(v) => v,
                Err(e) => return usage(&e),
            };
            if let Err(e) = check_contract(&value) {
                return usage(&e);
            }
            let outcome = client
                .send(Method::PUT, &path, &[], Some((bytes, "application/json")))
                .await;
            client.print(outcome, false)
        }
        ContractCmd::Get { spec } => {
            let path = match spec_path(&spec) {
                Ok(p) => p,
                Err(code) => return code,
            };
            match client.get(&path, &[]).await {
                Ok((status, _, body)) if status.is_success() => {
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(v) => println!("{}", pretty(&v)),
                        Err(_) => println!("{}", String::from_utf8_lossy(&body).trim_end()),
                    }
                    ExitCode::SUCCESS
                }
                other => client.print(other, false),
            }
        }
        ContractCmd::Validate {
            spec,
            endpoint,
            direction,
            payload,
            file,
        } => {
            let path = match action_path(&spec, "validate") {
                Ok(p) => p,
                Err(code) => return code,
            };
            let payload = match read_payload(payload, file) {
                Ok(v) => v,
                Err(e) => return usage(&e),
            };
            let mut body = json!({"endpoint": endpoint, "payload": payload});
            if let Some(d) = direction {
                body["direction"] = json!(d);
            }
            let result = match json_body(client, client.post_json(&path, &body).await) {
                Ok(v) => v,
                Err(code) => return code,
            };
            let (pass, lines) = validate_lines(&result);
            for line in lines {
                println!("{line}");
            }
            if pass {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        ContractCmd::Test { spec, target, data } => {
            let spec_url = match spec_path(&spec) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let test_url = match action_path(&spec, "test") {
                Ok(p) => p,
                Err(code) => return code,
            };
            let test_data = match data {
                None => json!({}),
                Some(d) => match serde_json::from_str::<Value>(&d) {
                    Ok(v) => v,
                    Err(e) => return usage(&format!("--data is not valid JSON: {e}")),
                },
            };
            let contract = match json_body(client, client.get(&spec_url, &[]).await) {
                Ok(v) => v,
                Err(code) => return code,
            };
            let keys = endpoints(&contract);
            if keys.is_empty() {
                eprintln!("koor: {spec} has no endpoints to test");
                return ExitCode::from(1);
            }
            let mut passed = 0;
            for endpoint in &keys {
                let body =
                    json!({"endpoint": endpoint, "base_url": target, "test_data": test_data});
                let line = match client.post_json(&test_url, &body).await {
                    Err(e) => {
                        eprintln!("koor: {e}");
                        return ExitCode::from(1);
                    }
                    Ok((status, _, resp)) => {
                        let result: Value = serde_json::from_slice(&resp).unwrap_or(Value::Null);
                        if status.is_success() {
                            let (pass, line) = test_line(endpoint, &result);
                            if pass {
                                passed += 1;
                            }
                            line
                        } else {
                            let error = result["error"]
                                .as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| String::from_utf8_lossy(&resp).trim().into());
                            format!("FAIL {endpoint}: HTTP {}: {error}", status.as_u16())
                        }
                    }
                };
                println!("{line}");
            }
            println!("{passed}/{} endpoints PASS", keys.len());
            if passed == keys.len() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_of_kind_contract_are_contracts() {
        let cases = [
            (json!({"kind": "contract", "endpoints": {}}), None),
            (json!({"kind": "contract"}), None),
            (json!([1]), Some("must be a JSON object")),
            (json!("contract"), Some("must be a JSON object")),
            (json!({"endpoints": {}}), Some("there is no \"kind\"")),
            (
                json!({"kind": "schema"}),
                Some("found \"kind\": \"schema\""),
            ),
            (json!({"kind": 1}), Some("found \"kind\": 1")),
        ];
        for (value, want) in cases {
            match (check_contract(&value), want) {
                (Ok(()), None) => {}
                (Err(e), Some(part)) => assert!(e.contains(part), "{value}: {e}"),
                (got, _) => panic!("{value}: {got:?}"),
            }
        }
    }

    #[test]
    fn validation_results_print_pass_or_fail_lines() {
        let cases = [
            (json!({"valid": true, "violations": []}), true, vec!["PASS"]),
            (
                json!({"valid": false, "violations": [
                    {"path": "request.plate_number", "message": "unexpected field"},
                    {"path": "request.plate", "message": "required field missing"}]}),
                false,
                vec![
                    "FAIL",
                    "  request.plate_number: unexpected field",
                    "  request.plate: required field missing",
                ],
            ),
            (
                json!({"valid": false, "violations": [{"path": "", "message": "unknown endpoint"}]}),
                false,
                vec!["FAIL", "  unknown endpoint"],
            ),
            (json!({}), false, vec!["FAIL"]),
        ];
        for (result, want_pass, want_lines) in cases {
            let (pass, lines) = validate_lines(&result);
            assert_eq!(pass, want_pass, "{result}");
            assert_eq!(lines, want_lines, "{result}");
        }
    }

    #[test]
    fn test_results_print_one_line_per_endpoint() {
        let cases = [
            (
                json!({"valid": true, "endpoint": "GET /a", "status_code": 200,
                       "request_violations": [], "response_violations": [], "error": ""}),
                true,
                "PASS GET /a",
            ),
            (
                json!({"valid": false, "error": "connection refused",
                       "request_violations": [], "response_violations": []}),
                false,
                "FAIL GET /a: connection refused",
            ),
            (
                json!({"valid": false, "error": "",
                       "request_violations": [{"path": "request.x", "message": "wrong type"}],
                       "response_violations": [{"path": "response[0].id", "message": "missing"}]}),
                false,
                "FAIL GET /a: request.x: wrong type; response[0].id: missing",
            ),
            (
                json!({"valid": false, "status_code": 500}),
                false,
                "FAIL GET /a: failed (status 500)",
            ),
        ];
        for (result, want_pass, want_line) in cases {
            assert_eq!(
                test_line("GET /a", &result),
                (want_pass, want_line.to_string()),
                "{result}"
            );
        }
    }

    #[test]
    fn endpoints_are_sorted() {
        let contract = json!({"kind": "contract", "endpoints": {
            "POST /api/trucks": {}, "GET /api/trucks": {}, "DELETE /api/a": {}}});
        assert_eq!(
            endpoints(&contract),
            ["DELETE /api/a", "GET /api/trucks", "POST /api/trucks"]
        );
        assert!(endpoints(&json!({"kind": "contract"})).is_empty());
    }

    #[test]
    fn contract_actions_have_their_own_paths() {
        assert_eq!(
            action_path("p x/api", "validate").ok().as_deref(),
            Some("/api/contracts/p%20x/api/validate")
        );
        assert!(action_path("p", "test").is_err());
    }
}
