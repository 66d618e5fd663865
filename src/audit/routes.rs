//! REST adapter of the audit log (API §15, plus `GET /api/audit/verify`).

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::actor::AuditLog;
use super::messages::*;
use super::model::{AuditFilter, AuditOut};
use crate::error::ApiResult;
use crate::http::{Query, instant_param, method_not_allowed, parse_limit};

/// Registers the audit routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/audit")
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/audit/summary")
            .route(web::get().to(summary))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/audit/verify")
            .route(web::get().to(verify))
            .default_service(web::to(method_not_allowed("GET"))),
    );
}

/// Query parameters of `GET /api/audit` and `/api/audit/summary`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
}

async fn list(
    log: web::Data<Addr<AuditLog>>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        from: instant_param("from", q.from.as_deref())?,
        to: instant_param("to", q.to.as_deref())?,
    };
    let limit = parse_limit(q.limit.as_deref(), 50);
    let entries = log.send(QueryAudit { filter, limit }).await??;
    let out: Vec<AuditOut> = entries.into_iter().map(AuditOut::from).collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn summary(
    log: web::Data<Addr<AuditLog>>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    let msg = SummarizeAudit {
        from: instant_param("from", q.from.as_deref())?,
        to: instant_param("to", q.to.as_deref())?,
    };
    Ok(HttpResponse::Ok().json(log.send(msg).await??))
}

async fn verify(log: web::Data<Addr<AuditLog>>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(log.send(VerifyAudit).await??))
}
