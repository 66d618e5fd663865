//! REST adapter of the keys domain (API §25). Every route is admin scope (the gate checks).

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::actor::KeyStore;
use super::messages::*;
use super::model::{KeyError, MAX_NAME_BYTES, MAX_PROJECTS, NewKey, Scope};
use crate::error::ApiResult;
use crate::http::{Access, Caller, JsonBody, Principal, method_not_allowed};
use crate::time::{now_micros, parse_instant};

/// Registers the key routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/keys")
            .route(web::post().to(create))
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/api/keys/{id}")
            .route(web::delete().to(revoke))
            .default_service(web::to(method_not_allowed("DELETE"))),
    )
    .service(
        web::resource("/api/whoami")
            .route(web::get().to(whoami))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/keys/{id}/rotate")
            .route(web::post().to(rotate))
            .default_service(web::to(method_not_allowed("POST"))),
    );
}

type Store = web::Data<Addr<KeyStore>>;

fn invalid(message: impl Into<String>) -> KeyError {
    KeyError::Invalid(message.into())
}

/// A name: a non-empty string of at most [`MAX_NAME_BYTES`] without control characters
/// (and without `/` when `slash` is false).
fn text(value: &Value, field: &str, slash: bool) -> Result<String, KeyError> {
    let s = value
        .as_str()
        .ok_or_else(|| invalid(format!("{field} must be a string")))?;
    if s.is_empty() || s.len() > MAX_NAME_BYTES {
        return Err(invalid(format!(
            "{field} must be 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    if s.chars().any(char::is_control) || (!slash && s.contains('/')) {
        return Err(invalid(format!(
            "{field} must not contain control characters{}",
            if slash { "" } else { " or /" }
        )));
    }
    Ok(s.to_string())
}

/// Validates the body of `POST /api/keys` at `now`.
fn new_key(body: Value, now: i64) -> Result<NewKey, KeyError> {
    let Value::Object(b) = body else {
        return Err(invalid("request body must be a JSON object"));
    };
    let get = |k: &str| b.get(k).filter(|v| !v.is_null());
    let name = text(
        get("name").ok_or_else(|| invalid("name is required"))?,
        "name",
        true,
    )?;
    let raw_scopes = get("scopes")
        .ok_or_else(|| invalid("scopes is required"))?
        .as_array()
        .ok_or_else(|| invalid("scopes must be an array"))?;
    let mut scopes = raw_scopes
        .iter()
        .map(|s| s.as_str().and_then(Scope::parse))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid("scopes may only contain \"read\", \"write\" and \"admin\""))?;
    if scopes.is_empty() {
        return Err(invalid("scopes must not be empty"));
    }
    scopes.sort();
    scopes.dedup();
    let projects = match get("projects") {
        None => None,
        Some(v) => {
            let list = v
                .as_array()
                .ok_or_else(|| invalid("projects must be an array of strings"))?;
            if list.len() > MAX_PROJECTS {
                return Err(invalid(format!("at most {MAX_PROJECTS} projects")));
            }
            let mut ps = list
                .iter()
                .map(|p| text(p, "each project", false))
                .collect::<Result<Vec<_>, _>>()?;
            ps.sort();
            ps.dedup();
            Some(ps)
        }
    };
    let expires_at = match get("expires_at") {
        None => None,
        Some(v) => {
            let at = v
                .as_str()
                .and_then(parse_instant)
                .ok_or_else(|| invalid("expires_at must be an RFC 3339 timestamp"))?;
            if at <= now {
                return Err(invalid("expires_at must be in the future"));
            }
            Some(at)
        }
    };
    let rate_limit = match get("rate_limit") {
        None => None,
        Some(v) => {
            let r = v
                .as_f64()
                .filter(|r| r.is_finite() && *r > 0.0 && *r <= 1e6)
                .ok_or_else(|| invalid("rate_limit must be a number of requests/s, > 0"))?;
            Some(r)
        }
    };
    Ok(NewKey {
        name,
        scopes,
        projects,
        expires_at,
        rate_limit,
    })
}

async fn create(
    store: Store,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<HttpResponse> {
    let key = new_key(body, now_micros())?;
    let issued = store.send(CreateKey { key, caller }).await??;
    Ok(HttpResponse::Ok().json(issued))
}

/// `GET /api/whoami`: the caller's principal, its scopes and projects, and whether
/// authentication is on (what the dashboard hides its actions by).
async fn whoami(caller: Caller, access: web::Data<Access>) -> ApiResult<HttpResponse> {
    let auth_on = access.auth_on();
    let level = caller.principal.level(auth_on);
    let (name, projects) = match &caller.principal {
        Principal::Key(g) => (Some(g.name.clone()), g.projects.clone()),
        Principal::Agent(a) => (Some(a.name.clone()), None),
        Principal::Admin => (Some("admin".to_string()), None),
        Principal::Anonymous => (None, None),
    };
    Ok(HttpResponse::Ok().json(json!({
        "principal": caller.principal.kind(),
        "name": name,
        "scopes": level.map_or(&[][..], Scope::implied),
        "projects": projects,
        "agent": caller.agent.as_ref().map(|a| json!({"id": a.id, "name": a.name})),
        "auth": auth_on,
    })))
}

async fn list(store: Store) -> ApiResult<HttpResponse> {
    let keys = store.send(ListKeys).await?;
    let out: Vec<Value> = keys.iter().map(|g| g.view()).collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn revoke(store: Store, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = store
        .send(RevokeKey {
            id: id.into_inner(),
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"revoked": id})))
}

async fn rotate(store: Store, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let issued = store
        .send(RotateKey {
            id: id.into_inner(),
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(issued))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_bodies_are_validated() {
        let now = crate::time::now_micros();
        let ok = new_key(
            json!({"name": "ci", "scopes": ["write", "read", "write"]}),
            now,
        )
        .unwrap();
        assert_eq!(ok.scopes, vec![Scope::Read, Scope::Write]);
        let bad: &[Value] = &[
            json!([]),
            json!({"scopes": ["read"]}),
            json!({"name": "", "scopes": ["read"]}),
            json!({"name": "x"}),
            json!({"name": "x", "scopes": []}),
            json!({"name": "x", "scopes": ["root"]}),
            json!({"name": "x", "scopes": "read"}),
            json!({"name": "x", "scopes": ["read"], "projects": ["a/b"]}),
            json!({"name": "x", "scopes": ["read"], "projects": "a"}),
            json!({"name": "x", "scopes": ["read"], "expires_at": "2000-01-01T00:00:00Z"}),
            json!({"name": "x", "scopes": ["read"], "expires_at": "soon"}),
            json!({"name": "x", "scopes": ["read"], "rate_limit": 0}),
            json!({"name": "x", "scopes": ["read"], "rate_limit": "5"}),
        ];
        for body in bad {
            assert!(new_key(body.clone(), now).is_err(), "{body}");
        }
    }
}
