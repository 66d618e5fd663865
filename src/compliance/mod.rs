//! Compliance (API §12): active instances checked against their project's contracts.
//!
//! Owns: the `compliance_runs` table, through `ComplianceMonitor` only — a worker under
//! `actix::Supervisor` whose passes run through `supervise::guarded` (a panicking pass is
//! lost, the worker restarts behind the same `Addr`). Messages in: `RunOnce` (the timer's
//! step and `POST /api/compliance/run`), `RunHistory`, `GetMonitorStats`, `InjectFault`.
//! Events out: `compliance.violation` per failing run. Metrics out: `compliance_runs`
//! and `violations` per instance. Invariants: a pass's runs are stored in one transaction
//! before it answers; ids only grow.

mod model;
mod monitor;
mod repository;
mod routes;

pub use crate::supervise::{GetMonitorStats, InjectFault, MonitorStats};
pub use model::*;
pub use monitor::{ComplianceDeps, ComplianceMonitor, RunHistory, RunOnce};
pub use routes::routes;
