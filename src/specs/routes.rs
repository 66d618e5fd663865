//! REST adapter of the specs domain (API §5 plus conditional writes and `?schema=`).

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::schema::SchemaCache;
use super::{SpecRegistry, spec_key, split_key};
use crate::error::{ApiError, ApiResult};
use crate::http::Caller;
use crate::http::{Query, RawBody, method_not_allowed};
use crate::state::{
    DeleteKey, GetCurrent, ListPrefix, PutValue, current_or_not_modified, fencing_token,
    preconditions,
};
use crate::time::format_micros;

/// Registers the spec routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/specs/{project}")
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/specs/{project}/{name}")
            .route(web::get().to(get))
            .route(web::put().to(put))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed("GET, PUT, DELETE"))),
    );
}

type Specs = web::Data<Addr<SpecRegistry>>;

/// Write parameters (unknown ones are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WriteQuery {
    if_version: Option<String>,
    schema: Option<String>,
}

/// A project or spec name: one non-empty path segment.
fn segment(kind: &str, raw: &str) -> ApiResult<()> {
    if raw.is_empty() || raw.contains('/') {
        return Err(ApiError::bad_request(format!(
            "{kind} must be a non-empty name without '/'"
        )));
    }
    Ok(crate::http::bounds::name(kind, raw)?)
}

async fn list(specs: Specs, project: web::Path<String>) -> ApiResult<HttpResponse> {
    let project = project.into_inner();
    segment("project", &project)?;
    let entries = specs
        .send(ListPrefix {
            prefix: format!("{project}/"),
        })
        .await?;
    let items: Vec<_> = entries
        .iter()
        .map(|e| {
            json!({
                "name": split_key(&e.key).1,
                "version": e.version,
                "updated_at": format_micros(e.updated_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"project": project, "specs": items})))
}

async fn get(
    req: HttpRequest,
    specs: Specs,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (project, name) = path.into_inner();
    let key = spec_key(&project, &name);
    let entry = specs
        .send(GetCurrent { key })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("spec not found: {project}/{name}")))?;
    Ok(current_or_not_modified(&req, &entry))
}

async fn put(
    req: HttpRequest,
    specs: Specs,
    cache: web::Data<SchemaCache>,
    path: web::Path<(String, String)>,
    q: Query<WriteQuery>,
    caller: Caller,
    RawBody(value): RawBody,
) -> ApiResult<HttpResponse> {
    let (project, name) = path.into_inner();
    segment("project", &project)?;
    segment("spec name", &name)?;
    let q = q.into_inner();
    if value.is_empty() {
        return Err(ApiError::bad_request("spec body must not be empty"));
    }
    let preconditions = preconditions(req.headers(), q.if_version.as_deref())?;
    let fence = fencing_token(req.headers())?;
    if let Some(schema) = q.schema.filter(|s| !s.is_empty()) {
        segment("schema", &schema)?;
        let schema_key = spec_key(&project, &schema);
        let entry = specs
            .send(GetCurrent {
                key: schema_key.clone(),
            })
            .await?
            .ok_or(super::SchemaError::SchemaNotFound(schema_key))?;
        cache.check(&entry, &value)?;
    }
    let hash = hex::encode(Sha256::digest(&value));
    let entry = specs
        .send(PutValue {
            key: spec_key(&project, &name),
            value,
            content_type: "application/json".into(),
            hash,
            preconditions,
            fence,
            caller,
            audit_as: None,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({
        "project": project,
        "name": name,
        "version": entry.version,
        "hash": entry.hash,
        "updated_at": format_micros(entry.updated_at),
    })))
}

async fn delete(
    req: HttpRequest,
    specs: Specs,
    path: web::Path<(String, String)>,
    q: Query<WriteQuery>,
    caller: Caller,
) -> ApiResult<HttpResponse> {
    let (project, name) = path.into_inner();
    let preconditions = preconditions(req.headers(), q.into_inner().if_version.as_deref())?;
    let fence = fencing_token(req.headers())?;
    let key = spec_key(&project, &name);
    specs
        .send(DeleteKey {
            key: key.clone(),
            preconditions,
            fence,
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"deleted": key})))
}
