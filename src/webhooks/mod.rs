//! Webhooks (API §13): signed, retried, durable delivery of events to HTTP receivers.
//!
//! Owns: `webhooks` and `webhook_deliveries` (the outbox), through `WebhookDispatcher`
//! only — the domain actor and, under `actix::Supervisor`, the delivery worker (`pump`).
//! Messages in: `CreateWebhook`, `DeleteWebhook`, `EnableWebhook`, `RetryDelivery`, `Pump`
//! (atomic), `ListWebhooks`, `ListDeliveries`, `TestWebhook`, `GetDispatchStats`,
//! `BusFrame` (live events wake it), `GetMonitorStats`, `InjectFault`. Events out: none.
//! Invariants: every committed event matching an active webhook becomes exactly one
//! delivery row (cursor and rows commit together); per webhook deliveries are attempted
//! one at a time in event order; a delivery keeps its `webhook-id` and body on every attempt.

mod actor;
mod attempt;
mod messages;
mod model;
mod pump;
mod repository;
mod routes;
pub mod safety;
pub mod sign;

pub use crate::supervise::{GetMonitorStats, InjectFault, MonitorStats};
pub use actor::{DispatchSettings, WebhookDispatcher};
pub use attempt::{MAX_FAILURES, Outcome, decide};
pub use messages::*;
pub use model::*;
pub use pump::payload;
pub use routes::routes;
