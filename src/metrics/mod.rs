//! Metrics (API §16): the token-tax counters and per-agent hourly buckets.
//!
//! Owns: the `agent_metrics` table, through `AgentMetrics` only, and the in-memory
//! [`TokenTax`] counters (counted by the [`count_calls`] middleware).
//! Messages in: `RecordMetrics` (increments, group-committed and merged per bucket),
//! `AgentSummary`, `AgentDetail` (reads through the pool).
//! Recorded today: `heartbeats` (instances), `rest_calls` (requests naming an instance in
//! `X-Koor-Instance` / `X-Koor-Instance-Token`); compliance and LLM counters as those
//! domains land. Invariants: values only grow; a period is the UTC hour `YYYY-MM-DDTHH`.

mod actor;
mod calls;
mod messages;
mod model;
mod repository;
mod routes;

pub use actor::AgentMetrics;
pub use calls::{TokenTax, count_calls};
pub use messages::*;
pub use model::*;
pub use routes::routes;
