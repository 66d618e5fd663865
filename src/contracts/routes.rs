//! REST adapter of contracts (API §11): checks run on the HTTP worker against the
//! contract spec read from the `SpecRegistry`; `/test` calls the target with reqwest.

use std::time::Duration;

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{Contract, ContractViolation};
use crate::error::{ApiError, ApiResult};
use crate::http::{JsonBody, method_not_allowed};
use crate::specs::{SpecRegistry, spec_key};
use crate::state::GetCurrent;

/// Timeout of one contract test call.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client contract tests call targets with (shared as app data).
#[derive(Clone)]
pub struct ContractClient(pub reqwest::Client);

impl ContractClient {
    /// A client with the test timeout, no proxy, and `trust` for `https` targets.
    pub fn new(trust: &crate::tls::Trust) -> Result<Self, reqwest::Error> {
        trust
            .client_builder()
            .timeout(TEST_TIMEOUT)
            .no_proxy()
            .build()
            .map(ContractClient)
    }
}

/// Registers the contract routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/contracts/{project}/{name}/validate")
            .route(web::post().to(validate))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/contracts/{project}/{name}/test")
            .route(web::post().to(test))
            .default_service(web::to(method_not_allowed("POST"))),
    );
}

#[derive(Debug, Deserialize)]
struct ValidateIn {
    endpoint: Option<String>,
    direction: Option<String>,
    #[serde(default)]
    payload: Value,
}

#[derive(Debug, Deserialize)]
struct TestIn {
    endpoint: Option<String>,
    base_url: Option<String>,
    #[serde(default)]
    test_data: Value,
}

fn required(v: Option<String>, name: &str) -> ApiResult<String> {
    v.filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
}

async fn load(specs: &Addr<SpecRegistry>, project: &str, name: &str) -> ApiResult<Contract> {
    let entry = specs
        .send(GetCurrent {
            key: spec_key(project, name),
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("spec not found: {project}/{name}")))?;
    Contract::parse(&entry.value).map_err(ApiError::bad_request)
}

/// Checks `payload` against one endpoint of the stored contract `project/name` (REST
/// and MCP alike); an endpoint the contract does not have is itself a violation.
pub async fn check_payload(
    specs: &Addr<SpecRegistry>,
    project: &str,
    name: &str,
    endpoint: &str,
    direction: &str,
    payload: &Value,
) -> ApiResult<Vec<ContractViolation>> {
    let contract = load(specs, project, name).await?;
    Ok(match contract.endpoint(endpoint) {
        Some(e) => e.check(direction, payload),
        None => vec![ContractViolation {
            path: "endpoint".into(),
            message: format!("endpoint {endpoint:?} is not in the contract"),
        }],
    })
}

async fn validate(
    specs: web::Data<Addr<SpecRegistry>>,
    path: web::Path<(String, String)>,
    JsonBody(body): JsonBody<ValidateIn>,
) -> ApiResult<HttpResponse> {
    let (project, name) = path.into_inner();
    let endpoint = required(body.endpoint, "endpoint")?;
    let direction = body.direction.filter(|d| !d.is_empty());
    let direction = direction.as_deref().unwrap_or("request");
    let violations =
        check_payload(&specs, &project, &name, &endpoint, direction, &body.payload).await?;
    Ok(HttpResponse::Ok().json(json!({
        "valid": violations.is_empty(),
        "violations": violations,
    })))
}

async fn test(
    specs: web::Data<Addr<SpecRegistry>>,
    client: web::Data<ContractClient>,
    path: web::Path<(String, String)>,
    JsonBody(body): JsonBody<TestIn>,
) -> ApiResult<HttpResponse> {
    let (project, name) = path.into_inner();
    let key = required(body.endpoint, "endpoint")?;
    let base = required(body.base_url, "base_url")?;
    let contract = load(&specs, &project, &name).await?;
    let endpoint = contract
        .endpoint(&key)
        .ok_or_else(|| ApiError::bad_request(format!("endpoint {key:?} is not in the contract")))?;
    let (method, route) = key.split_once(' ').ok_or_else(|| {
        ApiError::bad_request(format!("endpoint {key:?} is not \"METHOD /path\""))
    })?;
    let method = reqwest::Method::from_bytes(method.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| ApiError::bad_request(format!("endpoint {key:?} has an invalid method")))?;
    let url = format!("{}{}", base.trim_end_matches('/'), route.trim());
    let with_body = matches!(
        method,
        reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH
    );
    let test_data = if body.test_data.is_null() {
        json!({})
    } else {
        body.test_data
    };
    let request_violations = if with_body && endpoint.request.is_some() {
        endpoint.check("request", &test_data)
    } else {
        Vec::new()
    };

    let mut req = client.0.request(method, &url);
    if with_body {
        req = req.json(&test_data);
    }
    let (status, response_violations, error) = match req.send().await {
        Err(e) => (
            0,
            Vec::new(),
            format!("request to {url} failed: {}", crate::error::chain(&e)),
        ),
        Ok(resp) => {
            let status = resp.status().as_u16();
            let mut violations = Vec::new();
            if let Some(expected) = endpoint.response_status
                && i64::from(status) != expected
            {
                violations.push(ContractViolation {
                    path: "response_status".into(),
                    message: format!("expected status {expected}, got {status}"),
                });
            }
            let mut error = String::new();
            if endpoint.response.is_some() || endpoint.response_array.is_some() {
                match resp.bytes().await {
                    Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                        Ok(doc) => violations.extend(endpoint.check("response", &doc)),
                        Err(e) => violations.push(ContractViolation {
                            path: "response".into(),
                            message: format!("response body is not JSON: {e}"),
                        }),
                    },
                    Err(e) => error = format!("cannot read the response: {e}"),
                }
            }
            (status, violations, error)
        }
    };
    let valid = error.is_empty() && request_violations.is_empty() && response_violations.is_empty();
    Ok(HttpResponse::Ok().json(json!({
        "valid": valid,
        "endpoint": key,
        "status_code": status,
        "request_violations": request_violations,
        "response_violations": response_violations,
        "error": error,
    })))
}
