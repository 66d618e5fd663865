//! `GET /api/cluster`: this member's role, the leader and the members that have
//! heartbeated within the failover time plus two heartbeats (API §27; an extension,
//! docs/api.md).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::election::Election;
use crate::error::{ApiError, ApiResult};
use crate::http::ServerInfo;

/// Registers `/api/cluster`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/cluster")
            .route(web::get().to(cluster))
            .default_service(web::to(crate::http::method_not_allowed("GET"))),
    );
}

async fn cluster(
    info: web::Data<ServerInfo>,
    election: Option<web::Data<Election>>,
) -> ApiResult<HttpResponse> {
    let seen = info.cluster.get();
    let members = match election {
        Some(e) => e.members().await.map_err(ApiError::internal)?,
        None => Vec::new(),
    };
    Ok(HttpResponse::Ok().json(json!({
        "role": seen.role,
        "leader": seen.leader,
        "epoch": seen.epoch,
        "members": members,
    })))
}
