//! A follower's front door (API §27): the reads it can answer exactly go to its own
//! routes; everything else goes to the leader with the caller's method, path, query,
//! headers and body, and the leader's answer comes back unchanged.
//!
//! Served here: `GET`/`HEAD` of `/health`, `/api/cluster`, `/openapi.json`, state, specs and
//! the event history, long-poll and WebSocket, for callers this member can authenticate
//! itself (no credential, the admin token or an access key: its key ring follows the
//! events). A request with an agent's instance token goes to the leader, which holds the
//! registry. After a forwarded write succeeds, the follower catches up with the events
//! table before it answers, so the caller reads its own write through this member.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;

use super::View;
use super::replica::{CatchUp, Replica};
use crate::error::{ApiError, ErrorKind};

/// Marks a request a member forwarded; a member never forwards one again (a loop, when an
/// advertised URL points back at a follower).
pub const FORWARDED_BY: &str = "x-koor-forwarded-by";
/// How long a forwarded request may take (the longest long-poll is 60 s).
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// Where a follower stands in taking the lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Following,
    /// It holds the lead and is starting the leader's actors and servers.
    TakingOver,
    /// Its leader servers serve (its own URL reaches them).
    Leading,
}

/// How long a request waits for this member's own takeover to finish.
const TAKEOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Forwards a follower's requests to the leader, shared as app data.
pub struct Forwarder {
    client: reqwest::Client,
    view: View,
    phase: tokio::sync::watch::Receiver<Phase>,
    member: String,
    body_limit: usize,
    admin_token: crate::config::Secret,
    replica: actix::Addr<Replica>,
}

impl Forwarder {
    pub fn new(
        view: View,
        phase: tokio::sync::watch::Receiver<Phase>,
        member: String,
        body_limit: usize,
        admin_token: crate::config::Secret,
        replica: actix::Addr<Replica>,
        trust: &crate::tls::Trust,
    ) -> Result<Forwarder, String> {
        let client = trust
            .client_builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Forwarder {
            client,
            view,
            phase,
            member,
            body_limit,
            admin_token,
            replica,
        })
    }

    fn admin(&self, bearer: &[u8]) -> bool {
        !self.admin_token.is_empty() && crate::http::token_matches(bearer, &self.admin_token)
    }

    /// The leader's answer to `req`.
    async fn forward(&self, req: &HttpRequest, mut payload: Payload) -> HttpResponse {
        let phase = *self.phase.borrow();
        if phase != Phase::Following {
            // This member is taking the lead: the request goes to its own leader servers
            // once they serve.
            let mut watch = self.phase.clone();
            let ready =
                tokio::time::timeout(TAKEOVER_WAIT, watch.wait_for(|p| *p == Phase::Leading)).await;
            if !matches!(ready, Ok(Ok(_))) {
                return unavailable("this member is taking the lead; retry shortly");
            }
        } else if req.headers().contains_key(FORWARDED_BY) {
            return unavailable(
                "a forwarded request reached a follower: the leader's advertised URL \
                 (--advertise-url) must reach the leader",
            );
        }
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let Ok(chunk) = chunk else {
                return ApiError::bad_request("the request body could not be read")
                    .error_response();
            };
            if body.len() + chunk.len() > self.body_limit {
                return ApiError::too_large(self.body_limit).error_response();
            }
            body.extend_from_slice(&chunk);
        }
        let leader = self.view.get().leader;
        let target = format!(
            "{}{}",
            leader,
            req.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        let Ok(method) = reqwest::Method::from_bytes(req.method().as_str().as_bytes()) else {
            return ApiError::method_not_allowed("GET").error_response();
        };
        let mut out = self.client.request(method, &target);
        // `Host` too: the leader checks the address the client used (MCP's allow-list).
        for (name, value) in req.headers() {
            if passes(name) && *name != header::CONTENT_LENGTH {
                out = out.header(name.as_str(), value.as_bytes());
            }
        }
        if let Some(peer) = req.peer_addr() {
            out = out.header("x-forwarded-for", peer.ip().to_string());
        }
        if let Some(host) = req.headers().get(header::HOST) {
            out = out.header("x-forwarded-host", host.as_bytes());
        }
        out = out.header(FORWARDED_BY, self.member.as_str());
        let resp = match out.body(body.freeze()).send().await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(leader = %leader, error = %e, "cannot reach the leader");
                return unavailable("the cluster's leader cannot be reached; retry shortly");
            }
        };
        let status =
            StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if write && status.is_success() {
            // Read-your-writes through this member: its caches and bus reach the write.
            let _ = self.replica.send(CatchUp).await;
        }
        let mut answer = HttpResponse::build(status);
        for (name, value) in resp.headers() {
            if let Ok(name) = HeaderName::from_bytes(name.as_str().as_bytes())
                && passes(&name)
                && name != header::CONTENT_LENGTH
            {
                answer.append_header((name, value.as_bytes()));
            }
        }
        if resp.content_length().is_some() {
            match resp.bytes().await {
                Ok(bytes) => answer.body(bytes),
                Err(_) => unavailable("the leader's answer was cut off; retry"),
            }
        } else {
            // A stream (MCP's server-sent events): passed on as it comes.
            answer.streaming(resp.bytes_stream())
        }
    }
}

/// 503 with `Retry-After: 1`.
fn unavailable(message: &str) -> HttpResponse {
    let mut resp = ApiError::new(ErrorKind::Unavailable, message).error_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    resp
}

/// False for the hop-by-hop headers, which belong to one connection.
fn passes(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Whether a follower answers a request itself (see the module docs): a pure function of
/// the method, the path and the credential shape.
pub fn serves_locally(method: &Method, path: &str, credential: Credential) -> bool {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return false;
    }
    if credential == Credential::Agent {
        return false;
    }
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(
        seg.as_slice(),
        ["health"]
            | ["openapi.json"]
            | ["api", "cluster"]
            | ["api", "state", ..]
            | ["api", "specs", ..]
            | ["api", "events", "history" | "wait" | "subscribe"]
    )
}

/// What a request presents, as far as a follower tells it apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// No credential, the admin token or an access key (`koor_…`).
    Local,
    /// An agent's instance token (or anything else only the leader can check).
    Agent,
}

fn credential(req: &ServiceRequest, fwd: &Forwarder) -> Credential {
    if req
        .headers()
        .contains_key(crate::http::INSTANCE_TOKEN_HEADER)
    {
        return Credential::Agent;
    }
    let token = match crate::http::bearer(req) {
        Ok(Some(token)) => token,
        // No credential, or a malformed header: this member's gate answers it as the
        // leader's would.
        Ok(None) | Err(()) => return Credential::Local,
    };
    if token.starts_with(crate::keys::SECRET_PREFIX.as_bytes()) || fwd.admin(token) {
        Credential::Local
    } else {
        Credential::Agent
    }
}

/// The front door's middleware (outermost on a follower's listeners).
pub async fn route(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(fwd) = req.app_data::<web::Data<Forwarder>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    // Once this member leads, what still reaches its paused follower servers (a kept-alive
    // connection) goes to its leader servers, which answer with the leader's own memory.
    let local = if *fwd.phase.borrow() == Phase::Following {
        serves_locally(req.method(), req.path(), credential(&req, &fwd))
    } else {
        req.path() == "/api/events/subscribe"
    };
    if local {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let (http, payload) = req.into_parts();
    let resp = fwd.forward(&http, payload).await;
    Ok(ServiceResponse::new(http, resp).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_state_specs_and_events_stay_here() {
        for path in [
            "/health",
            "/api/cluster",
            "/api/state",
            "/api/state/a/b",
            "/api/specs/p/api",
            "/api/events/history",
            "/api/events/wait",
            "/api/events/subscribe",
        ] {
            assert!(
                serves_locally(&Method::GET, path, Credential::Local),
                "{path}"
            );
        }
    }

    #[test]
    fn writes_other_reads_and_agents_go_to_the_leader() {
        for (method, path, cred) in [
            (Method::PUT, "/api/state/a", Credential::Local),
            (Method::POST, "/api/events/publish", Credential::Local),
            (Method::DELETE, "/api/specs/p/a", Credential::Local),
            (Method::GET, "/api/instances", Credential::Local),
            (Method::GET, "/api/tasks", Credential::Local),
            (Method::GET, "/mcp", Credential::Local),
            (Method::POST, "/mcp", Credential::Local),
            (Method::GET, "/api/events/publish", Credential::Local),
            (Method::GET, "/api/state/a", Credential::Agent),
        ] {
            assert!(!serves_locally(&method, path, cred), "{method} {path}");
        }
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        assert!(!passes(&header::CONNECTION));
        assert!(!passes(&header::TRANSFER_ENCODING));
        assert!(passes(&header::AUTHORIZATION));
        assert!(passes(&HeaderName::from_static("x-koor-instance")));
        assert!(passes(&header::IF_MATCH));
    }
}
