//! Who may use the dashboard: the `Host` and `Origin` checks, and the session cookie a
//! person gets by typing the server token once.
//!
//! The cookie holds `HMAC-SHA256(key, token)` under a key drawn at startup, never the
//! token: it is worthless elsewhere, stops working when the token changes or the server
//! restarts, and is `HttpOnly` (page scripts cannot read it) and `SameSite=Strict` (other
//! sites cannot make the browser send it). It has no expiry, so it lasts for the browser
//! session. Signed in with an access key, the cookie is `k.<digest>.<HMAC(key, k.<digest>)>`
//! (the key's stored digest, never its secret): the session acts as that key, and ends
//! with the key's revocation, rotation or expiry.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::http::JsonBody;
use crate::http::hosts::{allowed_hosts, host_of, is_wildcard};

/// Prefix of the session cookie's name; the dashboard port follows, because browsers
/// share cookies between the ports of one host.
pub const SESSION_COOKIE: &str = "koor_session";

/// A fresh random key for session cookies (one per server start).
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// Draws a key from the operating system's random source.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self(key)
    }
}

/// The dashboard's admission rules, shared as app data; the gate defers to it on the
/// dashboard listener.
#[derive(Clone)]
pub struct Guard {
    token: Secret,
    key: SessionKey,
    cookie: String,
    /// `None` accepts any `Host` (the dashboard is bound to a wildcard address).
    hosts: Option<Vec<String>>,
    /// The live access keys, for sign-in with a key.
    ring: crate::keys::KeyRing,
}

/// Who a dashboard session acts as.
pub enum SessionWho {
    Admin,
    Key(std::sync::Arc<crate::keys::Grant>),
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("token", &self.token)
            .field("cookie", &self.cookie)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// Rules for a dashboard bound to `bind` (port `port`) with server token `token`.
    pub fn new(token: Secret, key: SessionKey, bind: &str, port: u16) -> Self {
        let hosts = (!is_wildcard(host_of(bind))).then(|| allowed_hosts(bind, &[]));
        Self {
            token,
            key,
            cookie: format!("{SESSION_COOKIE}_{port}"),
            hosts,
            ring: crate::keys::KeyRing::default(),
        }
    }

    /// The same rules, with sign-in by the access keys of `ring`.
    pub fn with_keys(mut self, ring: crate::keys::KeyRing) -> Self {
        self.ring = ring;
        self
    }

    /// True when the API needs a credential (a server token, or any key ever created).
    fn auth_required(&self) -> bool {
        !self.token.is_empty() || self.ring.keys_exist()
    }

    /// Who the request's session cookie acts as, if it carries a valid one.
    pub fn session(&self, req: &HttpRequest) -> Option<SessionWho> {
        let value = cookie_value(req, &self.cookie)?;
        if let Some(rest) = value.strip_prefix("k.") {
            let (digest, _) = rest.split_once('.')?;
            let expected = self.mac(&format!("k.{digest}"));
            if expected.is_empty()
                || !bool::from(
                    value
                        .as_bytes()
                        .ct_eq(format!("k.{digest}.{expected}").as_bytes()),
                )
            {
                return None;
            }
            let grant = self.ring.lookup_digest(digest)?;
            return (!grant.expired(crate::time::now_micros())).then_some(SessionWho::Key(grant));
        }
        self.has_session(req).then_some(SessionWho::Admin)
    }

    fn mac(&self, text: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key.0) else {
            return String::new();
        };
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Admits or refuses a request before routing: 403 for a foreign `Host` or a
    /// cross-origin request, 401 for `/api` without the token or a session.
    pub fn admit(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.check_origin(req)?;
        if self.token.is_empty() || !protected(req.path()) || self.authenticated(req) {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorKind::Unauthorized,
            "invalid or missing bearer token",
        ))
    }

    /// True for the paths anyone may load (pages, assets, `/session`): everything but the
    /// API.
    pub fn is_public(&self, path: &str) -> bool {
        !protected(path)
    }

    /// True when the request carries this server's session cookie (signed in with the
    /// server token).
    pub fn has_session(&self, req: &HttpRequest) -> bool {
        !self.token.is_empty()
            && cookie_value(req, &self.cookie).is_some_and(|v| self.session_matches(v))
    }

    /// 403 for a foreign `Host` or a cross-origin request.
    pub fn check_origin(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(hosts) = &self.hosts {
            let name = host_of(host).to_ascii_lowercase();
            if !hosts.iter().any(|h| h.eq_ignore_ascii_case(&name)) {
                return Err(ApiError::new(
                    ErrorKind::Forbidden,
                    "the dashboard does not answer to this Host",
                ));
            }
        }
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let same = origin
                .to_str()
                .ok()
                .and_then(|o| {
                    o.strip_prefix("http://")
                        .or_else(|| o.strip_prefix("https://"))
                })
                .is_some_and(|authority| authority.eq_ignore_ascii_case(host));
            if !same {
                return Err(ApiError::new(
                    ErrorKind::Forbidden,
                    "cross-origin requests to the dashboard are refused",
                ));
            }
        }
        Ok(())
    }

    /// True when auth is off, or the request carries the bearer token or a session.
    fn authenticated(&self, req: &HttpRequest) -> bool {
        if self.token.is_empty() {
            return true;
        }
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        crate::http::bearer_matches(bearer, &self.token)
            || cookie_value(req, &self.cookie).is_some_and(|v| self.session_matches(v))
    }

    fn session_value(&self) -> String {
        // A 32-byte key is always a valid HMAC key.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key.0) else {
            return String::new();
        };
        mac.update(self.token.expose().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn session_matches(&self, presented: &str) -> bool {
        let expected = self.session_value();
        !expected.is_empty()
            && presented.len() == expected.len()
            && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
    }
}

/// Paths that hand out data: the proxied API.
fn protected(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn guard(req: &HttpRequest) -> ApiResult<&Guard> {
    req.app_data::<web::Data<Guard>>()
        .map(|g| g.get_ref())
        .ok_or_else(|| ApiError::not_found("no dashboard here"))
}

/// `GET /session`: whether a token is needed and whether this browser has a session.
pub(super) async fn status(req: HttpRequest) -> ApiResult<HttpResponse> {
    let guard = guard(&req)?;
    Ok(HttpResponse::Ok().json(json!({
        "auth_required": guard.auth_required(),
        "authenticated": !guard.auth_required()
            || guard.authenticated(&req)
            || guard.session(&req).is_some(),
    })))
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    token: String,
}

/// `POST /session {"token": "…"}`: checks the token (constant time) and sets the cookie.
pub(super) async fn sign_in(
    req: HttpRequest,
    JsonBody(body): JsonBody<SignIn>,
) -> ApiResult<HttpResponse> {
    let guard = guard(&req)?;
    if !guard.auth_required() {
        return Ok(HttpResponse::Ok().json(json!({"authenticated": true})));
    }
    let value = if !guard.token.is_empty()
        && crate::http::token_matches(body.token.as_bytes(), &guard.token)
    {
        guard.session_value()
    } else {
        // An access key: the session stands for its digest, never its secret.
        match guard.ring.lookup(body.token.as_bytes()) {
            Some(grant) if !grant.expired(crate::time::now_micros()) => {
                let digest = crate::keys::digest_hex(&body.token);
                let tag = format!("k.{digest}");
                format!("{tag}.{}", guard.mac(&tag))
            }
            _ => return Err(ApiError::new(ErrorKind::Unauthorized, "wrong token or key")),
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((
            header::SET_COOKIE,
            format!(
                "{}={}; Path=/; HttpOnly; SameSite=Strict",
                guard.cookie, value
            ),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"authenticated": true})))
}

/// `DELETE /session`: forgets the cookie.
pub(super) async fn sign_out(req: HttpRequest) -> ApiResult<HttpResponse> {
    let guard = guard(&req)?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::SET_COOKIE,
            format!(
                "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                guard.cookie
            ),
        ))
        .json(json!({"authenticated": false})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn guard(token: &str, bind: &str) -> Guard {
        Guard::new(Secret::new(token), SessionKey::random(), bind, 9847)
    }

    #[test]
    fn foreign_hosts_and_origins_are_refused() {
        let g = guard("", "localhost:9847");
        let ok = TestRequest::get()
            .uri("/api/state")
            .insert_header((header::HOST, "localhost:9847"))
            .to_http_request();
        assert!(g.admit(&ok).is_ok());
        let rebound = TestRequest::get()
            .uri("/api/state")
            .insert_header((header::HOST, "evil.example:9847"))
            .to_http_request();
        assert_eq!(
            g.admit(&rebound).map_err(|e| e.kind()),
            Err(ErrorKind::Forbidden)
        );
        let cross = TestRequest::post()
            .uri("/api/metrics/reset")
            .insert_header((header::HOST, "127.0.0.1:9847"))
            .insert_header((header::ORIGIN, "http://evil.example"))
            .to_http_request();
        assert_eq!(
            g.admit(&cross).map_err(|e| e.kind()),
            Err(ErrorKind::Forbidden)
        );
        let same = TestRequest::post()
            .uri("/api/metrics/reset")
            .insert_header((header::HOST, "127.0.0.1:9847"))
            .insert_header((header::ORIGIN, "http://127.0.0.1:9847"))
            .to_http_request();
        assert!(g.admit(&same).is_ok());
        let any = guard("", "0.0.0.0:9847");
        assert!(any.admit(&rebound).is_ok());
    }

    #[test]
    fn the_api_needs_the_token_or_the_session_and_pages_do_not() {
        let g = guard("s3cret", "127.0.0.1:9847");
        let req = |path: &str, extra: Option<(header::HeaderName, String)>| {
            let mut r = TestRequest::get()
                .uri(path)
                .insert_header((header::HOST, "127.0.0.1:9847"));
            if let Some(h) = extra {
                r = r.insert_header(h);
            }
            r.to_http_request()
        };
        assert!(g.admit(&req("/", None)).is_ok());
        assert!(g.admit(&req("/app.js", None)).is_ok());
        assert_eq!(
            g.admit(&req("/api/state", None)).map_err(|e| e.kind()),
            Err(ErrorKind::Unauthorized)
        );
        let bearer = (header::AUTHORIZATION, "Bearer s3cret".to_string());
        assert!(g.admit(&req("/api/state", Some(bearer))).is_ok());
        let cookie = (
            header::COOKIE,
            format!("a=b; koor_session_9847={}", g.session_value()),
        );
        assert!(g.admit(&req("/api/state", Some(cookie))).is_ok());
        let forged = (header::COOKIE, "koor_session_9847=s3cret".to_string());
        assert!(g.admit(&req("/api/state", Some(forged))).is_err());
        let other = guard("s3cret", "127.0.0.1:9847");
        let stale = (
            header::COOKIE,
            format!("koor_session_9847={}", other.session_value()),
        );
        assert!(
            g.admit(&req("/api/state", Some(stale))).is_err(),
            "a cookie from another server start is not a session"
        );
    }
}
