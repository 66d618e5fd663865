//! Instance domain types.

use serde::Serialize;

use super::profile::{Build, Health, Profile, Progress};
use crate::error::{DomainError, ErrorKind};
use crate::time::format_micros;

/// Where an instance is in its life (API §7 transitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Registered, not yet activated; never goes stale.
    Pending,
    /// Activated and heard from recently.
    Active,
    /// Was active, then silent for longer than the stale threshold.
    Stale,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Stale => "stale",
        }
    }

    /// Parses a stored status (unknown values read as `pending`, the safe choice: a
    /// pending instance is never reported stale).
    pub fn parse(s: &str) -> Status {
        match s {
            "active" => Status::Active,
            "stale" => Status::Stale,
            _ => Status::Pending,
        }
    }
}

/// A registered agent instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// UUID v4.
    pub id: String,
    pub name: String,
    pub workspace: String,
    pub intent: String,
    pub stack: String,
    pub capabilities: Vec<String>,
    pub status: Status,
    /// Lowercase hex SHA-256 of the token (the token itself is never stored).
    pub token_hash: String,
    /// Unix microseconds.
    pub registered_at: i64,
    /// Unix microseconds.
    pub last_seen: i64,
    /// Parent, labels, build, endpoints, health and progress.
    pub profile: Profile,
}

/// The wire shape of an instance. `token` is only set in the registration response.
#[derive(Serialize)]
pub struct InstanceOut<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub workspace: &'a str,
    pub intent: &'a str,
    pub stack: &'a str,
    pub capabilities: &'a [String],
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    pub registered_at: String,
    pub last_seen: String,
    pub parent_id: Option<&'a str>,
    pub labels: &'a std::collections::BTreeMap<String, String>,
    pub build: Option<&'a Build>,
    pub endpoints: &'a std::collections::BTreeMap<String, String>,
    pub health: Option<&'a Health>,
    pub progress: Option<&'a Progress>,
}

impl Instance {
    /// The wire shape, without the token.
    pub fn out(&self) -> InstanceOut<'_> {
        InstanceOut {
            id: &self.id,
            name: &self.name,
            workspace: &self.workspace,
            intent: &self.intent,
            stack: &self.stack,
            capabilities: &self.capabilities,
            status: self.status.as_str(),
            token: None,
            registered_at: format_micros(self.registered_at),
            last_seen: format_micros(self.last_seen),
            parent_id: self.profile.parent_id.as_deref(),
            labels: &self.profile.labels,
            build: self.profile.build.as_ref(),
            endpoints: &self.profile.endpoints,
            health: self.profile.health.as_ref(),
            progress: self.profile.progress.as_ref(),
        }
    }

    /// True when this instance passes every filter that is set (exact matches, AND).
    pub fn matches(&self, f: &InstanceFilter) -> bool {
        f.name.as_deref().is_none_or(|v| v == self.name)
            && f.workspace.as_deref().is_none_or(|v| v == self.workspace)
            && f.stack.as_deref().is_none_or(|v| v == self.stack)
            && f.capability
                .as_deref()
                .is_none_or(|c| self.capabilities.iter().any(|have| have == c))
            && f.status.is_none_or(|s| s == self.status)
    }
}

/// Filters of the instance list; `None` = any.
#[derive(Clone, Debug, Default)]
pub struct InstanceFilter {
    pub name: Option<String>,
    pub workspace: Option<String>,
    pub stack: Option<String>,
    /// An exact element of `capabilities`.
    pub capability: Option<String>,
    pub status: Option<Status>,
}

/// Number of instances in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, actix::MessageResponse)]
pub struct StatusCounts {
    pub pending: usize,
    pub active: usize,
    pub stale: usize,
}

impl StatusCounts {
    /// All instances, whatever their status.
    pub fn total(&self) -> usize {
        self.pending + self.active + self.stale
    }
}

/// What went wrong in the instance registry.
#[derive(Clone, Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("instance not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the instance registry is not running")]
    Unavailable,
}

impl DomainError for InstanceError {
    fn kind(&self) -> ErrorKind {
        match self {
            InstanceError::NotFound(_) => ErrorKind::NotFound,
            InstanceError::Invalid(_) => ErrorKind::BadRequest,
            InstanceError::Storage(_) => ErrorKind::Internal,
            InstanceError::Unavailable => ErrorKind::Unavailable,
        }
    }
}

impl From<sea_orm::DbErr> for InstanceError {
    fn from(e: sea_orm::DbErr) -> Self {
        InstanceError::Storage(e.to_string())
    }
}

/// Lowercase hex SHA-256 of an instance token.
pub fn token_digest(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> Instance {
        Instance {
            id: "i".into(),
            name: "alpha".into(),
            workspace: "ws".into(),
            intent: String::new(),
            stack: "rust".into(),
            capabilities: vec!["code-review".into(), "testing".into()],
            status: Status::Active,
            token_hash: String::new(),
            registered_at: 0,
            last_seen: 0,
            profile: Profile::default(),
        }
    }

    #[test]
    fn filters_are_exact_and_combine() {
        let i = instance();
        let f = |name: Option<&str>, cap: Option<&str>| InstanceFilter {
            name: name.map(Into::into),
            capability: cap.map(Into::into),
            ..Default::default()
        };
        assert!(i.matches(&InstanceFilter::default()));
        assert!(i.matches(&f(Some("alpha"), None)));
        assert!(!i.matches(&f(Some("alph"), None)));
        assert!(i.matches(&f(None, Some("testing"))));
        assert!(!i.matches(&f(None, Some("test"))));
        assert!(!i.matches(&f(Some("alpha"), Some("deploy"))));
        let stale = InstanceFilter {
            status: Some(Status::Stale),
            ..Default::default()
        };
        assert!(!i.matches(&stale));
    }

    #[test]
    fn status_round_trips() {
        for s in [Status::Pending, Status::Active, Status::Stale] {
            assert_eq!(Status::parse(s.as_str()), s);
        }
    }

    #[test]
    fn wire_shape_hides_the_token() {
        let i = instance();
        let v = serde_json::to_value(i.out()).unwrap();
        assert!(v.get("token").is_none());
        assert!(v.get("token_hash").is_none());
        assert_eq!(v["status"], "active");
    }
}
