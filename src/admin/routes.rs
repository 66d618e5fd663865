//! REST adapter of the operations (API §26): `GET /api/admin/snapshot` streams a copy of
//! the database, `GET /api/admin/check` reports on its health. Both are admin scope.

use std::io::Read;

use actix::Addr;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use bytes::Bytes;
use serde_json::json;

use super::actor::Maintenance;
use super::messages::*;
use crate::error::ApiResult;
use crate::http::method_not_allowed;

/// The size of each chunk read from a snapshot file.
const CHUNK: usize = 256 * 1024;

/// Registers the admin routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/admin/snapshot")
            .route(web::get().to(snapshot))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/admin/check")
            .route(web::get().to(check))
            .default_service(web::to(method_not_allowed("GET"))),
    );
}

/// `GET /api/admin/snapshot`: the whole database as one SQLite file
/// (`application/vnd.sqlite3`, with its length), copied while the server keeps serving.
async fn snapshot(admin: web::Data<Addr<Maintenance>>) -> ApiResult<HttpResponse> {
    let snapshot = admin.send(TakeSnapshot).await??;
    let len = snapshot.len;
    let name = format!(
        "koor-snapshot-{}.db",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    // Each chunk is read on the blocking pool; the snapshot (and with it the guard that
    // removes its file) lives in the stream's state until the last chunk or a disconnect.
    let stream = futures_util::stream::try_unfold(Some(snapshot), |state| async move {
        let Some(mut snapshot) = state else {
            return Ok(None);
        };
        let (snapshot, chunk) = web::block(move || {
            let mut buf = vec![0; CHUNK];
            let n = snapshot.file.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((snapshot, buf))
        })
        .await
        .map_err(std::io::Error::other)??;
        if chunk.is_empty() {
            return Ok::<_, std::io::Error>(None);
        }
        Ok(Some((Bytes::from(chunk), Some(snapshot))))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/vnd.sqlite3")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .no_chunking(len)
        .streaming(stream))
}

/// `GET /api/admin/check`: `PRAGMA integrity_check`, the migrations, the database and
/// WAL sizes, the data directory's free space, and the server's clock (`time`).
async fn check(admin: web::Data<Addr<Maintenance>>) -> ApiResult<HttpResponse> {
    let report = admin.send(CheckStorage).await??;
    let ok = report.integrity_ok() && report.migrations.pending.is_empty();
    Ok(HttpResponse::Ok().json(json!({
        "ok": ok,
        "integrity": report.integrity,
        "migrations": report.migrations,
        "database_bytes": report.database_bytes,
        "wal_bytes": report.wal_bytes,
        "free_bytes": report.free_bytes,
        "time": crate::time::format_micros(crate::time::now_micros()),
    })))
}
