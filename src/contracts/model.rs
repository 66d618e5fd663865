//! API contracts (API §11): parsing a contract spec and checking payloads against it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A field of a payload schema.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Field {
    /// `string`, `number`, `boolean`, `object`, `array`, or `""` (any).
    #[serde(rename = "type")]
    pub kind: String,
    pub required: bool,
    pub nullable: bool,
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<String>>,
    /// Sub-schema of an object value.
    pub fields: Option<BTreeMap<String, Field>>,
    /// Schema of each element of an array value.
    pub items: Option<Box<Field>>,
}

/// Field maps by name.
pub type Fields = BTreeMap<String, Field>;

/// One endpoint of a contract.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    pub query: Option<Fields>,
    pub request: Option<Fields>,
    pub response: Option<Fields>,
    pub response_array: Option<Fields>,
    pub error: Option<Fields>,
    pub response_status: Option<i64>,
}

/// A parsed contract: endpoints keyed `"METHOD /path"`, in key order.
#[derive(Clone, Debug)]
pub struct Contract {
    pub endpoints: BTreeMap<String, Endpoint>,
}

/// One contract violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractViolation {
    pub path: String,
    pub message: String,
}

impl ContractViolation {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl Contract {
    /// Parses a spec body: a JSON object with `"kind": "contract"` and a non-empty
    /// `endpoints` object. The error says what is wrong.
    pub fn parse(body: &[u8]) -> Result<Contract, String> {
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| format!("spec is not valid JSON: {e}"))?;
        Self::from_value(&doc)
    }

    /// Like [`Contract::parse`], from a JSON value.
    pub fn from_value(doc: &Value) -> Result<Contract, String> {
        if doc.get("kind").and_then(Value::as_str) != Some("contract") {
            return Err("spec is not a contract (it needs \"kind\": \"contract\")".into());
        }
        let Some(raw) = doc.get("endpoints").and_then(Value::as_object) else {
            return Err("contract has no \"endpoints\" object".into());
        };
        if raw.is_empty() {
            return Err("contract has no endpoints".into());
        }
        let mut endpoints = BTreeMap::new();
        for (key, value) in raw {
            let endpoint: Endpoint = serde_json::from_value(value.clone())
                .map_err(|e| format!("endpoint {key:?} is malformed: {e}"))?;
            endpoints.insert(key.clone(), endpoint);
        }
        Ok(Contract { endpoints })
    }

    /// The endpoint named `key` (`"GET /api/x"`).
    pub fn endpoint(&self, key: &str) -> Option<&Endpoint> {
        self.endpoints.get(key)
    }

    /// Compliance (API §12): endpoints that define none of `request`, `response`,
    /// `response_array`, `query`, in key order.
    pub fn undefined_endpoints(&self) -> Vec<ContractViolation> {
        self.endpoints
            .iter()
            .filter(|(_, e)| {
                e.request.is_none()
                    && e.response.is_none()
                    && e.response_array.is_none()
                    && e.query.is_none()
            })
            .map(|(key, _)| {
                ContractViolation::new(
                    format!("endpoints.{key}"),
                    "endpoint defines no request, response, response_array or query schema",
                )
            })
            .collect()
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks one value against `field` at `path`.
fn check_value(field: &Field, value: &Value, path: &str, out: &mut Vec<ContractViolation>) {
    if value.is_null() {
        if !field.nullable {
            out.push(ContractViolation::new(path, "null is not allowed here"));
        }
        return;
    }
    let actual = type_name(value);
    if !field.kind.is_empty() && field.kind != actual {
        out.push(ContractViolation::new(
            path,
            format!("expected type {}, got {actual}", field.kind),
        ));
        return;
    }
    if let Some(allowed) = &field.allowed {
        let ok = value
            .as_str()
            .is_some_and(|s| allowed.iter().any(|a| a == s));
        if !ok {
            out.push(ContractViolation::new(
                path,
                format!("value {value} is not one of {allowed:?}"),
            ));
        }
    }
    if let (Some(fields), Some(_)) = (&field.fields, value.as_object()) {
        check_object(fields, value, path, out);
    }
    if let (Some(items), Some(elements)) = (&field.items, value.as_array()) {
        for (i, element) in elements.iter().enumerate() {
            check_value(items, element, &format!("{path}[{i}]"), out);
        }
    }
}

/// Checks an object payload against a field map rooted at `path`.
pub fn check_object(
    fields: &Fields,
    payload: &Value,
    path: &str,
    out: &mut Vec<ContractViolation>,
) {
    let Some(obj) = payload.as_object() else {
        out.push(ContractViolation::new(
            path,
            format!("expected an object, got {}", type_name(payload)),
        ));
        return;
    };
    for key in obj.keys() {
        if !fields.contains_key(key) {
            out.push(ContractViolation::new(
                format!("{path}.{key}"),
                format!("unexpected field {key:?} (not in the contract)"),
            ));
        }
    }
    for (name, field) in fields {
        let at = format!("{path}.{name}");
        match obj.get(name) {
            None if field.required => {
                out.push(ContractViolation::new(at, "missing required field"));
            }
            None => {}
            Some(v) => check_value(field, v, &at, out),
        }
    }
}

/// Checks an array payload whose elements follow `fields`, rooted at `path`.
pub fn check_array(fields: &Fields, payload: &Value, path: &str, out: &mut Vec<ContractViolation>) {
    let Some(elements) = payload.as_array() else {
        out.push(ContractViolation::new(
            path,
            format!("expected an array, got {}", type_name(payload)),
        ));
        return;
    };
    for (i, element) in elements.iter().enumerate() {
        check_object(fields, element, &format!("{path}[{i}]"), out);
    }
}

impl Endpoint {
    /// Violations of `payload` in `direction` (`request`, `response`, `query`, `error`).
    pub fn check(&self, direction: &str, payload: &Value) -> Vec<ContractViolation> {
        let mut out = Vec::new();
        let fields = match direction {
            "request" => &self.request,
            "query" => &self.query,
            "error" => &self.error,
            "response" => {
                if let Some(array) = &self.response_array {
                    check_array(array, payload, "response", &mut out);
                    return out;
                }
                &self.response
            }
            other => {
                out.push(ContractViolation::new(
                    "direction",
                    format!("unknown direction {other:?} (request, response, query or error)"),
                ));
                return out;
            }
        };
        match fields {
            Some(f) => check_object(f, payload, direction, &mut out),
            None => out.push(ContractViolation::new(
                direction,
                format!("the endpoint defines no {direction} schema"),
            )),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trucks() -> Contract {
        Contract::from_value(&json!({"kind": "contract", "version": 1, "endpoints": {
            "POST /api/trucks": {
                "request": {"plate": {"type": "string", "required": true},
                            "type": {"type": "string", "enum": ["semi", "tanker"]},
                            "note": {"type": "string", "nullable": true},
                            "address": {"type": "object", "fields": {"city": {"type": "string", "required": true}}},
                            "axles": {"type": "array", "items": {"type": "number"}}},
                "response_status": 201,
                "response": {"id": {"type": "string", "required": true}}},
            "GET /api/trucks": {"response_array": {"id": {"type": "string"}}},
            "GET /api/empty": {}}}))
        .unwrap()
    }

    fn paths(v: &[ContractViolation]) -> Vec<&str> {
        v.iter().map(|x| x.path.as_str()).collect()
    }

    #[test]
    fn payload_violations_have_dotted_paths() {
        let c = trucks();
        let post = c.endpoint("POST /api/trucks").unwrap();
        assert!(
            post.check("request", &json!({"plate": "X1", "type": "semi"}))
                .is_empty()
        );
        let v = post.check(
            "request",
            &json!({"plate_number": "X", "type": "van", "note": null,
                    "address": {"zip": 1}, "axles": [1, "two"]}),
        );
        assert_eq!(
            paths(&v),
            [
                "request.plate_number",
                "request.address.zip",
                "request.address.city",
                "request.axles[1]",
                "request.plate",
                "request.type",
            ]
        );
        let v = post.check("request", &json!({"plate": null}));
        assert_eq!(paths(&v), ["request.plate"]);
        let list = c.endpoint("GET /api/trucks").unwrap();
        let v = list.check("response", &json!([{"id": "a"}, {"id": 2}]));
        assert_eq!(paths(&v), ["response[1].id"]);
        assert_eq!(paths(&list.check("query", &json!({}))), ["query"]);
        assert_eq!(paths(&list.check("sideways", &json!({}))), ["direction"]);
    }

    #[test]
    fn parsing_and_compliance() {
        assert!(Contract::parse(b"{\"kind\":\"doc\"}").is_err());
        assert!(Contract::parse(b"{\"kind\":\"contract\",\"endpoints\":{}}").is_err());
        assert!(Contract::parse(b"nope").is_err());
        let v = trucks().undefined_endpoints();
        assert_eq!(paths(&v), ["endpoints.GET /api/empty"]);
    }
}
