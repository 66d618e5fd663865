//! Messages of the locks domain: its whole API. (`ExpireLeases` and `HolderLost` come from
//! the lease engine, `crate::leases`.)

use std::sync::Arc;

use actix::Message;
use tokio::sync::watch;

use super::glob::{LockPath, Pattern};
use super::model::{Lock, LockError, NewLock};
use crate::http::Caller;

/// Acquires a lock now, or refuses with the conflicting locks (`LockError::Conflict`).
/// Waiting for them to go away is [`super::acquire`], which sends this again.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Arc<Lock>, LockError>")]
pub struct AcquireLock {
    pub lock: NewLock,
    /// Who asks (the audit entry's actor).
    pub caller: Caller,
}

/// Extends a held lock by `ttl_micros` from now (else by its last ttl), keeping its token.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Arc<Lock>, LockError>")]
pub struct RenewLock {
    pub id: String,
    pub token: i64,
    pub ttl_micros: Option<i64>,
    pub caller: Caller,
}

/// Releases a held lock with its token, or without one (a forced release); answered with
/// the lock as it was.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Arc<Lock>, LockError>")]
pub struct ReleaseLock {
    pub id: String,
    pub token: Option<i64>,
    pub caller: Caller,
}

/// Held locks, newest first: those of `holder` (when set) whose pattern can match a common
/// path with `resource` (when set), at most `limit`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<Arc<Lock>>")]
pub struct ListLocks {
    pub holder: Option<String>,
    pub resource: Option<Pattern>,
    pub limit: usize,
}

/// Which literal paths held locks of holders other than `holder` (of every holder when
/// `None`) match: one `(path index, lock)` per pair, in path order, then token order.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<(usize, Arc<Lock>)>")]
pub struct CheckPaths {
    pub paths: Vec<LockPath>,
    pub holder: Option<String>,
}

/// The held lock `id`, if it is held.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Option<Arc<Lock>>")]
pub struct GetLock {
    pub id: String,
}

/// A receiver whose value changes after every commit that ended a lock (released, forced,
/// expired, holder lost): what a waiting acquisition waits on.
#[derive(Message, Debug)]
#[rtype(result = "watch::Receiver<u64>")]
pub struct WatchReleases;
