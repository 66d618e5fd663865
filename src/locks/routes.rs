//! REST adapter of the locks domain (API §24).

use std::time::Duration;

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::actor::{LockTable, acquire};
use super::glob::{LockPath, Pattern};
use super::messages::*;
use super::model::{
    DEFAULT_TTL_SECONDS, LockError, MAX_CHECK_PATHS, MAX_HOLDER_BYTES, MAX_REASON_BYTES, Mode,
    NewLock, TTL_SECONDS, WAIT_SECONDS,
};
use crate::error::ApiResult;
use crate::http::{Caller, JsonBody, Query, method_not_allowed, parse_limit, strict_identity};
use crate::instances::{GetInstance, InstanceError, InstanceRegistry};

/// Registers the lock routes (`/api/locks/check` before `/api/locks/{id}`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/locks")
            .route(web::post().to(acquire_lock))
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/api/locks/check")
            .route(web::post().to(check))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/locks/{id}")
            .route(web::delete().to(release))
            .default_service(web::to(method_not_allowed("DELETE"))),
    )
    .service(
        web::resource("/api/locks/{id}/renew")
            .route(web::post().to(renew))
            .default_service(web::to(method_not_allowed("POST"))),
    );
}

type Table = web::Data<Addr<LockTable>>;
type Registry = web::Data<Addr<InstanceRegistry>>;

fn invalid(message: impl Into<String>) -> LockError {
    LockError::Invalid(message.into())
}

/// Reads a request body into the DTO `T`, refusing anything but a JSON object (a derived
/// struct would also take an array).
fn object<T: DeserializeOwned>(body: Value) -> Result<T, LockError> {
    if !body.is_object() {
        return Err(invalid("request body must be a JSON object"));
    }
    serde_json::from_value(body).map_err(|e| invalid(e.to_string()))
}

/// An optional string field (absent or `null` is `None`).
fn string(v: Option<Value>, name: &str) -> Result<Option<String>, LockError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{name} must be a string"))),
    }
}

/// An optional number of seconds within `range` (fractions allowed).
fn seconds(v: Option<Value>, name: &str, range: (f64, f64)) -> Result<Option<f64>, LockError> {
    let (lo, hi) = range;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if (lo..=hi).contains(&s) => Ok(Some(s)),
            _ => Err(invalid(format!("{name} must be from {lo} to {hi}"))),
        },
        Some(_) => Err(invalid(format!(
            "{name} must be a number from {lo} to {hi}"
        ))),
    }
}

fn micros(seconds: f64) -> i64 {
    (seconds * 1e6).round() as i64
}

/// A fencing token: a positive integer.
fn token(v: Option<Value>) -> Result<i64, LockError> {
    match v.as_ref().and_then(Value::as_i64) {
        Some(t) if t > 0 => Ok(t),
        _ if v.is_none_or(|v| v.is_null()) => Err(invalid("token is required")),
        _ => Err(invalid("token must be a positive integer")),
    }
}

/// A resource pattern.
fn resource(raw: &str) -> Result<Pattern, LockError> {
    Pattern::parse(raw).map_err(|e| invalid(format!("resource {e}")))
}

/// Body of `POST /api/locks`; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AcquireIn {
    resource: Option<Value>,
    holder: Option<Value>,
    mode: Option<Value>,
    ttl_seconds: Option<Value>,
    reason: Option<Value>,
    wait_seconds: Option<Value>,
}

/// A validated acquisition; the holder may still be left to the caller's identity.
struct Acquisition {
    resource: Pattern,
    holder: Option<String>,
    mode: Mode,
    ttl_micros: i64,
    reason: String,
    wait: Duration,
}

impl TryFrom<AcquireIn> for Acquisition {
    type Error = LockError;

    fn try_from(b: AcquireIn) -> Result<Self, LockError> {
        let raw = string(b.resource, "resource")?.ok_or_else(|| invalid("resource is required"))?;
        let resource = resource(&raw)?;
        let holder = string(b.holder, "holder")?.filter(|h| !h.is_empty());
        let mode = match string(b.mode, "mode")? {
            None => Mode::Exclusive,
            Some(m) => Mode::parse(&m)
                .ok_or_else(|| invalid(format!("mode must be exclusive or shared, got {m:?}")))?,
        };
        let ttl =
            seconds(b.ttl_seconds, "ttl_seconds", TTL_SECONDS)?.unwrap_or(DEFAULT_TTL_SECONDS);
        let reason = string(b.reason, "reason")?.unwrap_or_default();
        if reason.len() > MAX_REASON_BYTES {
            return Err(invalid(format!(
                "reason is longer than {MAX_REASON_BYTES} bytes"
            )));
        }
        let wait = seconds(b.wait_seconds, "wait_seconds", WAIT_SECONDS)?.unwrap_or(0.0);
        Ok(Acquisition {
            resource,
            holder,
            mode,
            ttl_micros: micros(ttl),
            reason,
            wait: Duration::from_secs_f64(wait),
        })
    }
}

/// The holder a request names, else the calling agent; it must be registered.
async fn holder(
    registry: &Registry,
    named: Option<String>,
    caller: &Caller,
) -> Result<String, LockError> {
    let id = named
        .or_else(|| caller.id().map(str::to_string))
        .ok_or_else(|| invalid("holder is required"))?;
    match registry.send(GetInstance { id: id.clone() }).await? {
        Ok(instance) => Ok(instance.id.clone()),
        Err(InstanceError::NotFound(_)) => Err(LockError::UnknownHolder(id)),
        Err(_) => Err(LockError::Unavailable),
    }
}

/// The project a resource pattern belongs to: its first segment.
fn project_of(resource: &str) -> &str {
    resource.split('/').next().unwrap_or("")
}

/// The project restriction of a key on held lock `id`'s resource and, under strict identity,
/// that the caller is its holder (or admin), API §25. A lock not held passes: the operation
/// itself answers 404 or 409; the lock's token still decides a renewal or a release.
async fn may_touch(req: &HttpRequest, table: &Table, caller: &Caller, id: &str) -> ApiResult<()> {
    let strict = strict_identity(req);
    if !strict && !caller.restricted() {
        return Ok(());
    }
    if let Ok(Some(lock)) = table.send(GetLock { id: id.to_string() }).await {
        caller.require_project(project_of(lock.resource.as_str()))?;
        caller.require_holder(strict, &lock.holder)?;
    }
    Ok(())
}

async fn acquire_lock(
    req: HttpRequest,
    table: Table,
    registry: Registry,
    caller: Caller,
    watcher: crate::topology::Watcher,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<HttpResponse> {
    let a = Acquisition::try_from(object::<AcquireIn>(body)?)?;
    caller.require_project(project_of(a.resource.as_str()))?;
    let holder = holder(&registry, a.holder, &caller).await?;
    caller.require_holder(strict_identity(&req), &holder)?;
    let lock = NewLock {
        holder,
        resource: a.resource,
        mode: a.mode,
        ttl_micros: a.ttl_micros,
        reason: a.reason,
    };
    let (waiter, resource) = (lock.holder.clone(), lock.resource.as_str().to_string());
    let lock = acquire(&table, lock, a.wait, caller)
        .await
        .inspect_err(|e| {
            if let LockError::Conflict(held) = e {
                for l in held {
                    let seen = crate::topology::Seen::LockWaited {
                        waiter: waiter.clone(),
                        holder: l.holder.clone(),
                        resource: resource.clone(),
                    };
                    crate::topology::observe(&watcher, seen);
                }
            }
        })?;
    Ok(HttpResponse::Ok().json(lock.out()))
}

/// Body of `POST /api/locks/{id}/renew`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RenewIn {
    token: Option<Value>,
    ttl_seconds: Option<Value>,
}

async fn renew(
    req: HttpRequest,
    table: Table,
    caller: Caller,
    id: web::Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<HttpResponse> {
    may_touch(&req, &table, &caller, &id).await?;
    let b = object::<RenewIn>(body)?;
    let token = token(b.token)?;
    let ttl = seconds(b.ttl_seconds, "ttl_seconds", TTL_SECONDS)?;
    let lock = table
        .send(RenewLock {
            id: id.into_inner(),
            token,
            ttl_micros: ttl.map(micros),
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(lock.out()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReleaseQuery {
    token: Option<String>,
}

async fn release(
    req: HttpRequest,
    table: Table,
    caller: Caller,
    id: web::Path<String>,
    q: Query<ReleaseQuery>,
) -> ApiResult<HttpResponse> {
    may_touch(&req, &table, &caller, &id).await?;
    let token = match q.into_inner().token {
        None => None,
        // Without a token the release is forced; an empty or malformed one is refused.
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(t) if t > 0 => Some(t),
            _ => return Err(invalid("token must be a positive integer").into()),
        },
    };
    let lock = table
        .send(ReleaseLock {
            id: id.into_inner(),
            token,
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"released": lock.id})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    holder: Option<String>,
    resource: Option<String>,
    limit: Option<String>,
}

async fn list(table: Table, caller: Caller, q: Query<ListQuery>) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let resource = match q.resource.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(resource(raw)?),
    };
    let limit = parse_limit(q.limit.as_deref(), 100) as usize;
    let locks = table
        .send(ListLocks {
            holder: q.holder.filter(|h| !h.is_empty()),
            resource,
            limit,
        })
        .await?;
    // A key restricted to some projects sees the locks of those projects only.
    let out: Vec<_> = locks
        .iter()
        .filter(|l| caller.allows_project(project_of(l.resource.as_str())))
        .map(|l| l.out())
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// Body of `POST /api/locks/check`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CheckIn {
    paths: Option<Value>,
    holder: Option<Value>,
}

impl TryFrom<CheckIn> for CheckPaths {
    type Error = LockError;

    fn try_from(b: CheckIn) -> Result<Self, LockError> {
        let items = match b.paths {
            Some(Value::Array(items)) => items,
            None | Some(Value::Null) => return Err(invalid("paths is required")),
            Some(_) => return Err(invalid("paths must be an array of strings")),
        };
        if items.len() > MAX_CHECK_PATHS {
            return Err(invalid(format!(
                "paths has more than {MAX_CHECK_PATHS} entries"
            )));
        }
        let paths = items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => {
                    LockPath::parse(s).map_err(|e| invalid(format!("paths[{i}] {e}")))
                }
                _ => Err(invalid(format!("paths[{i}] must be a string"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let holder = string(b.holder, "holder")?.filter(|h| !h.is_empty());
        if holder.as_ref().is_some_and(|h| h.len() > MAX_HOLDER_BYTES) {
            return Err(invalid(format!(
                "holder is longer than {MAX_HOLDER_BYTES} bytes"
            )));
        }
        Ok(CheckPaths { paths, holder })
    }
}

async fn check(
    table: Table,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<HttpResponse> {
    let mut msg = CheckPaths::try_from(object::<CheckIn>(body)?)?;
    if msg.holder.is_none() {
        msg.holder = caller.id().map(str::to_string);
    }
    let paths = msg.paths.clone();
    let blocked = table.send(msg).await?;
    let blocked: Vec<Value> = blocked
        .iter()
        .map(|(i, lock)| json!({"path": paths[*i].as_str(), "lock": lock.out()}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"ok": blocked.is_empty(), "blocked": blocked})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquisition(body: Value) -> Result<Acquisition, LockError> {
        Acquisition::try_from(object::<AcquireIn>(body)?)
    }

    fn message(r: Result<Acquisition, LockError>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn acquire_bodies_are_checked_field_by_field() {
        let ok = acquisition(json!({"resource": "./src//a.rs", "holder": "h"})).unwrap();
        assert_eq!(ok.resource.as_str(), "src/a.rs");
        assert_eq!(ok.mode, Mode::Exclusive);
        assert_eq!(ok.ttl_micros, 300_000_000);
        assert_eq!(ok.wait, Duration::ZERO);
        let frac = acquisition(json!({"resource": "a", "ttl_seconds": 1.5, "wait_seconds": 0.25}))
            .unwrap();
        assert_eq!(frac.ttl_micros, 1_500_000);
        assert_eq!(frac.wait, Duration::from_millis(250));
        assert!(frac.holder.is_none());
        let cases = [
            (json!([1]), "request body must be a JSON object"),
            (json!({}), "resource is required"),
            (json!({"resource": 5}), "resource must be a string"),
            (json!({"resource": "a/../b"}), "resource has a '..' segment"),
            (json!({"resource": "a/[b"}), "resource has an unclosed"),
            (json!({"resource": "a", "mode": "readonly"}), "mode must be"),
            (
                json!({"resource": "a", "ttl_seconds": 0}),
                "ttl_seconds must be",
            ),
            (
                json!({"resource": "a", "ttl_seconds": 86400.5}),
                "ttl_seconds must be",
            ),
            (
                json!({"resource": "a", "ttl_seconds": "9"}),
                "ttl_seconds must be a number",
            ),
            (
                json!({"resource": "a", "wait_seconds": 61}),
                "wait_seconds must be",
            ),
            (
                json!({"resource": "a", "wait_seconds": -1}),
                "wait_seconds must be",
            ),
            (
                json!({"resource": "a", "holder": 3}),
                "holder must be a string",
            ),
            (
                json!({"resource": "a", "reason": "x".repeat(1025)}),
                "reason is longer",
            ),
        ];
        for (body, want) in cases {
            let got = message(acquisition(body.clone()));
            assert!(got.starts_with(want), "{body}: {got}");
        }
    }

    #[test]
    fn tokens_are_positive_integers() {
        assert_eq!(token(Some(json!(7))).unwrap(), 7);
        for bad in [json!(0), json!(-1), json!(1.5), json!("7"), json!(true)] {
            assert!(token(Some(bad.clone())).is_err(), "{bad}");
        }
        assert_eq!(token(None).unwrap_err().to_string(), "token is required");
    }

    #[test]
    fn check_bodies_need_an_array_of_paths() {
        let check = |body: Value| CheckPaths::try_from(object::<CheckIn>(body).unwrap());
        let ok = check(json!({"paths": ["/src/a.rs", "b"], "holder": "h"})).unwrap();
        assert_eq!(ok.paths[0].as_str(), "src/a.rs");
        assert_eq!(ok.holder.as_deref(), Some("h"));
        assert!(check(json!({"paths": []})).unwrap().paths.is_empty());
        for bad in [
            json!({}),
            json!({"paths": "src/a.rs"}),
            json!({"paths": [1]}),
            json!({"paths": ["a/../b"]}),
            json!({"paths": [""]}),
        ] {
            assert!(check(bad.clone()).is_err(), "{bad}");
        }
    }
}
