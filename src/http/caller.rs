//! Who is calling: the principal the gate verified (the admin token, an access key, an
//! agent's instance token, or nobody) and the agent a request is attributed to. The gate
//! resolves both once per request ([`super::gate`]); handlers read them with the [`Caller`]
//! extractor to attribute audit entries, per-agent metrics and default lease holders, and to
//! apply a key's project restriction.

use std::future::{Ready, ready};
use std::sync::Arc;

use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, web};

use crate::error::{ApiError, ErrorKind};
use crate::instances::{Identify, InstanceRegistry};
use crate::keys::{Grant, Scope};

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

/// A verified credential (API §25).
#[derive(Debug, Clone, Default)]
pub enum Principal {
    /// No credential (auth off, or `/health`).
    #[default]
    Anonymous,
    /// The `--auth-token`.
    Admin,
    /// An access key.
    Key(Arc<Grant>),
    /// A registered instance, by its token.
    Agent(Agent),
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Principal::Anonymous, Principal::Anonymous) | (Principal::Admin, Principal::Admin) => {
                true
            }
            (Principal::Key(a), Principal::Key(b)) => a.id == b.id,
            (Principal::Agent(a), Principal::Agent(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Principal {}

impl Principal {
    /// `anonymous`, `admin`, `key` or `agent` (the metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::Admin => "admin",
            Principal::Key(_) => "key",
            Principal::Agent(_) => "agent",
        }
    }

    /// What the principal may do; `auth_on` decides for the anonymous caller (everything
    /// on an open server, nothing otherwise).
    pub fn level(&self, auth_on: bool) -> Option<Scope> {
        match self {
            Principal::Anonymous => (!auth_on).then_some(Scope::Admin),
            Principal::Admin => Some(Scope::Admin),
            Principal::Key(g) => Some(g.level),
            Principal::Agent(_) => Some(Scope::Write),
        }
    }

    /// `admin`, `key:<name>` or the agent's name: the audit actor (API §25); `None` for
    /// the anonymous caller.
    pub fn label(&self) -> Option<String> {
        match self {
            Principal::Anonymous => None,
            Principal::Admin => Some("admin".into()),
            Principal::Key(g) => Some(format!("key:{}", g.name)),
            Principal::Agent(a) => Some(a.name.clone()),
        }
    }
}

/// Extractor: the verified principal and the agent the request is attributed to (never
/// fails: a request the gate let through has a caller, possibly anonymous).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The verified credential.
    pub principal: Principal,
    /// The agent the request acts for: the agent principal, or (unless identity is strict)
    /// the instance a bare `X-Koor-Instance` names.
    pub agent: Option<Agent>,
}

impl Caller {
    /// Nobody in particular.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// An agent acting with its own token.
    pub fn agent(agent: Agent) -> Self {
        Self {
            principal: Principal::Agent(agent.clone()),
            agent: Some(agent),
        }
    }

    /// The calling agent's instance id.
    pub fn id(&self) -> Option<&str> {
        self.agent.as_ref().map(|a| a.id.as_str())
    }

    /// The calling agent's name, else `default` (the actor API §15 names for the action).
    pub fn actor_or(&self, default: impl Into<String>) -> String {
        match &self.agent {
            Some(agent) => agent.name.clone(),
            None => self.principal.label().unwrap_or_else(|| default.into()),
        }
    }

    /// True when the principal has every scope (the admin token or an admin key).
    pub fn is_admin(&self) -> bool {
        match &self.principal {
            Principal::Admin => true,
            Principal::Key(g) => g.level == Scope::Admin && g.projects.is_none(),
            _ => false,
        }
    }

    /// True when the principal may touch `project` (only a key with `projects` may not).
    pub fn allows_project(&self, project: &str) -> bool {
        match &self.principal {
            Principal::Key(g) => g.allows(project),
            _ => true,
        }
    }

    /// True when the principal is restricted to some projects.
    pub fn restricted(&self) -> bool {
        matches!(&self.principal, Principal::Key(g) if g.projects.is_some())
    }

    /// `403` unless the principal may touch `project`.
    pub fn require_project(&self, project: &str) -> Result<(), ApiError> {
        if self.allows_project(project) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "this key may not touch project {project:?}"
            )))
        }
    }

    /// Under strict identity, `403` for a lease operation on `holder`'s lease unless the
    /// principal is that agent or admin (API §25).
    pub fn require_holder(&self, strict: bool, holder: &str) -> Result<(), ApiError> {
        if !strict || self.is_admin() {
            return Ok(());
        }
        match &self.principal {
            Principal::Agent(a) if a.id == holder => Ok(()),
            _ => Err(forbidden(format!(
                "only the holder {holder:?} (or admin) may do this under strict identity"
            ))),
        }
    }
}

/// A `403` for a missing scope or project.
pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Forbidden, message)
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

/// Whether identity is strict (API §25), shared as app data.
#[derive(Clone, Copy, Debug, Default)]
pub struct StrictIdentity(pub bool);

/// True under `--strict-identity` for the app serving `req`.
pub fn strict_identity(req: &HttpRequest) -> bool {
    req.app_data::<web::Data<StrictIdentity>>()
        .is_some_and(|s| s.0)
}

pub(super) fn header(req: &ServiceRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Attributes a request that names an agent by id only (`X-Koor-Instance`, without a
/// token) to that agent, unless the gate already verified an agent or identity is strict
/// (then the header attributes nothing). Runs after the gate.
pub async fn identify(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let attributed = req
        .extensions()
        .get::<Caller>()
        .is_some_and(|c| c.agent.is_some());
    // A token header decides alone: one that names nobody is not replaced by the id.
    if !attributed
        && header(&req, INSTANCE_TOKEN_HEADER).is_none()
        && !strict_identity(req.request())
        && let Some(id) = header(&req, INSTANCE_HEADER)
        && let Some(registry) = req.app_data::<web::Data<Addr<InstanceRegistry>>>()
        && let Ok(Some(agent)) = registry
            .send(Identify {
                id: Some(id),
                token: None,
            })
            .await
    {
        let mut ext = req.extensions_mut();
        match ext.get_mut::<Caller>() {
            Some(caller) => caller.agent = Some(agent),
            None => {
                ext.insert(Caller {
                    principal: Principal::Anonymous,
                    agent: Some(agent),
                });
            }
        }
    }
    next.call(req).await
}
