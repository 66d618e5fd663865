//! REST adapter of the state domain (API §4 plus conditional writes).

use std::sync::Arc;

use actix::Addr;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::actor::StateStore;
use super::messages::*;
use super::model::{Precondition, StateEntry, if_none_match_hits};
use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, RawBody, method_not_allowed, parse_limit};
use crate::time::format_micros;

/// Registers the state routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/state")
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/state/{key:.+}")
            .route(web::get().to(get))
            .route(web::put().to(put))
            .route(web::post().to(rollback))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed("GET, PUT, POST, DELETE"))),
    );
}

/// Query parameters of `/api/state/{key}` (all optional; unknown ones are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StateQuery {
    history: Option<String>,
    limit: Option<String>,
    diff: Option<String>,
    version: Option<String>,
    rollback: Option<String>,
    if_version: Option<String>,
}

fn query(req: &HttpRequest) -> ApiResult<StateQuery> {
    crate::http::parse_query(req)
}

fn key_of(req: &HttpRequest) -> ApiResult<String> {
    let key: String = req
        .match_info()
        .load::<(String,)>()
        .map(|(k,)| k)
        .map_err(|e| ApiError::bad_request(format!("invalid key: {e}")))?;
    crate::http::bounds::key("key", &key)?;
    Ok(key)
}

fn parse_int(name: &str, raw: &str) -> ApiResult<i64> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("{name} must be an integer, got {raw:?}")))
}

fn summary(e: &StateEntry) -> serde_json::Value {
    json!({
        "key": e.key,
        "version": e.version,
        "content_type": e.content_type,
        "updated_at": format_micros(e.updated_at),
    })
}

async fn list(store: web::Data<Addr<StateStore>>, caller: Caller) -> ApiResult<HttpResponse> {
    let entries = store.send(ListKeys).await?;
    // A key restricted to some projects sees the keys of those projects only (API §25).
    let items: Vec<_> = entries
        .iter()
        .filter(|e| caller.allows_project(e.key.split('/').next().unwrap_or("")))
        .map(|e| summary(e))
        .collect();
    Ok(HttpResponse::Ok().json(items))
}

async fn get(req: HttpRequest, store: web::Data<Addr<StateStore>>) -> ApiResult<HttpResponse> {
    let key = key_of(&req)?;
    let q = query(&req)?;

    if q.history.as_deref().is_some_and(|h| !h.is_empty()) {
        let limit = parse_limit(q.limit.as_deref(), 50);
        let versions = store
            .send(GetHistory {
                key: key.clone(),
                limit,
            })
            .await??;
        let versions: Vec<_> = versions
            .iter()
            .map(|v| {
                json!({
                    "version": v.version,
                    "hash": v.hash,
                    "content_type": v.content_type,
                    "updated_at": format_micros(v.updated_at),
                    "fencing_token": v.fencing_token,
                })
            })
            .collect();
        return Ok(HttpResponse::Ok().json(json!({"key": key, "versions": versions})));
    }

    if let Some(raw) = q.diff {
        let parts: Vec<&str> = raw.split(',').collect();
        let [a, b] = parts.as_slice() else {
            return Err(ApiError::bad_request(
                "diff must be two comma-separated versions, e.g. diff=1,3",
            ));
        };
        let (from, to) = (parse_int("diff", a)?, parse_int("diff", b)?);
        let diffs = store
            .send(DiffVersions {
                key: key.clone(),
                from,
                to,
            })
            .await??;
        return Ok(
            HttpResponse::Ok().json(json!({"key": key, "v1": from, "v2": to, "diffs": diffs}))
        );
    }

    if let Some(raw) = q.version {
        let version = parse_int("version", &raw)?;
        let stored = store.send(GetVersion { key, version }).await??;
        return Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, stored.content_type.as_str()))
            .insert_header(("X-Koor-Version", stored.version.to_string()))
            .body(stored.value));
    }

    let entry = store
        .send(GetCurrent { key: key.clone() })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("key not found: {key}")))?;
    Ok(current_or_not_modified(&req, &entry))
}

/// The current value, or `304` when `If-None-Match` names its entity tag.
pub fn current_or_not_modified(req: &HttpRequest, entry: &Arc<StateEntry>) -> HttpResponse {
    let etag = entry.etag();
    if let Some(inm) = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && if_none_match_hits(inm, &etag)
    {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header(("X-Koor-Version", entry.version.to_string()))
            .finish();
    }
    current_response(entry)
}

/// `200` with the stored bytes, content type, `ETag` and `X-Koor-Version`.
pub fn current_response(entry: &Arc<StateEntry>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, entry.content_type.as_str()))
        .insert_header((header::ETAG, entry.etag()))
        .insert_header(("X-Koor-Version", entry.version.to_string()))
        .body(entry.value.clone())
}

/// The write conditions of a request: `If-Match`, `If-None-Match: *` and `?if_version=N`.
/// The `Koor-Fencing-Token` header of a write (API §22): a positive integer, or absent.
pub fn fencing_token(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(v) = headers.get(FENCING_HEADER) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .filter(|t| *t > 0)
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("Koor-Fencing-Token must be a positive integer"))
}

/// The header carrying a lease's fencing token on a state or spec write.
pub const FENCING_HEADER: &str = "koor-fencing-token";

pub fn preconditions(
    headers: &HeaderMap,
    if_version: Option<&str>,
) -> ApiResult<Vec<Precondition>> {
    let mut out = Vec::new();
    if let Some(v) = headers.get(header::IF_MATCH) {
        let text = v
            .to_str()
            .map_err(|_| ApiError::bad_request("If-Match must be ASCII"))?;
        out.push(Precondition::parse_if_match(text).ok_or_else(|| {
            ApiError::bad_request("If-Match must be \"*\", quoted entity tags or a version number")
        })?);
    }
    if let Some(v) = headers.get(header::IF_NONE_MATCH) {
        if v.as_bytes().trim_ascii() != b"*" {
            return Err(ApiError::bad_request(
                "on writes If-None-Match only supports \"*\" (create only)",
            ));
        }
        out.push(Precondition::Absent);
    }
    if let Some(raw) = if_version {
        let v = parse_int("if_version", raw)?;
        if v < 0 {
            return Err(ApiError::bad_request("if_version must be >= 0"));
        }
        out.push(Precondition::Version(v));
    }
    Ok(out)
}

fn written(entry: &StateEntry) -> serde_json::Value {
    json!({
        "key": entry.key,
        "version": entry.version,
        "hash": entry.hash,
        "content_type": entry.content_type,
        "updated_at": format_micros(entry.updated_at),
    })
}

async fn put(
    req: HttpRequest,
    store: web::Data<Addr<StateStore>>,
    caller: Caller,
    RawBody(value): RawBody,
) -> ApiResult<HttpResponse> {
    let key = key_of(&req)?;
    let q = query(&req)?;
    if value.is_empty() {
        return Err(ApiError::bad_request("value must not be empty"));
    }
    let preconditions = preconditions(req.headers(), q.if_version.as_deref())?;
    let fence = fencing_token(req.headers())?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("application/json")
        .to_string();
    let hash = hex::encode(Sha256::digest(&value));
    let entry = store
        .send(PutValue {
            key,
            value,
            content_type,
            hash,
            preconditions,
            fence,
            caller,
            audit_as: None,
        })
        .await??;
    Ok(HttpResponse::Ok().json(written(&entry)))
}

async fn rollback(
    req: HttpRequest,
    store: web::Data<Addr<StateStore>>,
    caller: Caller,
    _body: RawBody,
) -> ApiResult<HttpResponse> {
    let key = key_of(&req)?;
    let q = query(&req)?;
    let raw = q
        .rollback
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("rollback=N (the version to restore) is required"))?;
    let version = parse_int("rollback", &raw)?;
    let preconditions = preconditions(req.headers(), q.if_version.as_deref())?;
    let fence = fencing_token(req.headers())?;
    let entry = store
        .send(RollbackKey {
            key,
            version,
            preconditions,
            fence,
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({
        "key": entry.key,
        "version": entry.version,
        "hash": entry.hash,
        "rolled_back": version,
        "updated_at": format_micros(entry.updated_at),
    })))
}

async fn delete(
    req: HttpRequest,
    store: web::Data<Addr<StateStore>>,
    caller: Caller,
) -> ApiResult<HttpResponse> {
    let key = key_of(&req)?;
    let q = query(&req)?;
    let preconditions = preconditions(req.headers(), q.if_version.as_deref())?;
    let fence = fencing_token(req.headers())?;
    store
        .send(DeleteKey {
            key: key.clone(),
            preconditions,
            fence,
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"deleted": key})))
}
