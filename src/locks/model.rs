//! Lock domain types.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::glob::Pattern;
use crate::error::{DomainError, ErrorKind};
use crate::time::format_micros;

/// Longest `reason`, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// Longest `holder` accepted by `POST /api/locks/check`, in bytes (instance ids are 36).
pub const MAX_HOLDER_BYTES: usize = 256;
/// Most paths in one `POST /api/locks/check`.
pub const MAX_CHECK_PATHS: usize = 100_000;
/// `ttl_seconds` bounds and default (API §24).
pub const TTL_SECONDS: (f64, f64) = (1.0, 86_400.0);
pub const DEFAULT_TTL_SECONDS: f64 = 300.0;
/// `wait_seconds` bounds (API §24).
pub const WAIT_SECONDS: (f64, f64) = (0.0, 60.0);

/// Exclusive or shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Exclusive,
    Shared,
}

impl Mode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "exclusive" => Some(Mode::Exclusive),
            "shared" => Some(Mode::Shared),
            _ => None,
        }
    }
}

/// A held lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// UUID v4.
    pub id: String,
    pub resource: Pattern,
    pub mode: Mode,
    /// The holding instance's id.
    pub holder: String,
    /// Fencing token (API §22), kept by renewals.
    pub token: i64,
    pub reason: String,
    /// The last ttl asked for (the default of a renewal), in microseconds.
    pub ttl_micros: i64,
    /// Unix microseconds.
    pub acquired_at: i64,
    /// Unix microseconds; held while `now < expires_at`.
    pub expires_at: i64,
}

impl Lock {
    /// True while the lock is held at `now`.
    pub fn held_at(&self, now: i64) -> bool {
        now < self.expires_at
    }

    /// True when this lock and a wanted lock of `holder` in `mode` on `resource` exclude
    /// each other (API §24): other holder, at least one exclusive, a common path.
    pub fn conflicts_with(&self, holder: &str, mode: Mode, resource: &Pattern) -> bool {
        self.holder != holder
            && (self.mode == Mode::Exclusive || mode == Mode::Exclusive)
            && self.resource.overlaps(resource)
    }

    /// The wire shape.
    pub fn out(&self) -> LockOut<'_> {
        LockOut {
            id: &self.id,
            resource: self.resource.as_str(),
            mode: self.mode.as_str(),
            holder: &self.holder,
            token: self.token,
            reason: &self.reason,
            acquired_at: format_micros(self.acquired_at),
            expires_at: format_micros(self.expires_at),
        }
    }

    /// The data of the lock events (API §24); `cause` is null on `lock.acquired`.
    pub fn event_data(&self, cause: Option<Cause>) -> Value {
        json!({
            "id": self.id,
            "resource": self.resource.as_str(),
            "mode": self.mode.as_str(),
            "holder": self.holder,
            "token": self.token,
            "reason": self.reason,
            "cause": cause.map(Cause::as_str),
        })
    }
}

/// The wire shape of a lock.
#[derive(Serialize)]
pub struct LockOut<'a> {
    pub id: &'a str,
    pub resource: &'a str,
    pub mode: &'static str,
    pub holder: &'a str,
    pub token: i64,
    pub reason: &'a str,
    pub acquired_at: String,
    pub expires_at: String,
}

/// Why a lock stopped being held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Released with its token.
    Released,
    /// Released without a token.
    Forced,
    /// Its holder was deregistered or went stale.
    HolderLost,
    /// Its `expires_at` passed.
    Expired,
}

impl Cause {
    /// The `cause` of the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Released => "released",
            Cause::Forced => "forced",
            Cause::HolderLost => "holder_lost",
            Cause::Expired => "expired",
        }
    }
}

/// A lock to acquire, validated.
#[derive(Clone, Debug)]
pub struct NewLock {
    pub resource: Pattern,
    pub mode: Mode,
    pub holder: String,
    pub ttl_micros: i64,
    pub reason: String,
}

/// What went wrong in the lock table.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LockError {
    #[error("{0}")]
    Invalid(String),
    #[error("holder not found: {0}")]
    UnknownHolder(String),
    #[error("lock not found: {0}")]
    NotFound(String),
    #[error("lock {0} is not held with that token")]
    NotHeld(String),
    #[error("the resource is locked: {} conflicting lock(s)", .0.len())]
    Conflict(Vec<Arc<Lock>>),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the lock table is not running")]
    Unavailable,
}

impl DomainError for LockError {
    fn kind(&self) -> ErrorKind {
        match self {
            LockError::Invalid(_) => ErrorKind::BadRequest,
            LockError::UnknownHolder(_) | LockError::NotFound(_) => ErrorKind::NotFound,
            LockError::NotHeld(_) | LockError::Conflict(_) => ErrorKind::Conflict,
            LockError::Storage(_) => ErrorKind::Internal,
            LockError::Unavailable => ErrorKind::Unavailable,
        }
    }

    /// A conflict lists the locks in the way.
    fn details(&self) -> Option<Map<String, Value>> {
        let LockError::Conflict(locks) = self else {
            return None;
        };
        let conflicts: Vec<LockOut<'_>> = locks.iter().map(|l| l.out()).collect();
        let mut map = Map::new();
        map.insert("conflicts".into(), json!(conflicts));
        Some(map)
    }
}

impl From<sea_orm::DbErr> for LockError {
    fn from(e: sea_orm::DbErr) -> Self {
        LockError::Storage(e.to_string())
    }
}

impl From<actix::MailboxError> for LockError {
    fn from(_: actix::MailboxError) -> Self {
        LockError::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(holder: &str, mode: Mode, resource: &str) -> Lock {
        Lock {
            id: "l".into(),
            resource: Pattern::parse(resource).unwrap(),
            mode,
            holder: holder.into(),
            token: 7,
            reason: String::new(),
            ttl_micros: 1,
            acquired_at: 0,
            expires_at: 10,
        }
    }

    #[test]
    fn conflict_needs_another_holder_an_exclusive_side_and_a_common_path() {
        let p = |s: &str| Pattern::parse(s).unwrap();
        let held = lock("a", Mode::Exclusive, "src/**");
        assert!(held.conflicts_with("b", Mode::Shared, &p("src/x.rs")));
        assert!(!held.conflicts_with("a", Mode::Exclusive, &p("src/x.rs")));
        assert!(!held.conflicts_with("b", Mode::Exclusive, &p("docs/x.md")));
        let shared = lock("a", Mode::Shared, "src/**");
        assert!(!shared.conflicts_with("b", Mode::Shared, &p("src/x.rs")));
        assert!(shared.conflicts_with("b", Mode::Exclusive, &p("src/x.rs")));
    }

    #[test]
    fn held_until_expiry_and_conflicts_are_listed() {
        let l = Arc::new(lock("a", Mode::Exclusive, "src/**"));
        assert!(l.held_at(9));
        assert!(!l.held_at(10));
        let err = LockError::Conflict(vec![l]);
        let details = err.details().unwrap();
        assert_eq!(details["conflicts"][0]["resource"], "src/**");
        assert_eq!(details["conflicts"][0]["token"], 7);
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }
}
