//! The first thing every request meets: bearer-token auth (before routing, so an
//! unauthenticated request to an unknown path is 401, not 404) and the declared-size check.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::error::{ApiError, ErrorKind};

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

/// Auth (on the dashboard listener: its [`Guard`](crate::dashboard::Guard)), then the
/// declared body size.
pub async fn gate(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let token = req
        .app_data::<web::Data<AuthToken>>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let is_health = req.method() == Method::GET && req.path() == "/health";
    if let Some(guard) = req.app_data::<web::Data<crate::dashboard::Guard>>() {
        if let Err(err) = guard.admit(req.request()) {
            return Ok(req
                .into_response(err.error_response())
                .map_into_right_body());
        }
    } else if !token.is_empty() && !is_health {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if !bearer_matches(presented, &token) {
            let err = ApiError::new(ErrorKind::Unauthorized, "invalid or missing bearer token");
            return Ok(req
                .into_response(err.error_response())
                .map_into_right_body());
        }
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

    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
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
