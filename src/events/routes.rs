//! REST adapter of the events domain (API §6).

use std::time::Duration;

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use serde::Deserialize;
use serde_json::Value;

use super::actor::EventBus;
use super::messages::*;
use super::model::HistoryFilter;
use super::ws::Subscription;
use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, JsonBody, instant_param, method_not_allowed, parse_limit};
use crate::topology::{Seen, Watcher, observe};

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
    )
    .service(
        web::resource("/api/events/wait")
            .route(web::get().to(wait))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/events/subscribe")
            .route(web::get().to(subscribe))
            .default_service(web::to(method_not_allowed("GET"))),
    );
}

/// Settings of WebSocket subscribers, shared as app data.
#[derive(Clone, Copy, Debug)]
pub struct SubscriberSettings {
    /// Events a subscriber may have queued before it is closed with `koor.lagged`.
    pub buffer: usize,
}

/// Longest long-poll wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Long-poll wait when `timeout` is not given.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct PublishIn {
    topic: Option<Value>,
    #[serde(default)]
    data: Value,
}

async fn publish(
    bus: web::Data<Addr<EventBus>>,
    caller: Caller,
    watcher: Watcher,
    JsonBody(body): JsonBody<PublishIn>,
) -> ApiResult<HttpResponse> {
    let topic = match body.topic {
        Some(Value::String(t)) if !t.is_empty() => t,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::bad_request("topic is required"));
        }
        Some(_) => return Err(ApiError::bad_request("topic must be a string")),
    };
    crate::http::bounds::name("topic", &topic)?;
    let event = bus
        .send(Publish {
            topic,
            data: body.data,
            source: String::new(),
        })
        .await??;
    if let Some(agent) = caller.id() {
        let (agent, topic) = (agent.to_string(), event.topic.clone());
        observe(&watcher, Seen::Published { agent, topic });
    }
    Ok(HttpResponse::Ok().json(event.out()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HistoryQuery {
    last: Option<String>,
    after: Option<String>,
    limit: Option<String>,
    timeout: Option<String>,
    pattern: Option<String>,
    topic: Option<String>,
    from: Option<String>,
    to: Option<String>,
    source: Option<String>,
}

fn parse_query(req: &HttpRequest) -> ApiResult<HistoryQuery> {
    let q: HistoryQuery = crate::http::parse_query(req)?;
    for (field, value) in [
        ("topic", &q.topic),
        ("pattern", &q.pattern),
        ("source", &q.source),
    ] {
        if let Some(v) = value {
            crate::http::bounds::name(field, v)?;
        }
    }
    Ok(q)
}

/// `after=ID`: a non-negative event id.
fn cursor(raw: Option<&str>) -> ApiResult<Option<i64>> {
    match raw {
        None | Some("") => Ok(None),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(id) if id >= 0 => Ok(Some(id)),
            _ => Err(ApiError::bad_request(format!(
                "after must be an event id (an integer >= 0), got {v:?}"
            ))),
        },
    }
}

fn json_events(events: &[super::model::Event]) -> HttpResponse {
    let out: Vec<_> = events.iter().map(|e| e.out()).collect();
    HttpResponse::Ok().json(out)
}

async fn history(req: HttpRequest, bus: web::Data<Addr<EventBus>>) -> ApiResult<HttpResponse> {
    let q = parse_query(&req)?;
    let after = cursor(q.after.as_deref())?;
    let filter = HistoryFilter {
        topic: q.topic.filter(|t| !t.is_empty()),
        from: instant_param("from", q.from.as_deref())?,
        to: instant_param("to", q.to.as_deref())?,
        source: q.source.filter(|s| !s.is_empty()),
        until_id: None,
    };
    if let Some(after) = after {
        // Resume (extension): ascending, `limit` (default 100) events after the cursor.
        let limit = parse_limit(q.limit.as_deref(), 100);
        let events = bus
            .send(HistoryAfter {
                after,
                filter,
                limit,
            })
            .await??;
        return Ok(json_events(&events));
    }
    let last = parse_limit(q.last.as_deref(), 50);
    let events = bus.send(History { filter, last }).await??;
    Ok(json_events(&events))
}

/// `GET /api/events/wait?after=ID&topic=PATTERN&timeout=S&limit=N` (extension).
async fn wait(
    req: HttpRequest,
    bus: web::Data<Addr<EventBus>>,
    caller: Caller,
    watcher: Watcher,
) -> ApiResult<HttpResponse> {
    let q = parse_query(&req)?;
    let after = cursor(q.after.as_deref())?;
    let timeout = match q.timeout.as_deref() {
        None | Some("") => DEFAULT_WAIT,
        Some(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s).min(MAX_WAIT),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "timeout must be a number of seconds, got {v:?}"
                )));
            }
        },
    };
    if let Some(agent) = caller.id() {
        let pattern = q.topic.clone().unwrap_or_default();
        let pattern = if pattern.is_empty() {
            "*".into()
        } else {
            pattern
        };
        let agent = agent.to_string();
        observe(&watcher, Seen::Subscribed { agent, pattern });
    }
    let events = bus
        .send(Wait {
            after,
            topic: q.topic.filter(|t| !t.is_empty()),
            timeout,
            limit: parse_limit(q.limit.as_deref(), 100),
        })
        .await??;
    Ok(json_events(&events))
}

/// `GET /api/events/subscribe?pattern=P[&after=ID]`: upgrades to a WebSocket.
async fn subscribe(
    req: HttpRequest,
    stream: web::Payload,
    bus: web::Data<Addr<EventBus>>,
    settings: web::Data<SubscriberSettings>,
    caller: Caller,
    watcher: Watcher,
) -> ApiResult<HttpResponse> {
    let q = parse_query(&req)?;
    let after = cursor(q.after.as_deref())?;
    let pattern = q.pattern.unwrap_or_default();
    let seen = match caller.id() {
        Some(agent) if pattern.is_empty() => Some((agent.to_string(), "*".to_string())),
        Some(agent) => Some((agent.to_string(), pattern.clone())),
        None => None,
    };
    let session = Subscription::new(bus.get_ref().clone(), pattern, after, settings.buffer);
    let upgraded = ws::start(session, &req, stream)
        .map_err(|e| ApiError::bad_request(format!("a WebSocket upgrade is required: {e}")))?;
    // Only an agent that really subscribed consumes.
    if let Some((agent, pattern)) = seen {
        observe(&watcher, Seen::Subscribed { agent, pattern });
    }
    Ok(upgraded)
}
