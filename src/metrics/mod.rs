//! Metrics (API §16): the token-tax counters and per-agent hourly buckets.
//!
//! Owns: the `agent_metrics` table, through `AgentMetrics` (and [`record_in`], which the
//! instances domain uses to count heartbeats in its own commit), and the in-memory
//! [`TokenTax`] counters (counted by the [`count_calls`] middleware).
//! Messages in: `RecordMetrics` (increments, group-committed and merged per bucket),
//! `AgentSummary`, `AgentDetail` (reads through the pool).
//! Recorded today: `heartbeats` (instances, via `record_in`), `rest_calls` (requests naming an instance in
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

/// Adds `records` inside `txn`, another domain's write transaction, for a counter that
/// must be durable together with the write it counts: a heartbeat and its `heartbeats`
/// increment commit as one (one `fsync`, and never one without the other). The upsert
/// is the one `AgentMetrics` uses; increments add up, so the two writers never lose one.
pub async fn record_in<C: sea_orm::ConnectionTrait>(
    txn: &C,
    records: &[RecordMetrics],
) -> Result<(), sea_orm::DbErr> {
    if records.is_empty() {
        return Ok(());
    }
    repository::add_in(txn, actor::merge(records)).await
}
