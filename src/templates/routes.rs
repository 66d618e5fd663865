//! REST adapter of templates (API §14).

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::actor::TemplateLibrary;
use super::messages::*;
use super::model::TemplateIn;
use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, JsonBody, Query, method_not_allowed};

/// Registers the template routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/templates")
            .route(web::post().to(create))
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/api/templates/{id}")
            .route(web::get().to(get))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed("GET, DELETE"))),
    )
    .service(
        web::resource("/api/templates/{id}/apply")
            .route(web::post().to(apply))
            .default_service(web::to(method_not_allowed("POST"))),
    );
}

type Library = web::Data<Addr<TemplateLibrary>>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    kind: Option<String>,
    tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApplyIn {
    project: Option<String>,
}

async fn create(
    lib: Library,
    caller: Caller,
    JsonBody(body): JsonBody<TemplateIn>,
) -> ApiResult<HttpResponse> {
    use crate::http::bounds;
    for (field, value) in [("id", &body.id), ("name", &body.name), ("kind", &body.kind)] {
        if let Some(v) = value {
            bounds::name(field, v)?;
        }
    }
    if let Some(description) = &body.description {
        bounds::text("description", description, bounds::MAX_TEXT_BYTES)?;
    }
    if let Some(tags) = &body.tags {
        bounds::names("tags", tags)?;
    }
    let t = lib
        .send(CreateTemplate {
            template: body,
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(t.out(true)))
}

async fn list(lib: Library, q: Query<ListQuery>) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let items = lib
        .send(ListTemplates {
            kind: q.kind.filter(|k| !k.is_empty()),
            tag: q.tag.filter(|t| !t.is_empty()),
        })
        .await?;
    let out: Vec<_> = items.iter().map(|t| t.out(false)).collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn get(lib: Library, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let t = lib
        .send(GetTemplate {
            id: id.into_inner(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(t.out(true)))
}

async fn delete(lib: Library, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    lib.send(DeleteTemplate {
        id: id.clone(),
        caller,
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({"deleted": id})))
}

async fn apply(
    lib: Library,
    caller: Caller,
    id: web::Path<String>,
    JsonBody(body): JsonBody<ApplyIn>,
) -> ApiResult<HttpResponse> {
    let project = body
        .project
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("project is required"))?;
    if project.contains('/') {
        return Err(ApiError::bad_request("project must not contain '/'"));
    }
    crate::http::bounds::name("project", &project)?;
    let id = id.into_inner();
    let kind = lib
        .send(ApplyTemplate {
            id: id.clone(),
            project: project.clone(),
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"applied": id, "project": project, "kind": kind})))
}
