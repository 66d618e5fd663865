//! The event bus (API §6).
//!
//! Owns: the `events` table, through `EventBus` only.
//! Messages in: `Publish` (REST and every domain's system events), `History`, `LastEventId`.
//! Invariants: ids strictly increase and are never reused (also after pruning); a publish
//! is answered only after its event is committed.

mod actor;
mod messages;
mod model;
pub mod pattern;
mod repository;
mod routes;

pub use actor::EventBus;
pub use messages::*;
pub use model::*;
pub use routes::routes;
