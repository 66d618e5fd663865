//! REST adapter of compliance (API §12).

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::monitor::{ComplianceMonitor, RunHistory, RunOnce};
use crate::error::ApiResult;
use crate::http::{Query, method_not_allowed, parse_limit};

/// Registers the compliance routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/compliance/history")
            .route(web::get().to(history))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/compliance/run")
            .route(web::post().to(run))
            .default_service(web::to(method_not_allowed("POST"))),
    );
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HistoryQuery {
    instance_id: Option<String>,
    limit: Option<String>,
}

async fn history(
    monitor: web::Data<Addr<ComplianceMonitor>>,
    q: Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let runs = monitor
        .send(RunHistory {
            instance_id: q.instance_id.filter(|i| !i.is_empty()),
            limit: parse_limit(q.limit.as_deref(), 50),
        })
        .await??;
    let out: Vec<_> = runs.iter().map(|r| r.out()).collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn run(monitor: web::Data<Addr<ComplianceMonitor>>) -> ApiResult<HttpResponse> {
    let runs = monitor.send(RunOnce).await??;
    let out: Vec<_> = runs.iter().map(|r| r.out()).collect();
    Ok(HttpResponse::Ok().json(json!({"checked": true, "count": out.len(), "runs": out})))
}
