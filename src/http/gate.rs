//! The first thing every request meets: who is calling (before routing, so an
//! unauthenticated request to an unknown path is 401, not 404), the rate limit, the scope
//! and project checks, and the declared-size check.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use std::sync::atomic::Ordering;

use actix::Addr;

use super::access::{Touches, required_scope, touches};
use super::caller::{Agent, Caller, INSTANCE_TOKEN_HEADER, Principal, forbidden, header};
use super::ratelimit::{Limits, Verdict};
use crate::config::Secret;
use crate::dashboard::SessionWho;
use crate::error::{ApiError, ErrorKind};
use crate::instances::{Identify, InstanceRegistry};
use crate::keys::{KeyRing, SECRET_PREFIX};
use crate::time::now_micros;

/// The configured server token (empty = auth off), shared with the gate as app data.
#[derive(Clone, Debug)]
pub struct AuthToken(pub Secret);

/// The request body limit in bytes, shared as app data.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// How much of an oversized body is read and thrown away so that the client, still
/// sending, gets to read the 413 instead of a reset connection.
const DRAIN_CAP: usize = 64 * 1024 * 1024;

/// True when `header_value` is `Bearer <token>` with exactly `expected` as the token
/// (compared by [`token_matches`]).
pub fn bearer_matches(header_value: Option<&[u8]>, expected: &Secret) -> bool {
    let Some(value) = header_value else {
        return false;
    };
    if value.len() < 8 || !value[..7].eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    token_matches(&value[7..], expected)
}

/// True when `presented` is exactly the (non-empty) `expected` token. Both sides are
/// hashed and the digests compared in constant time, so neither the token's bytes nor its
/// length leak through timing.
pub fn token_matches(presented: &[u8], expected: &Secret) -> bool {
    if presented.is_empty() {
        return false;
    }
    let a = Sha256::digest(presented);
    let b = Sha256::digest(expected.expose().as_bytes());
    a.ct_eq(&b).into()
}

/// The configured body limit of the app serving `req`.
pub fn body_limit(req: &actix_web::HttpRequest) -> usize {
    req.app_data::<web::Data<BodyLimit>>()
        .map(|l| l.0)
        .unwrap_or(crate::config::DEFAULT_MAX_BODY_BYTES)
}

/// The request's `Content-Length`, when present and numeric.
pub fn declared_length(headers: &header::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Everything the gate decides with, shared as app data: the admin token, the live keys,
/// the rate limits and whether identity is strict.
pub struct Access {
    pub token: Secret,
    pub ring: KeyRing,
    pub limits: Limits,
    pub strict: bool,
}

impl Access {
    /// True when every request but `GET /health` needs a credential (API §25).
    pub fn auth_on(&self) -> bool {
        !self.token.is_empty() || self.ring.keys_exist()
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(ErrorKind::Unauthorized, "invalid or missing bearer token")
}

/// The token of a `Bearer` `Authorization` header; `Err` for a header of another shape.
pub(crate) fn bearer(req: &ServiceRequest) -> Result<Option<&[u8]>, ()> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.as_bytes();
    if value.len() < 8 || !value[..7].eq_ignore_ascii_case(b"bearer ") {
        return Err(());
    }
    Ok(Some(&value[7..]))
}

async fn agent_by_token(req: &ServiceRequest, token: &[u8]) -> Option<Agent> {
    let token = std::str::from_utf8(token).ok()?.to_string();
    let registry = req.app_data::<web::Data<Addr<InstanceRegistry>>>()?;
    registry
        .send(Identify {
            id: None,
            token: Some(token),
        })
        .await
        .ok()
        .flatten()
}

/// Resolves the request's credential to a principal and the agent it verifies; `Err` for
/// a credential that is presented but not valid while auth is on.
async fn resolve(
    req: &ServiceRequest,
    access: &Access,
    auth_on: bool,
    session: Option<SessionWho>,
) -> Result<Caller, ()> {
    let mut caller = Caller::anonymous();
    if let Some(who) = session {
        caller.principal = match who {
            SessionWho::Admin => Principal::Admin,
            SessionWho::Key(grant) => Principal::Key(grant),
        };
    } else {
        match bearer(req) {
            Err(()) if auth_on => return Err(()),
            Err(()) | Ok(None) => {}
            Ok(Some(presented)) => {
                if !access.token.is_empty() && token_matches(presented, &access.token) {
                    caller.principal = Principal::Admin;
                } else if presented.starts_with(SECRET_PREFIX.as_bytes()) {
                    match access.ring.lookup(presented) {
                        Some(grant) if !grant.expired(now_micros()) => {
                            grant.last_used_at.store(now_micros(), Ordering::Relaxed);
                            caller.principal = Principal::Key(grant);
                        }
                        _ if auth_on => return Err(()),
                        _ => {}
                    }
                } else {
                    match agent_by_token(req, presented).await {
                        Some(agent) => caller = Caller::agent(agent),
                        None if auth_on => return Err(()),
                        None => {}
                    }
                }
            }
        }
    }
    if caller.agent.is_none()
        && let Some(token) = header(req, INSTANCE_TOKEN_HEADER)
    {
        match agent_by_token(req, token.as_bytes()).await {
            Some(agent) if caller.principal == Principal::Anonymous => {
                caller = Caller::agent(agent)
            }
            Some(agent) => caller.agent = Some(agent),
            None if auth_on && caller.principal == Principal::Anonymous => return Err(()),
            None => {}
        }
    }
    if auth_on && caller.principal == Principal::Anonymous {
        return Err(());
    }
    Ok(caller)
}

/// The gate (API §25): resolves every request once to its [`Caller`], then applies in the
/// contract's order the credential (401), the rate limit (429), the scope and the project
/// restriction (403) and the declared body size (413). `GET /health` (and the dashboard's
/// pages) pass without a credential and are never limited.
pub async fn gate(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let is_health = req.method() == Method::GET && req.path() == "/health";
    let guard = req
        .app_data::<web::Data<crate::dashboard::Guard>>()
        .cloned();
    if let Some(guard) = &guard
        && let Err(err) = guard.check_origin(req.request())
    {
        return Ok(req
            .into_response(err.error_response())
            .map_into_right_body());
    }
    let public = is_health || guard.as_ref().is_some_and(|g| g.is_public(req.path()));
    let access = req.app_data::<web::Data<Access>>().cloned();
    let mut limited = None;
    if let Some(access) = access
        && !public
    {
        let auth_on = access.auth_on();
        let session = guard.as_ref().and_then(|g| g.session(req.request()));
        let resolved = resolve(&req, &access, auth_on, session).await;
        let ip = req.peer_addr().map(|a| a.ip());
        let principal = match &resolved {
            Ok(caller) => caller.principal.clone(),
            Err(()) => Principal::Anonymous,
        };
        match access.limits.check(&principal, ip) {
            Verdict::Free => {}
            Verdict::Allowed(headers) => limited = Some(headers),
            Verdict::Refused(headers) => {
                if let Some(t) = req.app_data::<web::Data<crate::telemetry::HttpTelemetry>>() {
                    t.rate_limited(principal.kind());
                }
                let err = ApiError::new(
                    ErrorKind::TooManyRequests,
                    format!("rate limit exceeded; retry in {} s", headers.retry_after()),
                );
                let mut resp = err.error_response();
                headers.apply(resp.headers_mut());
                return Ok(req.into_response(resp).map_into_right_body());
            }
        }
        let Ok(caller) = resolved else {
            return Ok(req
                .into_response(unauthorized().error_response())
                .map_into_right_body());
        };
        if let Err(err) = authorize(&req, &caller, auth_on) {
            return Ok(req
                .into_response(err.error_response())
                .map_into_right_body());
        }
        req.extensions_mut().insert(caller);
    }

    let limit = body_limit(req.request());
    if let Some(len) = declared_length(req.headers())
        && len > limit as u64
    {
        if len <= (limit + DRAIN_CAP) as u64 {
            let mut payload = req.take_payload();
            while let Some(chunk) = payload.next().await {
                if chunk.is_err() {
                    break;
                }
            }
        }
        let err = ApiError::too_large(limit);
        return Ok(req
            .into_response(err.error_response())
            .map_into_right_body());
    }

    let mut res = next.call(req).await?;
    if let Some(headers) = limited {
        headers.apply(res.headers_mut());
    }
    Ok(res.map_into_left_body())
}

/// The scope and project checks (403).
fn authorize(req: &ServiceRequest, caller: &Caller, auth_on: bool) -> Result<(), ApiError> {
    let need = required_scope(req.method(), req.path(), req.query_string());
    let has = caller.principal.level(auth_on);
    if has.is_none_or(|has| has < need) {
        return Err(forbidden(format!(
            "this credential lacks the {} scope",
            need.as_str()
        )));
    }
    if caller.restricted() {
        match touches(req.path()) {
            Touches::Project(p) => caller.require_project(&p)?,
            Touches::Unrestricted => {
                return Err(forbidden(
                    "a key restricted to projects may not use this endpoint",
                ));
            }
            Touches::Nothing | Touches::Handler => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_check_table() {
        let secret = Secret::new("s3cret");
        let cases: &[(Option<&str>, bool)] = &[
            (Some("Bearer s3cret"), true),
            (Some("bearer s3cret"), true),
            (Some("BEARER s3cret"), true),
            (None, false),
            (Some(""), false),
            (Some("Bearer"), false),
            (Some("Bearer "), false),
            (Some("s3cret"), false),
            (Some("Bearer s3cret-wrong"), false),
            (Some("Bearer  s3cret"), false),
            (Some("Basic s3cret"), false),
            (Some("Bearer s3cre"), false),
        ];
        for (header, want) in cases {
            assert_eq!(
                bearer_matches(header.map(str::as_bytes), &secret),
                *want,
                "{header:?}"
            );
        }
    }
}
