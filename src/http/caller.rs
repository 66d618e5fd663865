//! Who is calling: the registered agent a request names in `X-Koor-Instance-Token` (its
//! token) or `X-Koor-Instance` (its id). The [`identify`] middleware resolves it once per
//! request; handlers read it with the [`Caller`] extractor to attribute audit entries and
//! per-agent metrics.

use std::future::{Ready, ready};

use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, web};

use crate::instances::{Identify, InstanceRegistry};

/// Header naming the calling agent by instance id.
pub const INSTANCE_HEADER: &str = "x-koor-instance";
/// Header naming the calling agent by instance token (takes precedence over the id).
pub const INSTANCE_TOKEN_HEADER: &str = "x-koor-instance-token";

/// A registered instance acting through a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: String,
    pub name: String,
}

/// Extractor: the registered agent the request names, if any (never fails: an unknown
/// id or token simply names nobody).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller(pub Option<Agent>);

impl Caller {
    /// Nobody in particular.
    pub fn anonymous() -> Self {
        Self(None)
    }

    /// The calling agent's instance id.
    pub fn id(&self) -> Option<&str> {
        self.0.as_ref().map(|a| a.id.as_str())
    }

    /// The calling agent's name, else `default` (the actor API §15 names for the action).
    pub fn actor_or(&self, default: impl Into<String>) -> String {
        match &self.0 {
            Some(agent) => agent.name.clone(),
            None => default.into(),
        }
    }
}

impl FromRequest for Caller {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_default()))
    }
}

fn header(req: &ServiceRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Resolves the agent a request names (one message to the registry, only when one of the
/// two headers is present) and stores it for the [`Caller`] extractor. Runs after the
/// auth gate, so an unauthenticated request never reaches the registry.
pub async fn identify(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = header(&req, INSTANCE_HEADER);
    let token = header(&req, INSTANCE_TOKEN_HEADER);
    if id.is_some() || token.is_some() {
        if let Some(registry) = req.app_data::<web::Data<Addr<InstanceRegistry>>>() {
            if let Ok(Some(agent)) = registry.send(Identify { id, token }).await {
                req.extensions_mut().insert(Caller(Some(agent)));
            }
        }
    }
    next.call(req).await
}
