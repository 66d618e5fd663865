//! Versioned key/value state (API §4).
//!
//! Owns: the `state_versions` table, through `StateStore` only.
//! Messages in: `ListKeys`, `CountKeys`, `GetCurrent`, `GetHistory`, `GetVersion`, `DiffVersions`
//! (reads) and `PutValue`, `DeleteKey`, `RollbackKey` (writes).
//! Events out: `state.updated` and `state.deleted` (key, version, hash; never the value).
//! Invariants: versions start at 1 and grow by one per write; current values are served
//! from memory and equal the newest committed row; a write is answered only after its
//! transaction commits (writes queued meanwhile are committed together: group commit).

mod actor;
pub mod diff;
mod messages;
mod model;
mod repository;
mod routes;

pub use actor::{DocKind, StateDocs, StateStore, VersionedStore};
pub use messages::*;
pub use model::*;
pub use repository::Tables;
pub use routes::{
    FENCING_HEADER, current_or_not_modified, current_response, fencing_token, preconditions, routes,
};
