//! Locks: reservations of files and other resources (API §24), leases of the lease engine.
//!
//! Owns: the `locks` table, through `LockTable` only.
//! Messages in: `AcquireLock`, `RenewLock`, `ReleaseLock`, `ExpireLeases`, `HolderLost`
//! (writes, group-committed in order) and `ListLocks`, `CheckPaths`, `WatchReleases` (reads,
//! from memory); [`acquire`] is the waiting acquisition (`wait_seconds`) over them.
//! Events out: `lock.acquired`, `lock.released` (cause `released`, `forced`, `holder_lost`),
//! `lock.expired`. Audit: `lock.acquire`, `lock.renew`, `lock.release`, `lock.force_release`.
//! Invariants: two held locks of different holders, one of them exclusive, never share a
//! path ([`glob`]); every token comes from the shared `Fencing` counter, durably raised in
//! the granting transaction; a lock past its `expires_at` is never shown or counted as held.

mod actor;
pub mod glob;
mod index;
mod messages;
mod model;
mod repository;
mod routes;

pub use actor::{LockTable, acquire};
pub use glob::{GlobError, LockPath, Pattern};
pub use messages::*;
pub use model::*;
pub use routes::routes;
