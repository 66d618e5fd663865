//! REST adapter of the metrics domain (API §16).

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::actor::AgentMetrics;
use super::calls::TokenTax;
use super::messages::{AgentDetail, AgentSummary};
use crate::error::ApiResult;
use crate::events::{EventBus, GetBusStats};
use crate::http::{Query, ServerInfo, method_not_allowed};
use crate::instances::{CountInstances, InstanceRegistry};
use crate::state::{CountKeys, StateStore};
use crate::time::format_uptime;

/// Registers the metrics routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/metrics")
            .route(web::get().to(summary))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/metrics/reset")
            .route(web::post().to(reset))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/metrics/agents")
            .route(web::get().to(agents))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/metrics/agents/{id}")
            .route(web::get().to(agent))
            .default_service(web::to(method_not_allowed("GET"))),
    );
}

/// Parameters of the agent metrics reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AgentsQuery {
    instance_id: Option<String>,
    period: Option<String>,
}

async fn summary(
    info: web::Data<ServerInfo>,
    tax: web::Data<TokenTax>,
    state: web::Data<Addr<StateStore>>,
    registry: web::Data<Addr<InstanceRegistry>>,
    events: web::Data<Addr<EventBus>>,
) -> ApiResult<HttpResponse> {
    let keys = state.send(CountKeys).await?;
    let instances = registry.send(CountInstances).await?;
    let bus = events.send(GetBusStats).await?;
    Ok(HttpResponse::Ok().json(json!({
        "uptime": format_uptime(info.started.elapsed().as_secs()),
        "state_keys": keys,
        "instances": instances.total(),
        "last_event_id": bus.last_event_id,
        "api_bind": info.api_bind,
        "dashboard_bind": info.dashboard_bind,
        "token_tax": tax.snapshot(),
    })))
}

async fn reset(tax: web::Data<TokenTax>) -> HttpResponse {
    tax.reset();
    HttpResponse::Ok().json(json!({"reset": true}))
}

async fn agents(
    metrics: web::Data<Addr<AgentMetrics>>,
    q: Query<AgentsQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    match q.instance_id.filter(|id| !id.is_empty()) {
        Some(instance_id) => {
            let rows = metrics
                .send(AgentDetail {
                    instance_id,
                    period: q.period,
                })
                .await??;
            Ok(HttpResponse::Ok().json(rows))
        }
        None => {
            let totals = metrics.send(AgentSummary { period: q.period }).await??;
            Ok(HttpResponse::Ok().json(totals))
        }
    }
}

async fn agent(
    metrics: web::Data<Addr<AgentMetrics>>,
    id: web::Path<String>,
    q: Query<AgentsQuery>,
) -> ApiResult<HttpResponse> {
    let rows = metrics
        .send(AgentDetail {
            instance_id: id.into_inner(),
            period: q.into_inner().period,
        })
        .await??;
    Ok(HttpResponse::Ok().json(rows))
}
