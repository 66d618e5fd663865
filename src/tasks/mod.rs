//! The work queue with leases (API §23).
//!
//! Owns: the `tasks` table, through `TaskQueue` only.
//! Messages in: `CreateTask`, `ClaimTask` (long-poll), `RenewLease`, `CompleteTask`,
//! `FailTask`, `ReleaseTask`, `CancelTask`, `RetryTask`, and the lease engine's
//! `ExpireLeases` and `HolderLost` (writes, group-committed in order); `GetTask`,
//! `ListTasks`, `GetStats`, `GetGroup`, `WaitGroup` (reads).
//! Events out: `task.created`, `task.leased`, `task.released`, `task.completed`,
//! `task.failed`, `task.expired`, `task.dead`, `task.cancelled`, `task.group.finished`.
//! Invariants: a task is leased to at most one holder at a time; every lease carries a
//! fresh fencing token, durable before it is answered; a passed lease is never shown held.

mod actor;
mod messages;
mod model;
mod repository;
mod routes;

pub use actor::TaskQueue;
pub use messages::*;
pub use model::*;
pub use routes::routes;
