//! Access keys: scopes, grants (what the gate knows of a live key), secrets and digests.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{DomainError, ErrorKind};
use crate::time::format_micros;

/// Prefix of every access key secret.
pub const SECRET_PREFIX: &str = "koor_";

/// Longest key name, project name and most projects per key.
pub const MAX_NAME_BYTES: usize = 128;
pub const MAX_PROJECTS: usize = 100;
/// Most keys that may exist (not revoked) at once.
pub const MAX_KEYS: usize = 10_000;

/// What a principal may do (API §25). Each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn parse(raw: &str) -> Option<Scope> {
        match raw {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Every scope up to and including `self`.
    pub fn implied(self) -> &'static [&'static str] {
        match self {
            Scope::Read => &["read"],
            Scope::Write => &["read", "write"],
            Scope::Admin => &["read", "write", "admin"],
        }
    }
}

/// A per-key (or per-principal) token bucket that reports its state.
pub type Bucket = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::DefaultClock,
    StateInformationMiddleware,
>;

/// The quota of `rate` requests per second with bursts of `burst`, if both are usable.
pub fn quota(rate: f64, burst: f64) -> Option<Quota> {
    if !(rate.is_finite() && rate > 0.0) {
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / rate.min(1e9));
    let burst = NonZeroU32::new(burst.clamp(1.0, u32::MAX as f64) as u32)?;
    Quota::with_period(period).map(|q| q.allow_burst(burst))
}

/// A live key as the gate sees it: never its secret.
pub struct Grant {
    pub id: String,
    pub name: String,
    /// The scopes as given (sorted, deduplicated).
    pub scopes: Vec<Scope>,
    /// The highest scope: what the key may do.
    pub level: Scope,
    /// The projects the key is restricted to; `None` = every project.
    pub projects: Option<Vec<String>>,
    pub expires_at: Option<i64>,
    pub rate_limit: Option<f64>,
    pub created_at: i64,
    /// Unix microseconds of the last authenticated request, 0 = never (kept in memory).
    pub last_used_at: AtomicI64,
    /// The key's own bucket when it has a `rate_limit`.
    pub bucket: Option<Arc<Bucket>>,
    /// The key's `rate_limit` as a quota (for the RateLimit headers).
    pub quota: Option<(f64, f64)>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("level", &self.level)
            .field("projects", &self.projects)
            .finish_non_exhaustive()
    }
}

impl Grant {
    /// A grant for a stored key.
    pub fn new(key: &KeyRecord) -> Grant {
        let level = key.scopes.iter().copied().max().unwrap_or(Scope::Read);
        let (bucket, quota_pair) = match key.rate_limit.and_then(|r| quota(r, 2.0 * r)) {
            Some(q) => {
                let rate = key.rate_limit.unwrap_or_default();
                (
                    Some(Arc::new(
                        RateLimiter::direct(q).with_middleware::<StateInformationMiddleware>(),
                    )),
                    Some((rate, (2.0 * rate).max(1.0))),
                )
            }
            None => (None, None),
        };
        Grant {
            id: key.id.clone(),
            name: key.name.clone(),
            scopes: key.scopes.clone(),
            level,
            projects: key.projects.clone(),
            expires_at: key.expires_at,
            rate_limit: key.rate_limit,
            created_at: key.created_at,
            last_used_at: AtomicI64::new(key.last_used_at.unwrap_or(0)),
            bucket,
            quota: quota_pair,
        }
    }

    /// True when the key has expired at `now`.
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// True when the key may touch `project`.
    pub fn allows(&self, project: &str) -> bool {
        self.projects
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p == project))
    }

    /// The key as listed (no secret).
    pub fn view(&self) -> Value {
        let last = self.last_used_at.load(Ordering::Relaxed);
        json!({
            "id": self.id,
            "name": self.name,
            "scopes": self.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "projects": self.projects,
            "expires_at": self.expires_at.map(format_micros),
            "rate_limit": self.rate_limit,
            "created_at": format_micros(self.created_at),
            "last_used_at": (last > 0).then(|| format_micros(last)),
        })
    }
}

/// A key as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    /// Lowercase hex SHA-256 of the secret.
    pub digest: String,
    pub scopes: Vec<Scope>,
    pub projects: Option<Vec<String>>,
    pub expires_at: Option<i64>,
    pub rate_limit: Option<f64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub projects: Option<Vec<String>>,
    pub expires_at: Option<i64>,
    pub rate_limit: Option<f64>,
}

/// A key with its secret: the answer of a create or a rotation, the only time the secret
/// is shown.
#[derive(Debug, Clone)]
pub struct Issued {
    pub grant: Arc<Grant>,
    pub secret: String,
}

impl Serialize for Issued {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = self.grant.view();
        v["key"] = Value::String(self.secret.clone());
        v.serialize(s)
    }
}

/// A fresh secret: `koor_` and 32 bytes from the operating system's CSPRNG, in hex.
pub fn new_secret() -> Result<String, KeyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Storage(format!("no randomness: {e}")))?;
    Ok(format!("{SECRET_PREFIX}{}", hex::encode(bytes)))
}

/// The SHA-256 of a secret: what is stored and looked up.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// What can go wrong with keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("a key named {0:?} already exists")]
    Duplicate(String),
    #[error("no key with id {0:?}")]
    NotFound(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("the keys service is unavailable")]
    Unavailable,
}

impl DomainError for KeyError {
    fn kind(&self) -> ErrorKind {
        match self {
            KeyError::Invalid(_) => ErrorKind::BadRequest,
            KeyError::Duplicate(_) => ErrorKind::Conflict,
            KeyError::NotFound(_) => ErrorKind::NotFound,
            KeyError::Storage(_) => ErrorKind::Internal,
            KeyError::Unavailable => ErrorKind::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_digest_stably() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
    }

    #[test]
    fn scopes_are_ordered_and_projects_restrict() {
        assert!(Scope::Read < Scope::Write && Scope::Write < Scope::Admin);
        let rec = KeyRecord {
            id: "1".into(),
            name: "n".into(),
            digest: String::new(),
            scopes: vec![Scope::Read, Scope::Write],
            projects: Some(vec!["a".into()]),
            expires_at: Some(10),
            rate_limit: Some(2.0),
            created_at: 1,
            last_used_at: None,
            revoked_at: None,
        };
        let g = Grant::new(&rec);
        assert_eq!(g.level, Scope::Write);
        assert!(g.allows("a") && !g.allows("b"));
        assert!(!g.expired(9) && g.expired(10));
        assert!(g.bucket.is_some());
        assert!(quota(0.0, 1.0).is_none() && quota(5.0, 5.0).is_some());
    }
}
