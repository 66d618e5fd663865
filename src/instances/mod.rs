//! The agent registry (API §7).
//!
//! Owns: the `instances` table, through `InstanceRegistry` only.
//! Messages in: `RegisterInstance`, `Heartbeat`, `Activate`, `SetCapabilities`,
//! `SetIntent`, `Deregister`, `MarkStale` (writes, group-committed in order) and
//! `GetInstance`, `ListInstances`, `Identify`, `CountInstances` (reads, from memory).
//! Events out: `agent.registered`, `agent.active` (activated, or revived from stale by a
//! heartbeat), `agent.health` (a heartbeat changed the reported health) and
//! `agent.deregistered` (`agent.stale` comes from the liveness monitor). Metrics out: `heartbeats` per instance and hour.
//! Invariants: tokens are returned once and stored only as digests; a pending instance
//! never goes stale; an instance is reported newly stale by exactly one `MarkStale`.

mod actor;
mod messages;
mod model;
mod profile;
mod repository;
mod routes;

pub use actor::InstanceRegistry;
pub use messages::*;
pub use model::*;
pub use profile::*;
pub use routes::routes;
