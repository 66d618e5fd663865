//! The tools: their definitions (kept short: every agent pays for them in context) and
//! what each does, through the same domain messages and audit as the REST routes.

use std::sync::Arc;

use actix::Addr;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, JsonObject, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, ResourceContents, ResourcesCapability, ServerCapabilities, ServerConfig,
    Tool, ToolsCapability,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use rmcp_actix_web::transport::on_request_extensions;
use serde_json::{Value, json};

use super::resources;
use crate::error::ApiError;
use crate::events::EventBus;
use crate::http::Caller;
use crate::instances::{
    InstanceFilter, InstanceRegistry, ListInstances, RegisterInstance, SetIntent,
};
use crate::rules::{ProposeRule, RuleBook, RuleIn};
use crate::specs::SpecRegistry;
use crate::topology::TopologyWatcher;

/// What the agent is told once, at `initialize`.
pub const INSTRUCTIONS: &str = "koor coordinates the agents working on a codebase. Use these \
tools to register, find peers, share your intent and propose rules. Move data (state, specs, \
events, usage) over REST or the koor CLI, never through MCP: get_endpoints lists the URLs.";

/// A tool whose parameters are all strings: `(name, description)` pairs (an empty
/// description is left out) and the names that are required.
fn tool(
    name: &'static str,
    description: &'static str,
    params: &[(&str, &str)],
    required: &[&str],
) -> Tool {
    let mut properties = serde_json::Map::new();
    for (p, d) in params {
        let mut schema = json!({"type": "string"});
        if !d.is_empty() {
            schema["description"] = json!(d);
        }
        properties.insert((*p).to_string(), schema);
    }
    let mut schema = JsonObject::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert("required".into(), json!(required));
    Tool::new(name, description, schema)
}

/// The definitions `tools/list` answers with.
pub fn definitions() -> Vec<Tool> {
    vec![
        tool(
            "register_instance",
            "Register this agent. Returns instance_id and token; then activate and heartbeat over REST.",
            &[
                ("name", ""),
                ("workspace", ""),
                ("intent", ""),
                ("stack", ""),
                ("capabilities", "comma-separated"),
            ],
            &["name"],
        ),
        tool(
            "discover_instances",
            "List registered agents, filtered by any given field.",
            &[
                ("name", ""),
                ("workspace", ""),
                ("stack", ""),
                ("capability", ""),
            ],
            &[],
        ),
        tool(
            "set_intent",
            "Tell the team what this agent is working on now.",
            &[("instance_id", ""), ("intent", "")],
            &["instance_id", "intent"],
        ),
        tool(
            "get_endpoints",
            "REST endpoints and CLI for all data: state, specs, events, instances, rules.",
            &[],
            &[],
        ),
        tool(
            "propose_rule",
            "Propose a validation rule for a project; a person accepts or rejects it.",
            &[
                ("project", ""),
                ("rule_id", ""),
                ("pattern", "regex"),
                ("message", ""),
                ("severity", "error|warning"),
                ("match_type", "regex|missing|custom"),
                ("stack", ""),
                ("proposed_by", ""),
                ("context", ""),
            ],
            &["project", "rule_id", "pattern", "message"],
        ),
        tool(
            "validate_contract",
            "Check a JSON payload against an endpoint of a stored contract.",
            &[
                ("project", ""),
                ("contract", "contract spec name"),
                ("endpoint", "METHOD /path"),
                ("direction", "request|response"),
                ("payload", "JSON text"),
            ],
            &["project", "contract", "endpoint", "direction", "payload"],
        ),
    ]
}

/// The MCP server: the domain actors the tools talk to.
#[derive(Clone)]
pub struct Koor {
    pub instances: Addr<InstanceRegistry>,
    pub rules: Addr<RuleBook>,
    pub specs: Addr<SpecRegistry>,
    /// `http://host:port` of the REST API.
    pub api_base: String,
    /// The graph behind `koor://topology` (absent: the resource is not listed).
    pub topology: Option<Addr<TopologyWatcher>>,
    /// The bus behind `koor://events/recent` (absent: the resource is not listed).
    pub events: Option<Addr<EventBus>>,
    tools: Arc<Vec<Tool>>,
}

impl Koor {
    pub fn new(
        instances: Addr<InstanceRegistry>,
        rules: Addr<RuleBook>,
        specs: Addr<SpecRegistry>,
        api_base: String,
    ) -> Self {
        Self {
            instances,
            rules,
            specs,
            api_base,
            topology: None,
            events: None,
            tools: Arc::new(definitions()),
        }
    }

    /// The same server with the topology and recent events as resources.
    pub fn with_views(self, topology: Addr<TopologyWatcher>, events: Addr<EventBus>) -> Self {
        Self {
            topology: Some(topology),
            events: Some(events),
            ..self
        }
    }
}

/// A tool's arguments; every value must be a string (API §18).
struct Args(JsonObject);

impl Args {
    fn opt(&self, key: &str) -> Result<Option<String>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{key} must be a string")),
        }
    }

    fn req(&self, key: &str) -> Result<String, String> {
        self.opt(key)?.ok_or_else(|| format!("{key} is required"))
    }
}

fn failed(e: ApiError) -> String {
    e.to_string()
}

impl Koor {
    async fn register_instance(&self, a: &Args, caller: &Caller) -> Result<Value, String> {
        let capabilities = a.opt("capabilities")?.map(|raw| {
            raw.split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        });
        let msg = RegisterInstance::new(
            a.req("name")?,
            a.opt("workspace")?,
            a.opt("intent")?,
            a.opt("stack")?,
            capabilities,
        )
        .map_err(|e| e.to_string())?;
        let done = self
            .instances
            .send(msg.by(caller.clone()))
            .await
            .map_err(|e| failed(e.into()))?
            .map_err(|e| failed(e.into()))?;
        let i = done.instance.out();
        Ok(json!({
            "instance_id": i.id,
            "token": done.token,
            "name": i.name,
            "workspace": i.workspace,
            "intent": i.intent,
            "stack": i.stack,
            "capabilities": i.capabilities,
            "status": i.status,
            "registered_at": i.registered_at,
            "message": format!(
                "Registered (pending). Activate with `koor activate {id}` or POST {base}/api/instances/{id}/activate, then heartbeat every few minutes (POST …/heartbeat). Send the token as X-Koor-Instance-Token so your changes are attributed to you.",
                id = i.id,
                base = self.api_base,
            ),
        }))
    }

    async fn discover_instances(&self, a: &Args) -> Result<Value, String> {
        let filter = InstanceFilter {
            name: a.opt("name")?,
            workspace: a.opt("workspace")?,
            stack: a.opt("stack")?,
            capability: a.opt("capability")?,
            status: None,
        };
        let found = self
            .instances
            .send(ListInstances { filter })
            .await
            .map_err(|e| failed(e.into()))?;
        let out: Vec<_> = found.iter().map(|i| i.out()).collect();
        Ok(json!({"count": out.len(), "instances": out}))
    }

    async fn set_intent(&self, a: &Args) -> Result<Value, String> {
        let id = a.req("instance_id")?;
        let intent = a.req("intent")?;
        let inst = self
            .instances
            .send(SetIntent { id, intent })
            .await
            .map_err(|e| failed(e.into()))?
            .map_err(|e| failed(e.into()))?;
        Ok(json!({
            "instance_id": inst.id,
            "intent": inst.intent,
            "message": "Intent updated; other agents see it in discover_instances.",
        }))
    }

    fn get_endpoints(&self) -> Value {
        let endpoints: serde_json::Map<String, Value> = ENDPOINTS
            .iter()
            .map(|(name, route)| ((*name).to_string(), json!(route)))
            .collect();
        json!({
            "api_base": self.api_base,
            "endpoints": endpoints,
            "cli": {"usage": "koor --help", "server": format!("KOOR_SERVER={}", self.api_base)},
            "message": "Use these REST endpoints (or the koor CLI) for all data; send Authorization: Bearer <server token> if the server has one, and X-Koor-Instance-Token: <your token> to be attributed.",
        })
    }

    async fn propose_rule(&self, a: &Args, caller: &Caller) -> Result<Value, String> {
        let rule = RuleIn {
            project: Some(a.req("project")?),
            rule_id: Some(a.req("rule_id")?),
            pattern: Some(a.req("pattern")?),
            message: Some(a.req("message")?),
            severity: a.opt("severity")?,
            match_type: a.opt("match_type")?,
            stack: a.opt("stack")?,
            proposed_by: a.opt("proposed_by")?,
            context: a.opt("context")?,
            ..Default::default()
        };
        let rule = self
            .rules
            .send(ProposeRule {
                rule,
                caller: caller.clone(),
            })
            .await
            .map_err(|e| failed(e.into()))?
            .map_err(|e| failed(e.into()))?;
        Ok(json!({
            "project": rule.project,
            "rule_id": rule.rule_id,
            "status": rule.status,
            "message": "Proposed; a person accepts or rejects it. It is not enforced until accepted.",
        }))
    }

    async fn validate_contract(&self, a: &Args) -> Result<Value, String> {
        let project = a.req("project")?;
        let contract = a.req("contract")?;
        let endpoint = a.req("endpoint")?;
        let direction = a.req("direction")?;
        if !matches!(direction.as_str(), "request" | "response") {
            return Err("direction must be request or response".into());
        }
        let payload: Value = serde_json::from_str(&a.req("payload")?)
            .map_err(|e| format!("payload is not valid JSON: {e}"))?;
        let violations = crate::contracts::check_payload(
            &self.specs,
            &project,
            &contract,
            &endpoint,
            &direction,
            &payload,
        )
        .await
        .map_err(failed)?;
        Ok(json!({
            "valid": violations.is_empty(),
            "endpoint": endpoint,
            "direction": direction,
            "violations": violations,
        }))
    }
}

/// The REST routes `get_endpoints` reports.
const ENDPOINTS: &[(&str, &str)] = &[
    ("state_list", "GET /api/state"),
    ("state_get", "GET /api/state/{key}"),
    ("state_set", "PUT /api/state/{key}"),
    ("state_delete", "DELETE /api/state/{key}"),
    ("state_history", "GET /api/state/{key}?history=1"),
    ("specs_list", "GET /api/specs/{project}"),
    ("specs_get", "GET /api/specs/{project}/{name}"),
    ("specs_set", "PUT /api/specs/{project}/{name}"),
    ("events_publish", "POST /api/events/publish"),
    ("events_history", "GET /api/events/history"),
    ("events_subscribe", "GET /api/events/subscribe (WebSocket)"),
    ("instances_list", "GET /api/instances"),
    ("instances_get", "GET /api/instances/{id}"),
    ("instances_register", "POST /api/instances/register"),
    ("instances_activate", "POST /api/instances/{id}/activate"),
    ("instances_heartbeat", "POST /api/instances/{id}/heartbeat"),
    ("topology", "GET /api/topology"),
    ("validate", "POST /api/validate/{project}"),
    ("rules_list", "GET /api/validate/{project}/rules"),
    ("rules_propose", "POST /api/rules/propose"),
    (
        "contracts_validate",
        "POST /api/contracts/{project}/{name}/validate",
    ),
    ("llm_usage_record", "POST /api/llm/usage"),
    ("audit", "GET /api/audit"),
    ("metrics", "GET /api/metrics"),
];

/// A tool result as compact JSON: every byte of it is a token the agent pays for.
fn compact(v: &Value) -> String {
    v.to_string()
}

impl ServerHandler for Koor {
    fn get_info(&self) -> ServerConfig {
        let mut tools = ToolsCapability::default();
        tools.list_changed = Some(false);
        let mut capabilities = ServerCapabilities::default();
        capabilities.tools = Some(tools);
        // No subscriptions: the endpoint is stateless (no server-to-client stream to send
        // `notifications/resources/updated` on); the events WebSocket is the live feed.
        let mut resources = ResourcesCapability::default();
        resources.subscribe = Some(false);
        resources.list_changed = Some(false);
        capabilities.resources = Some(resources);
        InitializeResult::new(capabilities)
            .with_server_info(Implementation::new("koor", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let listed = resources::list()
            .into_iter()
            .filter(|r| match r.uri.as_str() {
                resources::TOPOLOGY => self.topology.is_some(),
                resources::RECENT => self.events.is_some(),
                _ => true,
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(listed))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let found = resources::read(
            &uri,
            &self.instances,
            self.topology.as_ref(),
            self.events.as_ref(),
        )
        .await
        .map_err(|e| ErrorData::internal_error(e, None))?;
        let Some((text, mime)) = found else {
            return Err(ErrorData::resource_not_found(
                format!("no resource {uri}; resources/list and resources/templates/list name them"),
                None,
            ));
        };
        let contents = ResourceContents::text(text, uri).with_mime_type(mime);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = on_request_extensions(&context.extensions)
            .and_then(|e| e.get::<Caller>())
            .cloned()
            .unwrap_or_default();
        let args = Args(request.arguments.unwrap_or_default());
        let result = match request.name.as_ref() {
            "register_instance" => self.register_instance(&args, &caller).await,
            "discover_instances" => self.discover_instances(&args).await,
            "set_intent" => self.set_intent(&args).await,
            "get_endpoints" => Ok(self.get_endpoints()),
            "propose_rule" => self.propose_rule(&args, &caller).await,
            "validate_contract" => self.validate_contract(&args).await,
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool {other:?}; tools/list names the tools"),
                    None,
                ));
            }
        };
        let result = match result {
            Ok(value) => CallToolResult::success(vec![ContentBlock::text(compact(&value))]),
            Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        };
        Ok(result.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_is_a_string_and_required_ones_exist() {
        let tools = definitions();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "register_instance",
                "discover_instances",
                "set_intent",
                "get_endpoints",
                "propose_rule",
                "validate_contract",
            ]
        );
        for t in &tools {
            let props = t.input_schema["properties"].as_object().unwrap();
            for (name, schema) in props {
                assert_eq!(schema["type"], "string", "{}.{name}", t.name);
            }
            for r in t.input_schema["required"].as_array().unwrap() {
                assert!(props.contains_key(r.as_str().unwrap()), "{}: {r}", t.name);
            }
        }
    }

    #[test]
    fn arguments_must_be_strings() {
        let mut obj = JsonObject::new();
        obj.insert("name".into(), json!("a"));
        obj.insert("blank".into(), json!("  "));
        obj.insert("n".into(), json!(3));
        let a = Args(obj);
        assert_eq!(a.req("name"), Ok("a".to_string()));
        assert_eq!(a.req("blank"), Err("blank is required".to_string()));
        assert_eq!(a.req("missing"), Err("missing is required".to_string()));
        assert_eq!(a.opt("n"), Err("n must be a string".to_string()));
    }
}
