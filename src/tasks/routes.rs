//! REST adapter of the tasks domain (API §23). Every field is checked here, in the order
//! the contract asks for: the body and its fields (400), then the holder (404), then the
//! task queue, which answers 404 for an unknown task and 409 for a state conflict.

use std::time::Duration;

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::actor::TaskQueue;
use super::messages::*;
use super::model::{
    DEFAULT_GROUP_WAIT, DEFAULT_LEASE_SECONDS, DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, DELAY_SECONDS,
    GROUP_WAIT_SECONDS, LEASE_SECONDS, MAX_ATTEMPTS, MAX_ERROR_LEN, MAX_KEY_LEN, MAX_NAME_LEN,
    MAX_REQUIRES, Status, TaskError, TaskFilter, WAIT_SECONDS,
};
use crate::error::ApiResult;
use crate::http::{
    Caller, JsonBody, forbidden, method_not_allowed, parse_limit, parse_query, strict_identity,
};
use crate::instances::{GetInstance, InstanceRegistry};

/// Registers the task routes (the fixed paths before `/{id}`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/tasks")
            .route(web::post().to(create))
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/api/tasks/claim")
            .route(web::post().to(claim))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/tasks/stats")
            .route(web::get().to(stats))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/tasks/groups/{group}")
            .route(web::get().to(group))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/tasks/groups/{group}/wait")
            .route(web::get().to(group_wait))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/tasks/{id}")
            .route(web::get().to(get))
            .default_service(web::to(method_not_allowed("GET"))),
    );
    for action in ["renew", "complete", "fail", "release", "cancel", "retry"] {
        let resource = web::resource(format!("/api/tasks/{{id}}/{action}"));
        let resource = match action {
            "renew" => resource.route(web::post().to(renew)),
            "complete" => resource.route(web::post().to(complete)),
            "fail" => resource.route(web::post().to(fail)),
            "release" => resource.route(web::post().to(release)),
            "cancel" => resource.route(web::post().to(cancel)),
            _ => resource.route(web::post().to(retry)),
        };
        cfg.service(resource.default_service(web::to(method_not_allowed("POST"))));
    }
}

type Queue = web::Data<Addr<TaskQueue>>;
type Registry = web::Data<Addr<InstanceRegistry>>;

/// Deserializes a field that is present, even as `null`, into `Some` (a missing field is
/// `None` through `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn invalid(message: String) -> TaskError {
    TaskError::Invalid(message)
}

/// An optional string field (`null` = absent), at most `max` bytes.
fn string_field(name: &str, v: Option<Value>, max: usize) -> Result<Option<String>, TaskError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > max => {
            Err(invalid(format!("{name} is longer than {max} bytes")))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{name} must be a string"))),
    }
}

/// An optional name (queue, group, holder): non-empty, without `/`, at most
/// [`MAX_NAME_LEN`] bytes.
fn name_field(name: &str, v: Option<Value>) -> Result<Option<String>, TaskError> {
    let Some(s) = string_field(name, v, MAX_NAME_LEN)? else {
        return Ok(None);
    };
    if s.is_empty() {
        return Err(invalid(format!("{name} must not be empty")));
    }
    if s.contains('/') {
        return Err(invalid(format!("{name} must not contain '/'")));
    }
    Ok(Some(s))
}

/// An optional integer field within `range` (inclusive).
fn int_field(name: &str, v: Option<Value>, range: (i64, i64)) -> Result<Option<i64>, TaskError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) if (range.0..=range.1).contains(&i) => Ok(Some(i)),
            Some(_) => Err(invalid(format!(
                "{name} must be between {} and {}",
                range.0, range.1
            ))),
            None => Err(invalid(format!("{name} must be an integer"))),
        },
        Some(_) => Err(invalid(format!("{name} must be an integer"))),
    }
}

/// An optional number of seconds (fractions allowed) within `range` (inclusive).
fn seconds_field(
    name: &str,
    v: Option<Value>,
    range: (f64, f64),
) -> Result<Option<f64>, TaskError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if s.is_finite() && s >= range.0 && s <= range.1 => Ok(Some(s)),
            _ => Err(invalid(format!(
                "{name} must be a number of seconds between {} and {}",
                range.0, range.1
            ))),
        },
        Some(_) => Err(invalid(format!("{name} must be a number of seconds"))),
    }
}

/// The required fencing token of a lease operation: a positive integer.
fn token_field(v: Option<Value>) -> Result<i64, TaskError> {
    int_field("token", v, (1, i64::MAX))?.ok_or_else(|| invalid("token is required".into()))
}

/// Body of `POST /api/tasks`.
#[derive(Debug, Deserialize)]
struct CreateIn {
    #[serde(default, deserialize_with = "present")]
    payload: Option<Value>,
    queue: Option<Value>,
    priority: Option<Value>,
    max_attempts: Option<Value>,
    lease_seconds: Option<Value>,
    delay_seconds: Option<Value>,
    requires: Option<Value>,
    group: Option<Value>,
    idempotency_key: Option<Value>,
}

impl TryFrom<CreateIn> for NewTask {
    type Error = TaskError;

    fn try_from(b: CreateIn) -> Result<Self, TaskError> {
        let payload = b
            .payload
            .ok_or_else(|| invalid("payload is required (null is allowed)".into()))?;
        let queue = name_field("queue", b.queue)?.unwrap_or_else(|| DEFAULT_QUEUE.into());
        let priority = int_field("priority", b.priority, (i64::MIN, i64::MAX))?.unwrap_or(0);
        let max_attempts = int_field("max_attempts", b.max_attempts, MAX_ATTEMPTS)?
            .map_or(DEFAULT_MAX_ATTEMPTS, |n| n as u32);
        let lease_seconds = seconds_field("lease_seconds", b.lease_seconds, LEASE_SECONDS)?
            .unwrap_or(DEFAULT_LEASE_SECONDS);
        let delay_seconds =
            seconds_field("delay_seconds", b.delay_seconds, DELAY_SECONDS)?.unwrap_or(0.0);
        let requires = match b.requires {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > MAX_REQUIRES {
                    return Err(invalid(format!(
                        "requires lists more than {MAX_REQUIRES} capabilities"
                    )));
                }
                let mut caps: Vec<String> = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) if !s.is_empty() && s.len() <= MAX_NAME_LEN => {
                            if !caps.contains(&s) {
                                caps.push(s);
                            }
                        }
                        _ => {
                            return Err(invalid(format!(
                                "requires must be an array of non-empty strings of at most {MAX_NAME_LEN} bytes"
                            )));
                        }
                    }
                }
                caps
            }
            Some(_) => return Err(invalid("requires must be an array of strings".into())),
        };
        let group = name_field("group", b.group)?;
        let idempotency_key = string_field("idempotency_key", b.idempotency_key, MAX_KEY_LEN)?;
        Ok(NewTask {
            queue,
            payload,
            priority,
            max_attempts,
            lease_seconds,
            delay_seconds,
            requires,
            group,
            idempotency_key,
        })
    }
}

/// Body of `POST /api/tasks/claim`.
#[derive(Debug, Deserialize)]
struct ClaimIn {
    holder: Option<Value>,
    queue: Option<Value>,
    lease_seconds: Option<Value>,
    wait_seconds: Option<Value>,
}

/// Body of the lease operations: `renew`, `complete`, `fail`, `release`.
#[derive(Debug, Deserialize)]
struct LeaseIn {
    token: Option<Value>,
    lease_seconds: Option<Value>,
    result: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Value>,
    retry_after_seconds: Option<Value>,
}

/// The project restriction of a key on the task's queue and, for a lease operation under
/// strict identity, that the caller is the task's holder (or admin), API §25. An unknown
/// task passes: the operation itself answers 404. The lease token still decides whether
/// the operation succeeds, so a holder change after this look is refused there.
async fn may_touch(
    req: &HttpRequest,
    queue: &Queue,
    caller: &Caller,
    id: &str,
    lease: bool,
) -> ApiResult<()> {
    let strict = lease && strict_identity(req);
    if !strict && !caller.restricted() {
        return Ok(());
    }
    let Ok(Ok(task)) = queue.send(GetTask { id: id.to_string() }).await else {
        return Ok(());
    };
    caller.require_project(&task.queue)?;
    if let Some(lease) = &task.lease {
        caller.require_holder(strict, &lease.holder)?;
    }
    Ok(())
}

async fn create(
    queue: Queue,
    caller: Caller,
    watcher: crate::topology::Watcher,
    JsonBody(body): JsonBody<CreateIn>,
) -> ApiResult<HttpResponse> {
    let task = NewTask::try_from(body)?;
    caller.require_project(&task.queue)?;
    let agent = caller.id().map(str::to_string);
    let task = queue.send(CreateTask { task, caller }).await??;
    if let Some(agent) = agent {
        let (task, queue) = (task.id.clone(), task.queue.clone());
        crate::topology::observe(
            &watcher,
            crate::topology::Seen::TaskCreated { agent, task, queue },
        );
    }
    Ok(HttpResponse::Ok().json(task.out()))
}

async fn claim(
    req: HttpRequest,
    queue: Queue,
    registry: Registry,
    caller: Caller,
    JsonBody(body): JsonBody<ClaimIn>,
) -> ApiResult<HttpResponse> {
    let holder = name_field("holder", body.holder)?;
    let name = name_field("queue", body.queue)?.unwrap_or_else(|| DEFAULT_QUEUE.into());
    let lease_seconds = seconds_field("lease_seconds", body.lease_seconds, LEASE_SECONDS)?;
    let wait = seconds_field("wait_seconds", body.wait_seconds, WAIT_SECONDS)?.unwrap_or(0.0);
    caller.require_project(&name)?;
    // Without `holder`, an agent named by the request claims for itself.
    let holder = holder
        .or_else(|| caller.id().map(str::to_string))
        .ok_or_else(|| invalid("holder is required".into()))?;
    caller.require_holder(strict_identity(&req), &holder)?;
    let instance = registry
        .send(GetInstance { id: holder.clone() })
        .await?
        .map_err(|_| TaskError::UnknownHolder(holder.clone()))?;
    let task = queue
        .send(ClaimTask {
            queue: name,
            holder,
            capabilities: instance.capabilities.clone(),
            lease_seconds,
            wait: Duration::from_secs_f64(wait),
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"task": task.map(|t| t.out())})))
}

async fn renew(
    req: HttpRequest,
    queue: Queue,
    caller: Caller,
    id: web::Path<String>,
    JsonBody(body): JsonBody<LeaseIn>,
) -> ApiResult<HttpResponse> {
    may_touch(&req, &queue, &caller, &id, true).await?;
    let token = token_field(body.token)?;
    let lease_seconds = seconds_field("lease_seconds", body.lease_seconds, LEASE_SECONDS)?;
    let msg = RenewLease {
        id: id.into_inner(),
        token,
        lease_seconds,
        caller,
    };
    Ok(HttpResponse::Ok().json(queue.send(msg).await??.out()))
}

async fn complete(
    req: HttpRequest,
    queue: Queue,
    caller: Caller,
    watcher: crate::topology::Watcher,
    id: web::Path<String>,
    JsonBody(body): JsonBody<LeaseIn>,
) -> ApiResult<HttpResponse> {
    may_touch(&req, &queue, &caller, &id, true).await?;
    let token = token_field(body.token)?;
    // The holder completing it (the lease is gone from the completed task).
    let holder = match &watcher {
        Some(_) => queue
            .send(GetTask { id: id.to_string() })
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|t| t.lease.as_ref().map(|l| l.holder.clone())),
        None => None,
    };
    let msg = CompleteTask {
        id: id.into_inner(),
        token,
        result: body.result.unwrap_or(Value::Null),
        caller,
    };
    let task = queue.send(msg).await??;
    if let Some(holder) = holder {
        let task = task.id.clone();
        crate::topology::observe(
            &watcher,
            crate::topology::Seen::TaskCompleted { holder, task },
        );
    }
    Ok(HttpResponse::Ok().json(task.out()))
}

async fn fail(
    req: HttpRequest,
    queue: Queue,
    caller: Caller,
    id: web::Path<String>,
    JsonBody(body): JsonBody<LeaseIn>,
) -> ApiResult<HttpResponse> {
    may_touch(&req, &queue, &caller, &id, true).await?;
    let token = token_field(body.token)?;
    let error = match body.error {
        Some(Value::String(s)) if s.len() <= MAX_ERROR_LEN => s,
        Some(Value::String(_)) => {
            return Err(invalid(format!("error is longer than {MAX_ERROR_LEN} bytes")).into());
        }
        None => return Err(invalid("error is required".into()).into()),
        Some(_) => return Err(invalid("error must be a string".into()).into()),
    };
    let retry_after_seconds = seconds_field(
        "retry_after_seconds",
        body.retry_after_seconds,
        DELAY_SECONDS,
    )?;
    let msg = FailTask {
        id: id.into_inner(),
        token,
        error,
        retry_after_seconds,
        caller,
    };
    Ok(HttpResponse::Ok().json(queue.send(msg).await??.out()))
}

async fn release(
    req: HttpRequest,
    queue: Queue,
    caller: Caller,
    id: web::Path<String>,
    JsonBody(body): JsonBody<LeaseIn>,
) -> ApiResult<HttpResponse> {
    may_touch(&req, &queue, &caller, &id, true).await?;
    let token = token_field(body.token)?;
    let msg = ReleaseTask {
        id: id.into_inner(),
        token,
        caller,
    };
    Ok(HttpResponse::Ok().json(queue.send(msg).await??.out()))
}

async fn cancel(
    req: HttpRequest,
    queue: Queue,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    may_touch(&req, &queue, &caller, &id, false).await?;
    let msg = CancelTask {
        id: id.into_inner(),
        caller,
    };
    Ok(HttpResponse::Ok().json(queue.send(msg).await??.out()))
}

async fn retry(
    req: HttpRequest,
    queue: Queue,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    may_touch(&req, &queue, &caller, &id, false).await?;
    let msg = RetryTask {
        id: id.into_inner(),
        caller,
    };
    Ok(HttpResponse::Ok().json(queue.send(msg).await??.out()))
}

async fn get(queue: Queue, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let task = queue
        .send(GetTask {
            id: id.into_inner(),
        })
        .await??;
    caller.require_project(&task.queue)?;
    Ok(HttpResponse::Ok().json(task.out()))
}

/// Query of `GET /api/tasks` (unknown parameters are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    queue: Option<String>,
    status: Option<String>,
    group: Option<String>,
    holder: Option<String>,
    limit: Option<String>,
}

/// An empty filter value means no filter.
fn filter_value(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

async fn list(req: HttpRequest, queue: Queue, caller: Caller) -> ApiResult<HttpResponse> {
    let q: ListQuery = parse_query(&req)?;
    let status = match filter_value(q.status) {
        None => None,
        Some(s) => Some(Status::parse(&s).ok_or_else(|| {
            invalid(format!(
                "unknown status {s:?}: use queued, leased, failed, done, dead or cancelled"
            ))
        })?),
    };
    let filter = TaskFilter {
        queue: filter_value(q.queue),
        status,
        group: filter_value(q.group),
        holder: filter_value(q.holder),
    };
    let limit = parse_limit(q.limit.as_deref(), 50);
    let tasks = queue.send(ListTasks { filter, limit }).await??;
    // A key restricted to some projects sees the tasks of those queues only.
    let out: Vec<Value> = tasks
        .iter()
        .filter(|t| caller.allows_project(&t.queue))
        .map(|t| t.out())
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// Query of `GET /api/tasks/stats`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatsQuery {
    queue: Option<String>,
}

async fn stats(req: HttpRequest, queue: Queue, caller: Caller) -> ApiResult<HttpResponse> {
    let q: StatsQuery = parse_query(&req)?;
    if caller.restricted() {
        match filter_value(q.queue.clone()) {
            Some(name) => caller.require_project(&name)?,
            None => return Err(forbidden("a key restricted to projects must name a queue")),
        }
    }
    let stats = queue
        .send(GetStats {
            queue: filter_value(q.queue),
        })
        .await?;
    Ok(HttpResponse::Ok().json(stats.out()))
}

async fn group(queue: Queue, caller: Caller, group: web::Path<String>) -> ApiResult<HttpResponse> {
    if caller.restricted() {
        return Err(forbidden(
            "groups span queues: not for a key restricted to projects",
        ));
    }
    let summary = queue
        .send(GetGroup {
            group: group.into_inner(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(summary.out()))
}

/// Query of `GET /api/tasks/groups/{group}/wait`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WaitQuery {
    timeout: Option<String>,
}

async fn group_wait(
    req: HttpRequest,
    queue: Queue,
    caller: Caller,
    group: web::Path<String>,
) -> ApiResult<HttpResponse> {
    if caller.restricted() {
        return Err(forbidden(
            "groups span queues: not for a key restricted to projects",
        ));
    }
    let q: WaitQuery = parse_query(&req)?;
    let timeout = match q.timeout.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_GROUP_WAIT,
        Some(v) => {
            let n = v.parse::<f64>().ok().map(|n| json!(n));
            seconds_field("timeout", n.or(Some(json!(v))), GROUP_WAIT_SECONDS)?
                .unwrap_or(DEFAULT_GROUP_WAIT)
        }
    };
    let summary = queue
        .send(WaitGroup {
            group: group.into_inner(),
            timeout: Duration::from_secs_f64(timeout),
        })
        .await??;
    Ok(HttpResponse::Ok().json(summary.out()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_in(body: Value) -> Result<NewTask, TaskError> {
        NewTask::try_from(serde_json::from_value::<CreateIn>(body).unwrap())
    }

    #[test]
    fn create_defaults_and_explicit_null_payload() {
        let t = create_in(json!({"payload": null})).unwrap();
        assert_eq!(t.payload, Value::Null);
        assert_eq!(t.queue, "default");
        assert_eq!((t.max_attempts, t.lease_seconds), (3, 60.0));
        assert!(
            create_in(json!({"queue": "q"})).is_err(),
            "payload is required"
        );
    }

    #[test]
    fn create_rejects_each_bad_field_by_name() {
        let cases = [
            (json!({"payload": 1, "priority": "high"}), "priority"),
            (json!({"payload": 1, "priority": 1.5}), "priority"),
            (json!({"payload": 1, "max_attempts": 0}), "max_attempts"),
            (json!({"payload": 1, "max_attempts": 101}), "max_attempts"),
            (json!({"payload": 1, "lease_seconds": 0.5}), "lease_seconds"),
            (
                json!({"payload": 1, "lease_seconds": 3600.5}),
                "lease_seconds",
            ),
            (json!({"payload": 1, "delay_seconds": -1}), "delay_seconds"),
            (json!({"payload": 1, "requires": "gpu"}), "requires"),
            (json!({"payload": 1, "requires": [""]}), "requires"),
            (json!({"payload": 1, "queue": ""}), "queue"),
            (json!({"payload": 1, "queue": "a/b"}), "queue"),
            (json!({"payload": 1, "group": 5}), "group"),
            (
                json!({"payload": 1, "idempotency_key": "k".repeat(MAX_KEY_LEN + 1)}),
                "idempotency_key",
            ),
        ];
        for (body, field) in cases {
            let err = create_in(body.clone()).unwrap_err().to_string();
            assert!(err.contains(field), "{body}: {err}");
        }
        let ok = create_in(
            json!({"payload": 1, "lease_seconds": 1.5, "delay_seconds": 86400, "max_attempts": 100}),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn tokens_are_positive_integers() {
        assert_eq!(token_field(Some(json!(7))).unwrap(), 7);
        for bad in [
            None,
            Some(json!(0)),
            Some(json!(-1)),
            Some(json!("7")),
            Some(json!(1.5)),
        ] {
            assert!(token_field(bad.clone()).is_err(), "{bad:?}");
        }
    }
}
