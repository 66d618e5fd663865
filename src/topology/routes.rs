//! REST adapter of the topology: `GET /api/topology[?format=json|dot]`.

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::actor::TopologyWatcher;
use super::graph::to_dot;
use super::messages::GetTopology;
use crate::error::{ApiError, ApiResult};
use crate::http::{Query, method_not_allowed};

/// The media type of Graphviz DOT text.
pub const DOT_CONTENT_TYPE: &str = "text/vnd.graphviz; charset=utf-8";

/// Registers the topology route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/topology")
            .route(web::get().to(topology))
            .default_service(web::to(method_not_allowed("GET"))),
    );
}

/// Query of `GET /api/topology` (unknown parameters are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TopologyQuery {
    format: Option<String>,
}

async fn topology(
    watcher: web::Data<Addr<TopologyWatcher>>,
    q: Query<TopologyQuery>,
) -> ApiResult<HttpResponse> {
    let dot = match q.into_inner().format.as_deref() {
        None | Some("") | Some("json") => false,
        Some("dot") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be json or dot, got {other:?}"
            )));
        }
    };
    let graph = watcher.send(GetTopology).await??;
    if dot {
        return Ok(HttpResponse::Ok()
            .content_type(DOT_CONTENT_TYPE)
            .body(to_dot(&graph)));
    }
    Ok(HttpResponse::Ok().json(graph))
}
