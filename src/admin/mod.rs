//! Operations on the whole database (API §26): online snapshots and the storage check
//! behind `koor doctor`.
//!
//! Owns: no table; reads the whole database through the pool, through `Maintenance`.
//! Messages in: `TakeSnapshot` (a consistent copy in a temporary file of the data
//! directory, removed when the returned [`Snapshot`] is dropped), `CheckStorage`.
//! Events out: none. Invariants: a snapshot is one read transaction, so it holds every
//! write committed before it began and none half-written; at most one copy is made at a time. The
//! database-specific calls live in the private `storage` module only.

mod actor;
mod messages;
mod routes;
mod storage;

pub use actor::Maintenance;
pub use messages::*;
pub use routes::routes;
