//! Liveness (API §8): the background worker that marks silent agents stale.
//!
//! Owns: no table; it asks the `InstanceRegistry` to move `active` instances last seen
//! before `now - stale_after` to `stale` (`MarkStale`) and publishes one `agent.stale`
//! event per instance moved. Messages in: `RunOnce` (one sweep: the timer's step and
//! `POST /api/liveness/check`), `GetMonitorStats`, and the test hook `InjectFault`.
//! Supervision: started under `actix::Supervisor`; a panicking sweep is caught by
//! [`crate::supervise::guarded`], the worker restarts behind the same `Addr`, and only
//! that sweep is lost (its instances are caught by the next one).

mod monitor;
mod routes;

pub use crate::supervise::{GetMonitorStats, InjectFault, MonitorStats};
pub use monitor::{LivenessMonitor, LivenessSettings, RunOnce, SweepError};
pub use routes::routes;
