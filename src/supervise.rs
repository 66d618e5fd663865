//! Background workers that survive their own panics.
//!
//! `actix::Supervisor` restarts an actor only when the actor *stops*. A panic that
//! unwinds out of a handler instead kills the task that runs the actor: its mailbox is
//! closed for good and `Supervised::restarting` never runs. So every step of a worker
//! runs through [`guarded`]: a panic while building or polling the step is caught,
//! logged, answered as [`WorkerFailed`], and the actor is stopped — which the supervisor
//! turns into a restart on the same context, so the same `Addr` keeps working and only
//! the failed step is lost. Steps run as `AtomicResponse`s (one at a time), so no other
//! in-flight work is dropped by the restart.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use actix::prelude::*;
use futures_util::FutureExt;

use crate::error::{DomainError, ErrorKind};

/// A worker's step panicked; the worker has been restarted and that step's work is lost.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{worker} failed and was restarted: {message}")]
pub struct WorkerFailed {
    pub worker: &'static str,
    pub message: String,
}

impl DomainError for WorkerFailed {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Test hook: the worker's next step panics (to prove the supervisor restarts it).
#[doc(hidden)]
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectFault;

/// How often a worker has completed a step and restarted.
#[derive(Message)]
#[rtype(result = "MonitorStats")]
pub struct GetMonitorStats;

/// The answer to [`GetMonitorStats`].
#[derive(Clone, Copy, Debug, Default, MessageResponse, PartialEq, Eq)]
pub struct MonitorStats {
    /// Steps that completed.
    pub sweeps: u64,
    /// Restarts after a failed step.
    pub restarts: u64,
}

/// What every supervised worker keeps across its restarts: its counters and the test
/// fault. A worker holds one in a field named `worker` and gets the `InjectFault` and
/// `GetMonitorStats` handlers from [`worker_messages!`].
#[derive(Debug, Default)]
pub struct WorkerState {
    stats: MonitorStats,
    fault_armed: bool,
}

impl WorkerState {
    /// The counters.
    pub fn stats(&self) -> MonitorStats {
        self.stats
    }

    /// Makes the next step panic.
    pub fn arm_fault(&mut self) {
        self.fault_armed = true;
    }

    /// Whether this step must panic (disarming the fault).
    pub fn take_fault(&mut self) -> bool {
        std::mem::take(&mut self.fault_armed)
    }

    /// Counts a completed step.
    pub fn step_done(&mut self) {
        self.stats.sweeps += 1;
    }

    /// Counts and logs a restart; call it from `Supervised::restarting`.
    pub fn restarted(&mut self, worker: &'static str) {
        self.stats.restarts += 1;
        tracing::warn!(worker, restarts = self.stats.restarts, "worker restarted");
    }
}

/// Implements `InjectFault` and `GetMonitorStats` for a worker actor whose
/// [`WorkerState`] is its field `worker`.
macro_rules! worker_messages {
    ($actor:ty) => {
        impl actix::Handler<$crate::supervise::InjectFault> for $actor {
            type Result = ();

            fn handle(&mut self, _: $crate::supervise::InjectFault, _: &mut Self::Context) {
                self.worker.arm_fault();
            }
        }

        impl actix::Handler<$crate::supervise::GetMonitorStats> for $actor {
            type Result = $crate::supervise::MonitorStats;

            fn handle(
                &mut self,
                _: $crate::supervise::GetMonitorStats,
                _: &mut Self::Context,
            ) -> $crate::supervise::MonitorStats {
                self.worker.stats()
            }
        }
    };
}
pub(crate) use worker_messages;

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Runs one step of worker `A`: `build` makes the step's future, which is then polled to
/// completion. A panic in either is caught; the actor is then stopped so that its
/// supervisor restarts it, and the caller gets [`WorkerFailed`]. Return the result from
/// a handler as `AtomicResponse::new(guarded(...))`.
pub fn guarded<A, T, F>(
    worker: &'static str,
    build: impl FnOnce() -> F,
) -> ResponseActFuture<A, Result<T, WorkerFailed>>
where
    A: Actor<Context = Context<A>> + Supervised,
    F: Future<Output = T> + 'static,
    T: 'static,
{
    let fut = match std::panic::catch_unwind(AssertUnwindSafe(build)) {
        Ok(fut) => AssertUnwindSafe(fut).catch_unwind().left_future(),
        Err(payload) => std::future::ready(Err(payload)).right_future(),
    };
    Box::pin(
        actix::fut::wrap_future::<_, A>(fut).map(move |outcome, _act, ctx| match outcome {
            Ok(value) => Ok(value),
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                tracing::error!(worker, panic = %message, "worker step panicked; restarting the worker");
                ctx.stop();
                Err(WorkerFailed { worker, message })
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker whose step panics when asked to.
    struct Flaky {
        restarts: u32,
    }

    impl Actor for Flaky {
        type Context = Context<Self>;
    }

    impl Supervised for Flaky {
        fn restarting(&mut self, _: &mut Context<Self>) {
            self.restarts += 1;
        }
    }

    #[derive(Message)]
    #[rtype(result = "Result<u32, WorkerFailed>")]
    struct Step {
        panic_in_build: bool,
        panic_in_future: bool,
    }

    impl Handler<Step> for Flaky {
        type Result = AtomicResponse<Self, Result<u32, WorkerFailed>>;

        fn handle(&mut self, msg: Step, _: &mut Context<Self>) -> Self::Result {
            let restarts = self.restarts;
            AtomicResponse::new(guarded("flaky", move || {
                if msg.panic_in_build {
                    panic!("build failed");
                }
                async move {
                    if msg.panic_in_future {
                        panic!("step failed at {restarts}");
                    }
                    restarts
                }
            }))
        }
    }

    #[actix::test]
    async fn a_panicking_step_restarts_the_worker_behind_the_same_address() {
        let addr = Supervisor::start(|_| Flaky { restarts: 0 });
        let ok = |b, f| Step {
            panic_in_build: b,
            panic_in_future: f,
        };
        assert_eq!(addr.send(ok(false, false)).await.unwrap().unwrap(), 0);
        let failed = addr.send(ok(false, true)).await.unwrap().unwrap_err();
        assert_eq!(failed.message, "step failed at 0");
        assert_eq!(addr.send(ok(false, false)).await.unwrap().unwrap(), 1);
        let failed = addr.send(ok(true, false)).await.unwrap().unwrap_err();
        assert_eq!(failed.message, "build failed");
        assert_eq!(addr.send(ok(false, false)).await.unwrap().unwrap(), 2);
    }
}
