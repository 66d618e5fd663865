//! `GET /openapi.json`: an OpenAPI 3.1 document of every REST route (API §26).
//!
//! The document is built from [`operations`], one entry per method and path, next to the
//! shared pieces every entry uses (the error answer, the bearer scheme, the schemas of the
//! main objects). A test compares the app's registered routes with the document's paths,
//! so a route added without an entry fails the suite.
//!
//! Adding a route: append one entry to [`operations`], e.g.
//!
//! ```text
//! post("/api/keys", "Keys", "Create an access key")
//!     .body(obj(&[("name", s(STR)), ("scopes", strings())], &["name"]))
//!     .ok(object())
//!     .errors(&[409]),
//! ```
//!
//! Path parameters come from the `{name}` segments; `.query(&[(name, type)])` adds query
//! parameters, `.body(schema)` a JSON body, `.raw_body()` any body, `.ok(schema)` the 200
//! answer, `.errors(&[..])` the errors beyond the ones every operation has (400, 401, 404,
//! 413, 500, 503, and 403 and 429 from the access gate).

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

/// The document, built once at startup and shared as app data.
pub struct OpenApiDoc(pub Value);

impl OpenApiDoc {
    /// Builds the document.
    pub fn new() -> OpenApiDoc {
        OpenApiDoc(document())
    }
}

impl Default for OpenApiDoc {
    fn default() -> Self {
        OpenApiDoc::new()
    }
}

/// `GET /openapi.json`.
pub async fn serve(doc: web::Data<OpenApiDoc>) -> HttpResponse {
    HttpResponse::Ok().json(&doc.0)
}

/// Errors every operation may answer.
const COMMON_ERRORS: &[u16] = &[400, 401, 403, 404, 413, 429, 500, 503];

/// One operation of the document.
pub struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    query: Vec<(&'static str, Value)>,
    body: Option<Value>,
    raw_body: bool,
    ok: Value,
    raw_ok: bool,
    errors: Vec<u16>,
    public: bool,
    /// Another media type the 200 answer may have (a query parameter selects it).
    alt_ok: Option<&'static str>,
}

fn op(method: &'static str, path: &'static str, tag: &'static str, summary: &'static str) -> Op {
    Op {
        method,
        path,
        tag,
        summary,
        query: Vec::new(),
        body: None,
        raw_body: false,
        ok: object(),
        raw_ok: false,
        errors: Vec::new(),
        public: false,
        alt_ok: None,
    }
}

fn get(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
    op("get", path, tag, summary)
}
fn post(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
    op("post", path, tag, summary)
}
fn put(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
    op("put", path, tag, summary)
}
fn delete(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
    op("delete", path, tag, summary)
}

impl Op {
    fn query(mut self, params: &[(&'static str, Value)]) -> Op {
        self.query.extend(params.iter().cloned());
        self
    }
    fn body(mut self, schema: Value) -> Op {
        self.body = Some(schema);
        self
    }
    fn raw_body(mut self) -> Op {
        self.raw_body = true;
        self
    }
    fn ok(mut self, schema: Value) -> Op {
        self.ok = schema;
        self
    }
    /// The 200 answer is not JSON (a stored value, the Prometheus text).
    fn raw_ok(mut self) -> Op {
        self.raw_ok = true;
        self
    }
    fn errors(mut self, codes: &[u16]) -> Op {
        self.errors.extend_from_slice(codes);
        self
    }
    /// The 200 answer may also be text of `media_type` (`?format=dot`).
    fn alt_ok(mut self, media_type: &'static str) -> Op {
        self.alt_ok = Some(media_type);
        self
    }
    /// No bearer token needed (`/health`).
    fn public(mut self) -> Op {
        self.public = true;
        self
    }

    fn render(&self) -> Value {
        let mut params: Vec<Value> = path_params(self.path)
            .into_iter()
            .map(|name| {
                json!({"name": name, "in": "path", "required": true,
                       "schema": {"type": "string", "minLength": 1}})
            })
            .collect();
        params.extend(
            self.query
                .iter()
                .map(|(name, schema)| json!({"name": name, "in": "query", "schema": schema})),
        );
        let mut responses = Map::new();
        let ok = if self.raw_ok {
            json!({"description": "Success", "content": {"*/*": {}}})
        } else {
            let mut content = json!({"application/json": {"schema": self.ok}});
            if let Some(alt) = self.alt_ok {
                content[alt] = json!({"schema": {"type": "string"}});
            }
            json!({"description": "Success", "content": content})
        };
        responses.insert("200".into(), ok);
        let mut codes: Vec<u16> = COMMON_ERRORS.to_vec();
        codes.extend(&self.errors);
        codes.sort_unstable();
        codes.dedup();
        for code in codes {
            let answer = if code == 304 {
                json!({"description": "Not modified"})
            } else {
                json!({"$ref": "#/components/responses/Error"})
            };
            responses.insert(code.to_string(), answer);
        }
        let mut out = json!({
            "tags": [self.tag],
            "summary": self.summary,
            "operationId": operation_id(self.method, self.path),
            "parameters": params,
            "responses": responses,
        });
        if let Some(schema) = &self.body {
            out["requestBody"] = json!({"required": true,
                "content": {"application/json": {"schema": schema}}});
        } else if self.raw_body {
            out["requestBody"] = json!({"required": true,
                "content": {"*/*": {"schema": {}}}});
        }
        if self.public {
            out["security"] = json!([]);
        }
        out
    }
}

/// The `{name}` segments of `path`.
pub fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let part = part.trim_start_matches('{').trim_end_matches('}');
        id.push('_');
        id.extend(
            part.chars()
                .map(|c| if c.is_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

// --- schema helpers -------------------------------------------------------------------

const STR: &str = "string";
const INT: &str = "integer";
const NUM: &str = "number";
const BOOL: &str = "boolean";

fn t(kind: &str) -> Value {
    json!({"type": kind})
}
fn object() -> Value {
    json!({"type": "object"})
}
fn any() -> Value {
    json!({})
}
fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}
fn strings() -> Value {
    array(t(STR))
}
fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}
/// An object with these properties (each a type name or a schema) and required fields.
fn obj(props: &[(&str, Value)], required: &[&str]) -> Value {
    let props: Map<String, Value> = props
        .iter()
        .map(|(name, schema)| ((*name).to_string(), schema.clone()))
        .collect();
    json!({"type": "object", "properties": props, "required": required})
}
fn s(kind: &str) -> Value {
    t(kind)
}
/// A value of this type, or null.
fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

fn limit() -> (&'static str, Value) {
    ("limit", t(INT))
}

// --- the operations -------------------------------------------------------------------

/// Every REST operation of the API, by route family.
pub fn operations() -> Vec<Op> {
    let rule_in = obj(
        &[
            ("project", s(STR)),
            ("rule_id", s(STR)),
            ("severity", json!({"enum": ["error", "warning"]})),
            ("match_type", s(STR)),
            ("pattern", s(STR)),
            ("message", s(STR)),
            ("applies_to", strings()),
            ("stack", s(STR)),
            ("source", s(STR)),
            ("proposed_by", s(STR)),
            ("context", s(STR)),
        ],
        &[],
    );
    let lease_in = obj(
        &[
            ("token", s(INT)),
            ("lease_seconds", s(NUM)),
            ("result", any()),
            ("error", any()),
            ("retry_after_seconds", s(NUM)),
        ],
        &["token"],
    );
    let time_range = [("from", t(STR)), ("to", t(STR))];
    let key = obj(
        &[
            ("id", s(STR)),
            ("name", s(STR)),
            ("scopes", strings()),
            ("created_at", s(STR)),
        ],
        &["id", "name", "scopes"],
    );
    let mut ops = vec![
        get("/health", "Health", "Liveness of the server")
            .ok(obj(&[("status", s(STR))], &["status"]))
            .public(),
        get("/metrics", "Telemetry", "Prometheus metrics (text format)").raw_ok(),
        get(
            "/api/cluster",
            "Health",
            "This member's role, the leader, its epoch and the members (§27)",
        )
        .ok(obj(
            &[
                ("role", s(STR)),
                ("leader", s(STR)),
                ("epoch", s(INT)),
                (
                    "members",
                    json!({"type": "array", "items": {"type": "object"}}),
                ),
            ],
            &["role", "leader", "epoch", "members"],
        )),
        // State (§4)
        get(
            "/api/state",
            "State",
            "List keys with their current version",
        )
        .ok(array(r("StateSummary"))),
        get(
            "/api/state/{key}",
            "State",
            "Current value (raw), history, one version or a diff",
        )
        .query(&[
            ("history", t(STR)),
            limit(),
            ("version", t(INT)),
            ("diff", t(STR)),
        ])
        .raw_ok()
        .errors(&[304]),
        put("/api/state/{key}", "State", "Write a new version")
            .query(&[("if_version", t(INT))])
            .raw_body()
            .ok(r("StateSummary"))
            .errors(&[409, 412]),
        post(
            "/api/state/{key}",
            "State",
            "Roll back to a version (?rollback=N)",
        )
        .query(&[("rollback", t(INT))])
        .ok(r("StateSummary")),
        delete("/api/state/{key}", "State", "Delete a key").ok(object()),
        // Specs (§5)
        get("/api/specs/{project}", "Specs", "List a project's specs").ok(obj(
            &[("project", s(STR)), ("specs", array(object()))],
            &["project", "specs"],
        )),
        get(
            "/api/specs/{project}/{name}",
            "Specs",
            "Current spec body (raw)",
        )
        .raw_ok()
        .errors(&[304]),
        put("/api/specs/{project}/{name}", "Specs", "Write a spec")
            .query(&[("if_version", t(INT)), ("schema", t(STR))])
            .raw_body()
            .ok(object())
            .errors(&[409, 412, 422]),
        delete("/api/specs/{project}/{name}", "Specs", "Delete a spec").ok(object()),
        // Events (§6)
        post("/api/events/publish", "Events", "Publish an event")
            .body(obj(&[("topic", s(STR)), ("data", any())], &["topic"]))
            .ok(r("Event")),
        get(
            "/api/events/history",
            "Events",
            "Recent events, or events after a cursor",
        )
        .query(&[
            ("last", t(INT)),
            ("after", t(INT)),
            limit(),
            ("topic", t(STR)),
            ("source", t(STR)),
            time_range[0].clone(),
            time_range[1].clone(),
        ])
        .ok(array(r("Event")))
        .errors(&[410]),
        get(
            "/api/events/wait",
            "Events",
            "Long-poll for events after a cursor",
        )
        .query(&[
            ("after", t(INT)),
            ("topic", t(STR)),
            ("timeout", t(NUM)),
            limit(),
        ])
        .ok(array(r("Event")))
        .errors(&[410]),
        get(
            "/api/events/subscribe",
            "Events",
            "WebSocket stream of events",
        )
        .query(&[("pattern", t(STR)), ("after", t(INT))])
        .errors(&[410]),
        // Instances (§7, §8)
        post(
            "/api/instances/register",
            "Instances",
            "Register an agent instance",
        )
        .body(obj(
            &[
                ("name", s(STR)),
                ("workspace", s(STR)),
                ("intent", s(STR)),
                ("stack", s(STR)),
                ("capabilities", strings()),
                ("parent_id", nullable(STR)),
                ("labels", object()),
                ("build", nullable("object")),
                ("endpoints", object()),
            ],
            &["name"],
        ))
        .ok(r("Instance")),
        get("/api/instances", "Instances", "List instances")
            .query(&[
                ("name", t(STR)),
                ("workspace", t(STR)),
                ("stack", t(STR)),
                ("capability", t(STR)),
            ])
            .ok(array(r("Instance"))),
        get("/api/instances/stale", "Instances", "List stale instances").ok(array(r("Instance"))),
        get("/api/instances/{id}", "Instances", "One instance").ok(r("Instance")),
        delete("/api/instances/{id}", "Instances", "Deregister").ok(object()),
        post("/api/instances/{id}/heartbeat", "Instances", "Heartbeat")
            .body(obj(
                &[
                    ("parent_id", nullable(STR)),
                    ("labels", object()),
                    ("build", nullable("object")),
                    ("endpoints", object()),
                    ("health", nullable("object")),
                    ("progress", nullable("object")),
                ],
                &[],
            ))
            .ok(object()),
        get(
            "/api/topology",
            "Instances",
            "Who started whom and who works with whom",
        )
        .query(&[("format", json!({"enum": ["json", "dot"]}))])
        .alt_ok("text/vnd.graphviz")
        .ok(obj(
            &[
                ("nodes", array(object())),
                ("edges", array(object())),
                ("truncated", s(BOOL)),
            ],
            &["nodes", "edges"],
        )),
        post("/api/instances/{id}/activate", "Instances", "Activate").ok(object()),
        post(
            "/api/instances/{id}/capabilities",
            "Instances",
            "Replace capabilities",
        )
        .body(obj(&[("capabilities", strings())], &[]))
        .ok(object()),
        post(
            "/api/liveness/check",
            "Instances",
            "Run a liveness sweep now",
        )
        .ok(object()),
        // Validation rules and lifecycle (§9, §10)
        get(
            "/api/validate/{project}/rules",
            "Rules",
            "A project's rules",
        )
        .query(&[("stack", t(STR))])
        .ok(obj(
            &[("project", s(STR)), ("rules", array(object()))],
            &["project", "rules"],
        )),
        put(
            "/api/validate/{project}/rules",
            "Rules",
            "Replace a project's rules",
        )
        .body(array(rule_in.clone()))
        .ok(object()),
        post("/api/validate/{project}", "Rules", "Validate content")
            .body(obj(
                &[("content", s(STR)), ("filename", s(STR)), ("stack", s(STR))],
                &["content"],
            ))
            .ok(object()),
        get("/api/rules", "Rules", "Every rule of every project")
            .query(&[("status", t(STR)), ("project", t(STR))])
            .ok(array(object())),
        post("/api/rules/propose", "Rules", "Propose a rule")
            .body(rule_in.clone())
            .ok(object())
            .errors(&[409]),
        get("/api/rules/export", "Rules", "Export rules")
            .query(&[("source", t(STR))])
            .ok(array(object())),
        post("/api/rules/import", "Rules", "Import rules")
            .body(array(rule_in))
            .ok(object()),
        post(
            "/api/rules/{project}/{rule_id}/accept",
            "Rules",
            "Accept a proposal",
        )
        .ok(object()),
        post(
            "/api/rules/{project}/{rule_id}/reject",
            "Rules",
            "Reject a proposal",
        )
        .ok(object()),
        delete("/api/rules/{project}/{rule_id}", "Rules", "Delete a rule").ok(object()),
        // Contracts (§11)
        post(
            "/api/contracts/{project}/{name}/validate",
            "Contracts",
            "Check a payload against a contract",
        )
        .body(obj(
            &[
                ("endpoint", s(STR)),
                ("direction", s(STR)),
                ("payload", any()),
            ],
            &["endpoint"],
        ))
        .ok(object()),
        post(
            "/api/contracts/{project}/{name}/test",
            "Contracts",
            "Call a service and check its answer",
        )
        .body(obj(
            &[
                ("endpoint", s(STR)),
                ("base_url", s(STR)),
                ("test_data", any()),
            ],
            &["endpoint", "base_url"],
        ))
        .ok(object()),
        // Compliance (§12)
        get(
            "/api/compliance/history",
            "Compliance",
            "Past compliance runs",
        )
        .query(&[("instance_id", t(STR)), limit()])
        .ok(array(object())),
        post(
            "/api/compliance/run",
            "Compliance",
            "Run a compliance pass now",
        )
        .ok(object()),
        // Webhooks (§13)
        post("/api/webhooks", "Webhooks", "Create a webhook")
            .body(obj(
                &[
                    ("id", s(STR)),
                    ("url", s(STR)),
                    ("patterns", strings()),
                    ("secret", s(STR)),
                ],
                &["id", "url"],
            ))
            .ok(r("Webhook"))
            .errors(&[409]),
        get("/api/webhooks", "Webhooks", "List webhooks").ok(array(r("Webhook"))),
        delete("/api/webhooks/{id}", "Webhooks", "Delete a webhook").ok(object()),
        post(
            "/api/webhooks/{id}/test",
            "Webhooks",
            "Fire a test delivery",
        )
        .ok(object()),
        post(
            "/api/webhooks/{id}/enable",
            "Webhooks",
            "Re-enable a webhook",
        )
        .ok(r("Webhook")),
        get(
            "/api/webhooks/{id}/deliveries",
            "Webhooks",
            "The delivery log",
        )
        .query(&[limit()])
        .ok(array(object())),
        post(
            "/api/webhooks/{id}/deliveries/{delivery_id}/retry",
            "Webhooks",
            "Retry a delivery",
        )
        .ok(object())
        .errors(&[409]),
        // Templates (§14)
        post("/api/templates", "Templates", "Create a template")
            .body(obj(
                &[
                    ("id", s(STR)),
                    ("name", s(STR)),
                    ("description", s(STR)),
                    ("kind", json!({"enum": ["rules", "contracts", "bundle"]})),
                    ("data", any()),
                    ("tags", strings()),
                ],
                &["id", "name", "kind", "data"],
            ))
            .ok(object())
            .errors(&[409]),
        get("/api/templates", "Templates", "List templates")
            .query(&[("kind", t(STR)), ("tag", t(STR))])
            .ok(array(object())),
        get("/api/templates/{id}", "Templates", "One template").ok(object()),
        delete("/api/templates/{id}", "Templates", "Delete a template").ok(object()),
        post(
            "/api/templates/{id}/apply",
            "Templates",
            "Apply to a project",
        )
        .body(obj(&[("project", s(STR))], &["project"]))
        .ok(object()),
        // Audit (§15)
        get("/api/audit", "Audit", "Audit entries")
            .query(&[
                ("actor", t(STR)),
                ("action", t(STR)),
                time_range[0].clone(),
                time_range[1].clone(),
                limit(),
            ])
            .ok(array(object())),
        get("/api/audit/summary", "Audit", "Counts by action and actor").ok(object()),
        get("/api/audit/verify", "Audit", "Verify the hash chain").ok(object()),
        // Metrics (§16)
        get("/api/metrics", "Metrics", "Token tax and counts").ok(object()),
        post(
            "/api/metrics/reset",
            "Metrics",
            "Reset the token-tax counters",
        )
        .ok(object()),
        get("/api/metrics/agents", "Metrics", "Per-agent metrics")
            .query(&[("instance_id", t(STR)), ("period", t(STR))])
            .ok(any()),
        get("/api/metrics/agents/{id}", "Metrics", "One agent's metrics")
            .query(&[("period", t(STR))])
            .ok(any()),
        // LLM usage (§17)
        post("/api/llm/usage", "LLM", "Record usage")
            .body(obj(
                &[
                    ("instance_id", s(STR)),
                    ("project", s(STR)),
                    ("provider", s(STR)),
                    ("model", s(STR)),
                    ("tokens_in", s(INT)),
                    ("tokens_out", s(INT)),
                    ("cost_usd", s(NUM)),
                    ("request_type", s(STR)),
                    ("session_tag", s(STR)),
                ],
                &["provider", "model"],
            ))
            .ok(object()),
        get("/api/llm/usage", "LLM", "Usage records")
            .query(&[
                ("instance", t(STR)),
                ("project", t(STR)),
                ("session_tag", t(STR)),
                time_range[0].clone(),
                time_range[1].clone(),
                limit(),
            ])
            .ok(array(object())),
        get("/api/llm/usage/summary", "LLM", "Usage totals")
            .query(&[
                ("group_by", t(STR)),
                time_range[0].clone(),
                time_range[1].clone(),
            ])
            .ok(object()),
        get("/api/llm/budgets", "LLM", "List budgets").ok(array(object())),
        get("/api/llm/budgets/{scope}", "LLM", "One budget").ok(object()),
        put("/api/llm/budgets/{scope}", "LLM", "Set a budget")
            .body(obj(
                &[
                    ("period", s(STR)),
                    ("max_tokens", s(INT)),
                    ("max_cost_usd", s(NUM)),
                ],
                &[],
            ))
            .ok(object()),
        delete("/api/llm/budgets/{scope}", "LLM", "Delete a budget").ok(object()),
        // Tasks (§23)
        post("/api/tasks", "Tasks", "Create a task")
            .body(obj(
                &[
                    ("payload", any()),
                    ("queue", s(STR)),
                    ("priority", s(INT)),
                    ("max_attempts", s(INT)),
                    ("lease_seconds", s(NUM)),
                    ("delay_seconds", s(NUM)),
                    ("requires", strings()),
                    ("group", s(STR)),
                    ("idempotency_key", s(STR)),
                ],
                &["payload"],
            ))
            .ok(object())
            .errors(&[409]),
        get("/api/tasks", "Tasks", "List tasks")
            .query(&[
                ("queue", t(STR)),
                ("status", t(STR)),
                ("group", t(STR)),
                ("holder", t(STR)),
                limit(),
            ])
            .ok(array(object())),
        post(
            "/api/tasks/claim",
            "Tasks",
            "Claim the next task (long-poll)",
        )
        .body(obj(
            &[
                ("holder", s(STR)),
                ("queue", s(STR)),
                ("lease_seconds", s(NUM)),
                ("wait_seconds", s(NUM)),
            ],
            &[],
        ))
        .ok(object())
        .errors(&[409]),
        get("/api/tasks/stats", "Tasks", "Counts by queue and status")
            .query(&[("queue", t(STR))])
            .ok(object()),
        get("/api/tasks/groups/{group}", "Tasks", "A group's progress").ok(object()),
        get(
            "/api/tasks/groups/{group}/wait",
            "Tasks",
            "Wait for a group to finish",
        )
        .query(&[("timeout", t(NUM))])
        .ok(object()),
        get("/api/tasks/{id}", "Tasks", "One task").ok(object()),
    ];
    for (path, summary) in [
        ("/api/tasks/{id}/renew", "Renew a task's lease"),
        ("/api/tasks/{id}/complete", "Complete a task"),
        ("/api/tasks/{id}/fail", "Fail a task"),
        ("/api/tasks/{id}/release", "Release a task"),
    ] {
        ops.push(
            post(path, "Tasks", summary)
                .body(lease_in.clone())
                .ok(object())
                .errors(&[409]),
        );
    }
    for (path, summary) in [
        ("/api/tasks/{id}/cancel", "Cancel a task"),
        ("/api/tasks/{id}/retry", "Retry a dead or failed task"),
    ] {
        ops.push(post(path, "Tasks", summary).ok(object()).errors(&[409]));
    }
    ops.extend([
        // Locks (§24)
        post("/api/locks", "Locks", "Acquire a lock (may wait)")
            .body(obj(
                &[
                    ("resource", s(STR)),
                    ("holder", s(STR)),
                    ("mode", json!({"enum": ["exclusive", "shared"]})),
                    ("ttl_seconds", s(NUM)),
                    ("reason", s(STR)),
                    ("wait_seconds", s(NUM)),
                ],
                &["resource"],
            ))
            .ok(object())
            .errors(&[409]),
        get("/api/locks", "Locks", "List locks")
            .query(&[("holder", t(STR)), ("resource", t(STR)), limit()])
            .ok(array(object())),
        post(
            "/api/locks/check",
            "Locks",
            "Which paths are locked by others",
        )
        .body(obj(&[("paths", strings()), ("holder", s(STR))], &["paths"]))
        .ok(object()),
        delete("/api/locks/{id}", "Locks", "Release a lock")
            .query(&[("token", t(INT))])
            .ok(object())
            .errors(&[409]),
        post("/api/locks/{id}/renew", "Locks", "Renew a lock")
            .body(obj(
                &[("token", s(INT)), ("ttl_seconds", s(NUM))],
                &["token"],
            ))
            .ok(object())
            .errors(&[409]),
        // Access keys and the caller's identity (§25)
        post(
            "/api/keys",
            "Keys",
            "Create an access key (its secret is shown once)",
        )
        .body(obj(
            &[
                ("name", s(STR)),
                ("scopes", strings()),
                ("projects", strings()),
                ("expires_at", s(STR)),
                ("rate_limit", s(NUM)),
            ],
            &["name", "scopes"],
        ))
        .ok(key.clone())
        .errors(&[409]),
        get(
            "/api/keys",
            "Keys",
            "List the keys not revoked (no secrets)",
        )
        .ok(array(key.clone())),
        delete("/api/keys/{id}", "Keys", "Revoke a key")
            .ok(obj(&[("revoked", s(STR))], &["revoked"])),
        post("/api/keys/{id}/rotate", "Keys", "Give a key a new secret").ok(key),
        get(
            "/api/whoami",
            "Keys",
            "The caller's principal, scopes and projects",
        )
        .ok(obj(
            &[
                ("principal", s(STR)),
                ("scopes", strings()),
                ("auth", s(BOOL)),
            ],
            &["principal", "scopes", "auth"],
        )),
        // Operations (§26)
        get(
            "/api/admin/snapshot",
            "Admin",
            "A consistent copy of the whole database",
        )
        .raw_ok()
        .errors(&[409]),
        get(
            "/api/admin/check",
            "Admin",
            "Integrity, migrations, sizes, free disk, time",
        )
        .ok(obj(
            &[
                ("ok", s(BOOL)),
                ("integrity", strings()),
                ("migrations", object()),
                ("database_bytes", s(INT)),
                ("wal_bytes", s(INT)),
                ("time", s(STR)),
            ],
            &["ok", "integrity", "migrations"],
        )),
        // The document itself (§26)
        get("/openapi.json", "Meta", "This OpenAPI 3.1 document").ok(object()),
    ]);
    ops
}

/// Schemas of the main objects, shared by the operations.
fn schemas() -> Value {
    json!({
        "Error": obj(&[("error", json!({"type": "string", "minLength": 1})), ("code", s(INT))],
                     &["error", "code"]),
        "StateSummary": obj(
            &[("key", s(STR)), ("version", s(INT)), ("content_type", s(STR)),
              ("updated_at", s(STR))],
            &["key", "version"]),
        "Event": obj(
            &[("id", s(INT)), ("topic", s(STR)), ("data", any()), ("source", s(STR)),
              ("created_at", s(STR))],
            &["id", "topic", "created_at"]),
        "Instance": obj(
            &[("id", s(STR)), ("name", s(STR)), ("status", s(STR)),
              ("capabilities", strings()), ("parent_id", nullable(STR)), ("labels", object()),
              ("build", nullable("object")), ("endpoints", object()),
              ("health", nullable("object")), ("progress", nullable("object"))],
            &["id", "name", "status"]),
        "Webhook": obj(
            &[("id", s(STR)), ("url", s(STR)), ("patterns", strings()), ("active", s(BOOL)),
              ("fail_count", s(INT))],
            &["id", "url", "patterns", "active"]),
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = op.render();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "koor",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Coordination server for AI coding agents. Every error is \
                `{\"error\": text, \"code\": status}`; see docs/api.md for the contract.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
            "responses": {
                "Error": {
                    "description": "Error",
                    "content": {"application/json": {"schema": r("Error")}},
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_unique_and_names_its_path_parameters() {
        let ops = operations();
        let mut seen = std::collections::HashSet::new();
        for op in &ops {
            assert!(
                seen.insert((op.method, op.path)),
                "{} {} twice",
                op.method,
                op.path
            );
        }
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let count: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(count, ops.len());
        assert_eq!(
            path_params("/api/rules/{project}/{rule_id}"),
            ["project", "rule_id"]
        );
    }
}
