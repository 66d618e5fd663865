//! REST adapter of webhooks (API §13 plus the delivery log, retry and enable).

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::actor::WebhookDispatcher;
use super::messages::*;
use super::model::WebhookIn;
use crate::error::ApiResult;
use crate::http::{Caller, JsonBody, Query, method_not_allowed, parse_limit};

/// Registers the webhook routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/webhooks")
            .route(web::post().to(create))
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/api/webhooks/{id}")
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed("DELETE"))),
    )
    .service(
        web::resource("/api/webhooks/{id}/test")
            .route(web::post().to(test))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/webhooks/{id}/enable")
            .route(web::post().to(enable))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/webhooks/{id}/deliveries")
            .route(web::get().to(deliveries))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/webhooks/{id}/deliveries/{delivery_id}/retry")
            .route(web::post().to(retry))
            .default_service(web::to(method_not_allowed("POST"))),
    );
}

type Dispatcher = web::Data<Addr<WebhookDispatcher>>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LimitQuery {
    limit: Option<String>,
}

async fn create(
    hooks: Dispatcher,
    caller: Caller,
    JsonBody(input): JsonBody<WebhookIn>,
) -> ApiResult<HttpResponse> {
    use crate::http::bounds;
    if let Some(id) = &input.id {
        bounds::name("id", id)?;
    }
    if let Some(url) = &input.url {
        bounds::bounded("url", url, bounds::MAX_URL_BYTES)?;
    }
    if let Some(patterns) = &input.patterns {
        bounds::names("patterns", patterns)?;
    }
    if let Some(secret) = &input.secret {
        bounds::text("secret", secret, bounds::MAX_TEXT_BYTES)?;
    }
    let hook = hooks.send(CreateWebhook { input, caller }).await??;
    Ok(HttpResponse::Ok().json(hook.out()))
}

async fn list(hooks: Dispatcher) -> ApiResult<HttpResponse> {
    let all = hooks.send(ListWebhooks).await?;
    let out: Vec<_> = all.iter().map(|h| h.out()).collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn delete(
    hooks: Dispatcher,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    hooks
        .send(DeleteWebhook {
            id: id.clone(),
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"deleted": id})))
}

async fn test(hooks: Dispatcher, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    hooks.send(TestWebhook { id: id.clone() }).await??;
    Ok(HttpResponse::Ok().json(json!({"tested": id, "status": "ok"})))
}

async fn enable(
    hooks: Dispatcher,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let hook = hooks
        .send(EnableWebhook {
            id: id.into_inner(),
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(hook.out()))
}

async fn deliveries(
    hooks: Dispatcher,
    id: web::Path<String>,
    q: Query<LimitQuery>,
) -> ApiResult<HttpResponse> {
    let list = hooks
        .send(ListDeliveries {
            id: id.into_inner(),
            limit: parse_limit(q.into_inner().limit.as_deref(), 50),
        })
        .await??;
    let out: Vec<_> = list.iter().map(|d| d.out()).collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn retry(
    hooks: Dispatcher,
    caller: Caller,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    let (id, delivery_id) = path.into_inner();
    let d = hooks
        .send(RetryDelivery {
            id,
            delivery_id,
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(d.out()))
}
