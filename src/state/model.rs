//! State domain types.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::error::{DomainError, ErrorKind};

/// The current value of a key, as held in the store's memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateEntry {
    /// The row this version is stored in (its place in the key's chain of versions).
    pub id: i64,
    pub key: String,
    pub version: i64,
    /// Lowercase hex SHA-256 of `value`.
    pub hash: String,
    pub content_type: String,
    /// Unix microseconds.
    pub updated_at: i64,
    pub value: Bytes,
    /// The fencing token this version was written with (API §22), if any.
    pub fencing_token: Option<i64>,
}

impl StateEntry {
    /// The quoted entity tag of this value.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.hash)
    }
}

/// One row of a key's history (no value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionMeta {
    pub version: i64,
    pub hash: String,
    pub content_type: String,
    pub updated_at: i64,
    /// The fencing token the version was written with (API §22), if any.
    pub fencing_token: Option<i64>,
}

/// The bytes and content type of one stored version.
#[derive(Clone, Debug)]
pub struct StoredVersion {
    pub version: i64,
    pub content_type: String,
    pub hash: String,
    pub value: Bytes,
}

/// One tag of an `If-Match` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchTag {
    /// `*`: the key must exist.
    Any,
    /// `"<hash>"` (a `W/` prefix is ignored): the current hash must equal it.
    Hash(String),
    /// A bare version number: the current version must equal it.
    Version(i64),
}

/// A condition a write must meet, checked against the value current when the write is
/// applied (inside the store's single writer, so two racing writers cannot both pass).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// `If-Match`: any one of the tags must hold.
    Match(Vec<MatchTag>),
    /// `If-None-Match: *`: the key must not exist (create only).
    Absent,
    /// `?if_version=N`: the current version must be N (0 = the key must not exist).
    Version(i64),
}

impl Precondition {
    /// True when the condition holds for `current`.
    pub fn holds(&self, current: Option<&StateEntry>) -> bool {
        match (self, current) {
            (Precondition::Absent, cur) => cur.is_none(),
            (Precondition::Version(0), cur) => cur.is_none(),
            (Precondition::Version(v), Some(cur)) => cur.version == *v,
            (Precondition::Version(_), None) => false,
            (Precondition::Match(_), None) => false,
            (Precondition::Match(tags), Some(cur)) => tags.iter().any(|t| match t {
                MatchTag::Any => true,
                MatchTag::Hash(h) => *h == cur.hash,
                MatchTag::Version(v) => *v == cur.version,
            }),
        }
    }

    /// Parses an `If-Match` header value: `*`, or a comma-separated list of quoted entity
    /// tags and bare version numbers. `None` when nothing in it is usable.
    pub fn parse_if_match(header: &str) -> Option<Precondition> {
        let mut tags = Vec::new();
        for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let part = part.strip_prefix("W/").unwrap_or(part);
            if part == "*" {
                tags.push(MatchTag::Any);
            } else if let Some(inner) = part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                tags.push(MatchTag::Hash(inner.to_string()));
            } else if let Ok(v) = part.parse::<i64>() {
                tags.push(MatchTag::Version(v));
            } else {
                return None;
            }
        }
        (!tags.is_empty()).then_some(Precondition::Match(tags))
    }
}

/// True when an `If-None-Match` header value matches the entity tag `etag` (quoted):
/// `*`, or any listed tag equal to it after stripping `W/`. A bare hash never matches.
pub fn if_none_match_hits(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// What went wrong in the state domain.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("key not found: {0}")]
    KeyNotFound(String),
    #[error("version {version} of key {key} not found")]
    VersionNotFound { key: String, version: i64 },
    #[error("{0}")]
    Invalid(String),
    #[error("precondition failed: the current version is {}", .current.map(|v| v.to_string()).unwrap_or_else(|| "none (the key does not exist)".into()))]
    PreconditionFailed { current: Option<i64> },
    #[error(
        "fenced: a write with fencing token {highest} (or higher) has already been made to this key"
    )]
    Fenced { highest: i64 },
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the state store is not running")]
    Unavailable,
}

impl DomainError for StateError {
    fn kind(&self) -> ErrorKind {
        match self {
            StateError::KeyNotFound(_) | StateError::VersionNotFound { .. } => ErrorKind::NotFound,
            StateError::Invalid(_) => ErrorKind::BadRequest,
            StateError::PreconditionFailed { .. } => ErrorKind::PreconditionFailed,
            StateError::Fenced { .. } => ErrorKind::Conflict,
            StateError::Storage(_) => ErrorKind::Internal,
            StateError::Unavailable => ErrorKind::Unavailable,
        }
    }

    fn details(&self) -> Option<Map<String, Value>> {
        match self {
            StateError::PreconditionFailed { current } => {
                let mut m = Map::new();
                m.insert("current_version".into(), json!(current));
                Some(m)
            }
            StateError::Fenced { highest } => {
                let mut m = Map::new();
                m.insert("highest_token".into(), json!(highest));
                Some(m)
            }
            _ => None,
        }
    }
}

impl From<sea_orm::DbErr> for StateError {
    fn from(e: sea_orm::DbErr) -> Self {
        StateError::Storage(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: i64, hash: &str) -> StateEntry {
        StateEntry {
            id: version,
            fencing_token: None,
            key: "k".into(),
            version,
            hash: hash.into(),
            content_type: "application/json".into(),
            updated_at: 0,
            value: Bytes::from_static(b"1"),
        }
    }

    #[test]
    fn preconditions_table() {
        let cur = entry(3, "abc");
        let cases = [
            ("\"abc\"", Some(&cur), true),
            ("W/\"abc\"", Some(&cur), true),
            ("\"zzz\", \"abc\"", Some(&cur), true),
            ("\"zzz\"", Some(&cur), false),
            ("3", Some(&cur), true),
            ("2", Some(&cur), false),
            ("*", Some(&cur), true),
            ("*", None, false),
            ("\"abc\"", None, false),
        ];
        for (header, current, want) in cases {
            let p = Precondition::parse_if_match(header).unwrap();
            assert_eq!(p.holds(current), want, "{header} vs {current:?}");
        }
        assert!(Precondition::parse_if_match("abc").is_none());
        assert!(Precondition::Absent.holds(None));
        assert!(!Precondition::Absent.holds(Some(&cur)));
        assert!(Precondition::Version(0).holds(None));
        assert!(Precondition::Version(3).holds(Some(&cur)));
        assert!(!Precondition::Version(4).holds(Some(&cur)));
    }

    #[test]
    fn if_none_match_table() {
        let etag = "\"abc\"";
        assert!(if_none_match_hits("\"abc\"", etag));
        assert!(if_none_match_hits("W/\"abc\"", etag));
        assert!(if_none_match_hits("\"x\", \"abc\"", etag));
        assert!(if_none_match_hits("*", etag));
        assert!(!if_none_match_hits("abc", etag));
        assert!(!if_none_match_hits("\"x\"", etag));
    }
}
