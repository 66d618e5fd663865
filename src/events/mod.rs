//! The event bus (API §6).
//!
//! Owns: the `events` table, through `EventBus` only; other domains append their events
//! inside their own write transactions through [`crate::journal`] and report them with
//! `Committed`.
//! Messages in: `Publish` (REST and every background worker's events), `Committed`, `History`,
//! `HistoryAfter` (resume), `Wait` (long-poll), `Subscribe`/`Unsubscribe` (WebSocket
//! sessions), `PruneEvents`, `GetBusStats`.
//! Invariants: ids strictly increase and are never reused (also after pruning); a publish
//! is answered only after its event is committed; events are fanned out in id order with no
//! gap (a missing id is read back from the table); a subscriber either receives every
//! matching event in order or is told exactly where to resume (`koor.lagged`).

mod actor;
mod messages;
mod model;
pub mod pattern;
mod repository;
mod routes;
mod ws;

pub use actor::{BusSettings, EventBus};
pub use messages::*;
pub use model::*;
pub use routes::{SubscriberSettings, routes};
