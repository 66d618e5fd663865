//! Messages of the instances domain: its whole API.

use crate::http::Caller;
use std::sync::Arc;

use actix::Message;

use super::model::{Instance, InstanceError, InstanceFilter, StatusCounts};
use super::profile::ProfileUpdate;

/// Registers a new instance (status `pending`); answered with it and its token.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Registered, InstanceError>")]
pub struct RegisterInstance {
    pub name: String,
    pub workspace: String,
    pub intent: String,
    pub stack: String,
    pub capabilities: Vec<String>,
    /// Parent, labels, build and endpoints (the parent must be registered).
    pub profile: ProfileUpdate,
    /// Who registers (an agent registering another is named in the audit entry).
    pub caller: Caller,
}

impl RegisterInstance {
    /// A registration; the name must not be blank.
    pub fn new(
        name: String,
        workspace: Option<String>,
        intent: Option<String>,
        stack: Option<String>,
        capabilities: Option<Vec<String>>,
    ) -> Result<Self, InstanceError> {
        if name.trim().is_empty() {
            return Err(InstanceError::Invalid("name is required".into()));
        }
        check_bounds(&name, &workspace, &intent, &stack, &capabilities)
            .map_err(|e| InstanceError::Invalid(e.0))?;
        Ok(Self {
            name,
            workspace: workspace.unwrap_or_default(),
            intent: intent.unwrap_or_default(),
            stack: stack.unwrap_or_default(),
            capabilities: capabilities.unwrap_or_default(),
            profile: ProfileUpdate::default(),
            caller: Caller::anonymous(),
        })
    }

    /// The same registration with a parent, labels, build and endpoints.
    pub fn with_profile(self, profile: ProfileUpdate) -> Self {
        Self { profile, ..self }
    }

    /// The same registration, made by `caller`.
    pub fn by(self, caller: Caller) -> Self {
        Self { caller, ..self }
    }
}

/// The input bounds of a registration (REST and MCP alike).
fn check_bounds(
    name: &str,
    workspace: &Option<String>,
    intent: &Option<String>,
    stack: &Option<String>,
    capabilities: &Option<Vec<String>>,
) -> Result<(), crate::http::bounds::OutOfBounds> {
    use crate::http::bounds;
    bounds::name("name", name)?;
    for (field, value) in [("workspace", workspace), ("stack", stack)] {
        if let Some(v) = value {
            bounds::name(field, v)?;
        }
    }
    if let Some(intent) = intent {
        bounds::text("intent", intent, bounds::MAX_TEXT_BYTES)?;
    }
    if let Some(caps) = capabilities {
        bounds::names("capabilities", caps)?;
    }
    Ok(())
}

/// The answer to [`RegisterInstance`]: the only place the plain token ever appears.
#[derive(Debug, Clone)]
pub struct Registered {
    pub instance: Arc<Instance>,
    pub token: String,
}

/// One instance by id.
#[derive(Message)]
#[rtype(result = "Result<Arc<Instance>, InstanceError>")]
pub struct GetInstance {
    pub id: String,
}

/// Instances passing `filter`, `last_seen` newest first.
#[derive(Message, Default)]
#[rtype(result = "Vec<Arc<Instance>>")]
pub struct ListInstances {
    pub filter: InstanceFilter,
}

/// Refreshes `last_seen`; a stale instance becomes active again (`agent.active`). The
/// update (parent, labels, build, endpoints, health, progress) is applied with it; a
/// change of health publishes `agent.health`.
#[derive(Message)]
#[rtype(result = "Result<Arc<Instance>, InstanceError>")]
pub struct Heartbeat {
    pub id: String,
    pub update: ProfileUpdate,
}

/// Marks an instance active (from any status) and refreshes `last_seen`.
#[derive(Message)]
#[rtype(result = "Result<Arc<Instance>, InstanceError>")]
pub struct Activate {
    pub id: String,
    /// Who does it (the audit entry's actor).
    pub caller: Caller,
}

/// Replaces an instance's capabilities and refreshes `last_seen`.
#[derive(Message)]
#[rtype(result = "Result<Arc<Instance>, InstanceError>")]
pub struct SetCapabilities {
    pub id: String,
    pub capabilities: Vec<String>,
    /// Who does it (the audit entry's actor).
    pub caller: Caller,
}

/// Replaces an instance's intent and refreshes `last_seen` (MCP `set_intent`).
#[derive(Message)]
#[rtype(result = "Result<Arc<Instance>, InstanceError>")]
pub struct SetIntent {
    pub id: String,
    pub intent: String,
}

/// Removes an instance; answered with what it was.
#[derive(Message)]
#[rtype(result = "Result<Arc<Instance>, InstanceError>")]
pub struct Deregister {
    pub id: String,
    /// Who does it (the audit entry's actor).
    pub caller: Caller,
}

/// Moves every `active` instance last seen before `seen_before` (unix microseconds) to
/// `stale`; answered with exactly the instances this call moved.
#[derive(Message)]
#[rtype(result = "Result<Vec<Arc<Instance>>, InstanceError>")]
pub struct MarkStale {
    pub seen_before: i64,
}

/// The registered instance a request names, by token (when given) or by id.
#[derive(Message)]
#[rtype(result = "Option<crate::http::Agent>")]
pub struct Identify {
    pub id: Option<String>,
    pub token: Option<String>,
}

/// How many instances are in each status.
#[derive(Message)]
#[rtype(result = "StatusCounts")]
pub struct CountInstances;

/// Asks the registry to send [`crate::leases::HolderLost`] to this lease owner after every
/// commit that deregistered instances or moved them to `stale`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchHolders(pub actix::Recipient<crate::leases::HolderLost>);
