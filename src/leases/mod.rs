//! The lease engine shared by tasks and locks (API §22).
//!
//! Owns: the server-wide fencing-token counter (`fencing_counter`, one row), through
//! [`Fencing`]; the `LeaseSweeper` worker. It holds no lease itself: each lease owner (the
//! task queue, the lock table) keeps its own leases and implements two messages:
//! - [`ExpireLeases`]: expire every lease whose `expires_at` has passed, publishing the
//!   events (sent by the sweeper every `interval`, and by tests through `RunOnce`);
//! - [`HolderLost`]: the holders named are gone (deregistered, or marked stale by the
//!   liveness check); release their leases at once. The instance registry sends it after
//!   the commit that removed them, to every owner that asked with `WatchHolders`.
//!
//! Invariants: tokens are positive, strictly increasing across every owner, and never
//! reused, also across restarts: a token is handed out only after the transaction that
//! raised the stored counter to at least that token has committed. Expiry is enforced by
//! the owners at every read and operation; the sweeper only makes the events timely.

mod fencing;
mod sweeper;

pub use fencing::Fencing;
pub use sweeper::{LeaseSweeper, RunSweep};

use actix::Message;

/// Expire every lease whose `expires_at` is at or before now; answered with how many
/// leases expired.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "usize")]
pub struct ExpireLeases;

/// The holders named lost their right to hold anything (deregistered, or stale).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct HolderLost {
    pub ids: Vec<String>,
}
