//! REST adapter of the liveness worker (API §8).

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::monitor::{LivenessMonitor, RunOnce};
use crate::error::ApiResult;
use crate::http::method_not_allowed;

/// Registers `POST /api/liveness/check`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/liveness/check")
            .route(web::post().to(check))
            .default_service(web::to(method_not_allowed("POST"))),
    );
}

async fn check(monitor: web::Data<Addr<LivenessMonitor>>) -> ApiResult<HttpResponse> {
    let moved = monitor.send(RunOnce).await??;
    let items: Vec<_> = moved.iter().map(|i| i.out()).collect();
    Ok(HttpResponse::Ok().json(json!({
        "checked": true,
        "count": items.len(),
        "newly_stale": items,
    })))
}
