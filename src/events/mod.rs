//! The event bus (API §6).
//!
//! Owns: the `events` table, through `EventBus` only.
//! Messages in: `Publish` (REST and every domain's system events), `History`,
//! `HistoryAfter` (resume), `Wait` (long-poll), `Subscribe`/`Unsubscribe` (WebSocket
//! sessions), `PruneEvents`, `GetBusStats`.
//! Invariants: ids strictly increase and are never reused (also after pruning); a publish
//! is answered only after its event is committed; a subscriber either receives every
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
