//! MCP control plane (API §18) at `/mcp` on the API port: Streamable HTTP through rmcp,
//! mounted in actix-web.
//!
//! Small on purpose: six tools for discovery and proposals, whose list costs a few
//! hundred tokens in every agent's context; data goes through REST and the CLI
//! (`get_endpoints` says where). Four read-only resources (the roster, one instance, the
//! topology, recent events) cost nothing until an agent reads one, and each is bounded. Each tool sends the same domain messages the REST
//! routes send, and a mutation is audited the same way. Requests reach `/mcp` through
//! the same middleware as REST (timing, bearer auth, caller identification, call
//! counting); the agent a request names is handed to the tools for attribution.
//! Stateless: every POST is served on its own, so any or no `Mcp-Session-Id` works and
//! no session state is held.

mod resources;
mod tools;

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp_actix_web::transport::StreamableHttpService;

pub use crate::http::hosts::{allowed_hosts, api_base};
pub use resources::{MAX_RESOURCE_BYTES, RECENT_EVENTS};
pub use tools::Koor;

use crate::http::Caller;

/// The `/mcp` service, built once and shared by every HTTP worker.
pub type McpService = StreamableHttpService<Koor, LocalSessionManager>;

/// Builds the transport around `koor` (cloned for each request).
pub fn service(koor: Koor, allowed_hosts: Vec<String>, max_body_bytes: usize) -> McpService {
    StreamableHttpService::builder()
        .service_factory(Arc::new(move || Ok(koor.clone())))
        .session_manager(Arc::new(LocalSessionManager::default()))
        .stateful_mode(false)
        .json_response(true)
        .max_request_body_bytes(max_body_bytes)
        .allowed_hosts(allowed_hosts)
        .on_request_fn(|req, extensions| {
            use actix_web::HttpMessage;
            if let Some(caller) = req.extensions().get::<Caller>() {
                extensions.insert(caller.clone());
            }
        })
        .build()
}
