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
    /// This member's role and the leader it knows (API §27): a single server is its own
    /// leader.
    pub cluster: crate::cluster::View,
}

/// The URL this server tells others to reach it at: `--advertise-url`, else `http://` and
/// the bind address (with `port`, the bound port, in place of a port 0 when not 0).
pub fn advertised_url(config: &crate::config::Config, port: u16) -> String {
    if let Some(url) = &config.advertise_url {
        return url.trim_end_matches('/').to_string();
    }
    let bind = match config.bind.rsplit_once(':') {
        Some((host, "0")) if port != 0 => format!("{host}:{port}"),
        _ => config.bind.clone(),
    };
    format!("http://{bind}")
}

/// `200 {"status": "ok", "uptime": "3h24m10s", "role": "single"|"leader"|"follower",
/// "leader": URL}`.
pub async fn health(info: web::Data<ServerInfo>) -> HttpResponse {
    let uptime = format_uptime(info.started.elapsed().as_secs());
    let seen = info.cluster.get();
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "uptime": uptime,
        "role": seen.role,
        "leader": seen.leader,
    }))
}
