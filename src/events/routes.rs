//! REST adapter of the events domain (API §6).

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

use super::actor::EventBus;
use super::messages::*;
use super::model::HistoryFilter;
use crate::error::{ApiError, ApiResult};
use crate::http::{JsonBody, method_not_allowed, parse_limit};
use crate::time::parse_instant;

/// Registers the event routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/events/publish")
            .route(web::post().to(publish))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/events/history")
            .route(web::get().to(history))
            .default_service(web::to(method_not_allowed("GET"))),
    );
}

#[derive(Deserialize)]
struct PublishIn {
    topic: Option<Value>,
    #[serde(default)]
    data: Value,
}

async fn publish(
    bus: web::Data<Addr<EventBus>>,
    JsonBody(body): JsonBody<PublishIn>,
) -> ApiResult<HttpResponse> {
    let topic = match body.topic {
        Some(Value::String(t)) if !t.is_empty() => t,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::bad_request("topic is required"));
        }
        Some(_) => return Err(ApiError::bad_request("topic must be a string")),
    };
    let event = bus
        .send(Publish {
            topic,
            data: body.data,
            source: String::new(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(event.out()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HistoryQuery {
    last: Option<String>,
    topic: Option<String>,
    from: Option<String>,
    to: Option<String>,
    source: Option<String>,
}

fn instant(name: &str, raw: Option<&str>) -> ApiResult<Option<i64>> {
    match raw {
        None | Some("") => Ok(None),
        Some(v) => parse_instant(v)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{name} is not an ISO 8601 time: {v:?}"))),
    }
}

async fn history(req: HttpRequest, bus: web::Data<Addr<EventBus>>) -> ApiResult<HttpResponse> {
    let q: HistoryQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    let filter = HistoryFilter {
        topic: q.topic.filter(|t| !t.is_empty()),
        from: instant("from", q.from.as_deref())?,
        to: instant("to", q.to.as_deref())?,
        source: q.source.filter(|s| !s.is_empty()),
    };
    let last = parse_limit(q.last.as_deref(), 50);
    let events = bus.send(History { filter, last }).await??;
    let out: Vec<_> = events.iter().map(|e| e.out()).collect();
    Ok(HttpResponse::Ok().json(out))
}
