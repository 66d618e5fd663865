//! `GET /health`: always open, even when auth is on.

use std::time::Instant;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::time::format_uptime;

/// Facts about the running server that handlers report.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// When the server started.
    pub started: Instant,
    /// The configured API bind string.
    pub api_bind: String,
    /// The configured dashboard bind string ("" when disabled).
    pub dashboard_bind: String,
}

/// `200 {"status": "ok", "uptime": "3h24m10s"}`.
pub async fn health(info: web::Data<ServerInfo>) -> HttpResponse {
    let uptime = format_uptime(info.started.elapsed().as_secs());
    HttpResponse::Ok().json(json!({"status": "ok", "uptime": uptime}))
}
