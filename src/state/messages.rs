//! Messages of the state domain: its whole API.

use std::sync::Arc;

use actix::Message;
use bytes::Bytes;

use super::diff::DiffEntry;
use super::model::{Precondition, StateEntry, StateError, StoredVersion, VersionMeta};
use crate::audit::Audit;
use crate::http::Caller;

/// Reads the current value of each of `keys` back from the database into memory: a
/// follower's cache, after events named them (API §27). Answered after memory changed.
#[derive(Message)]
#[rtype(result = "Result<(), StateError>")]
pub struct Reload(pub Vec<String>);

/// Summaries of every key, ascending (served from memory).
#[derive(Message)]
#[rtype(result = "Vec<Arc<StateEntry>>")]
pub struct ListKeys;

/// Summaries of every key starting with `prefix`, ascending (served from memory).
#[derive(Message)]
#[rtype(result = "Vec<Arc<StateEntry>>")]
pub struct ListPrefix {
    pub prefix: String,
}

/// How many keys exist (served from memory).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountKeys;

/// The current value of `key` (served from memory).
#[derive(Message)]
#[rtype(result = "Option<Arc<StateEntry>>")]
pub struct GetCurrent {
    pub key: String,
}

/// Up to `limit` versions of `key`, newest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<VersionMeta>, StateError>")]
pub struct GetHistory {
    pub key: String,
    pub limit: u64,
}

/// One stored version of `key`.
#[derive(Message)]
#[rtype(result = "Result<StoredVersion, StateError>")]
pub struct GetVersion {
    pub key: String,
    pub version: i64,
}

/// The JSON diff from version `from` to version `to` of `key`.
#[derive(Message)]
#[rtype(result = "Result<Vec<DiffEntry>, StateError>")]
pub struct DiffVersions {
    pub key: String,
    pub from: i64,
    pub to: i64,
}

/// Stores `value` as the next version of `key`.
#[derive(Message)]
#[rtype(result = "Result<Arc<StateEntry>, StateError>")]
pub struct PutValue {
    pub key: String,
    pub value: Bytes,
    pub content_type: String,
    /// Lowercase hex SHA-256 of `value` (computed by the caller, off the actor's thread).
    pub hash: String,
    pub preconditions: Vec<Precondition>,
    /// Who writes (the audit entry's actor).
    /// The `Koor-Fencing-Token` of the write (API §22): refused when lower than the key's
    /// highest token, checked before every precondition.
    pub fence: Option<i64>,
    pub caller: Caller,
    /// The audit entry to record instead of the put's own (a template's application
    /// records `template.apply`), already attributed.
    pub audit_as: Option<Audit>,
}

/// Deletes `key` and its whole history.
#[derive(Message)]
#[rtype(result = "Result<(), StateError>")]
pub struct DeleteKey {
    pub key: String,
    pub preconditions: Vec<Precondition>,
    /// Who deletes (the audit entry's actor).
    /// The `Koor-Fencing-Token` of the write (API §22): refused when lower than the key's
    /// highest token, checked before every precondition.
    pub fence: Option<i64>,
    pub caller: Caller,
}

/// Appends a new version of `key` holding the bytes of `version`.
#[derive(Message)]
#[rtype(result = "Result<Arc<StateEntry>, StateError>")]
pub struct RollbackKey {
    pub key: String,
    pub version: i64,
    pub preconditions: Vec<Precondition>,
    /// Who rolls back (the audit entry's actor).
    /// The `Koor-Fencing-Token` of the write (API §22): refused when lower than the key's
    /// highest token, checked before every precondition.
    pub fence: Option<i64>,
    pub caller: Caller,
}

/// Prunes the history this store's retention allows now (the pruner's run-once step);
/// answers how many versions were deleted (0 when every version is kept).
#[derive(Message)]
#[rtype(result = "Result<u64, StateError>")]
pub struct PruneHistory;
