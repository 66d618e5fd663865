//! REST adapter of the instances domain (API §7).

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::actor::InstanceRegistry;
use super::messages::*;
use super::model::{Instance, InstanceFilter, Status};
use super::profile::ProfileUpdate;

use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, JsonBody, Query, RawBody, method_not_allowed};

/// Registers the instance routes (`/stale` before `/{id}`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/instances/register")
            .route(web::post().to(register))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/instances")
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/instances/stale")
            .route(web::get().to(stale))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/instances/{id}")
            .route(web::get().to(get))
            .route(web::delete().to(deregister))
            .default_service(web::to(method_not_allowed("GET, DELETE"))),
    )
    .service(
        web::resource("/api/instances/{id}/heartbeat")
            .route(web::post().to(heartbeat))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/instances/{id}/activate")
            .route(web::post().to(activate))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/instances/{id}/capabilities")
            .route(web::post().to(capabilities))
            .default_service(web::to(method_not_allowed("POST"))),
    );
}

type Registry = web::Data<Addr<InstanceRegistry>>;

/// Body of `POST /api/instances/register`.
#[derive(Debug, Deserialize)]
struct RegisterIn {
    name: Option<String>,
    workspace: Option<String>,
    intent: Option<String>,
    stack: Option<String>,
    capabilities: Option<Vec<String>>,
}

/// Filters of `GET /api/instances` (unknown parameters are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    name: Option<String>,
    workspace: Option<String>,
    stack: Option<String>,
    capability: Option<String>,
}

/// Body of `POST /api/instances/{id}/capabilities`; a missing or null list clears it.
#[derive(Debug, Deserialize)]
struct CapabilitiesIn {
    capabilities: Option<Vec<String>>,
}

fn listing(items: &[std::sync::Arc<Instance>]) -> HttpResponse {
    let out: Vec<_> = items.iter().map(|i| i.out()).collect();
    HttpResponse::Ok().json(out)
}

async fn register(
    registry: Registry,
    caller: Caller,
    JsonBody(raw): JsonBody<Map<String, Value>>,
) -> ApiResult<HttpResponse> {
    let profile = ProfileUpdate::parse(&raw, false);
    let body: RegisterIn = serde_json::from_value(Value::Object(raw))
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let msg = RegisterInstance::new(
        body.name.unwrap_or_default(),
        body.workspace,
        body.intent,
        body.stack,
        body.capabilities,
    )?
    .with_profile(profile?);
    let done = registry.send(msg.by(caller)).await??;
    let mut out = done.instance.out();
    out.token = Some(&done.token);
    Ok(HttpResponse::Ok().json(out))
}

async fn list(registry: Registry, q: Query<ListQuery>) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let filter = InstanceFilter {
        name: q.name,
        workspace: q.workspace,
        stack: q.stack,
        capability: q.capability,
        status: None,
    };
    Ok(listing(&registry.send(ListInstances { filter }).await?))
}

async fn stale(registry: Registry) -> ApiResult<HttpResponse> {
    let filter = InstanceFilter {
        status: Some(Status::Stale),
        ..Default::default()
    };
    Ok(listing(&registry.send(ListInstances { filter }).await?))
}

async fn get(registry: Registry, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let inst = registry
        .send(GetInstance {
            id: id.into_inner(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(inst.out()))
}

async fn deregister(
    registry: Registry,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let gone = registry
        .send(Deregister {
            id: id.into_inner(),
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"deleted": gone.id})))
}

/// A heartbeat's body: none (or blank) changes nothing; otherwise a JSON object whose
/// profile fields are validated (unknown fields are ignored).
fn heartbeat_update(body: &[u8]) -> ApiResult<ProfileUpdate> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ProfileUpdate::default());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Ok(ProfileUpdate::parse(&obj, true)?),
        Ok(_) => Err(ApiError::bad_request(
            "a heartbeat body must be a JSON object (or empty)",
        )),
        Err(e) => Err(ApiError::bad_request(format!("invalid JSON body: {e}"))),
    }
}

async fn heartbeat(
    registry: Registry,
    id: web::Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<HttpResponse> {
    let update = heartbeat_update(&body)?;
    let inst = registry
        .send(Heartbeat {
            id: id.into_inner(),
            update,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"id": inst.id, "status": "ok"})))
}

async fn activate(
    registry: Registry,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let inst = registry
        .send(Activate {
            id: id.into_inner(),
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"id": inst.id, "status": inst.status.as_str()})))
}

async fn capabilities(
    registry: Registry,
    caller: Caller,
    id: web::Path<String>,
    JsonBody(body): JsonBody<CapabilitiesIn>,
) -> ApiResult<HttpResponse> {
    if let Some(caps) = &body.capabilities {
        crate::http::bounds::names("capabilities", caps)?;
    }
    let inst = registry
        .send(SetCapabilities {
            id: id.into_inner(),
            capabilities: body.capabilities.unwrap_or_default(),
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"id": inst.id, "capabilities": inst.capabilities})))
}
