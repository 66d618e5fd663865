//! `LivenessMonitor`: a supervised worker; one sweep at a time (`AtomicResponse`).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::error::{DomainError, ErrorKind};
use crate::instances::{Instance, InstanceError, InstanceRegistry, MarkStale};
use crate::supervise::{WorkerFailed, WorkerState, guarded, worker_messages};
use crate::time::now_micros;

/// The worker's name in logs and errors; also the `source` of `agent.stale` events.
const WORKER: &str = "liveness-monitor";

/// Timing of the monitor.
#[derive(Clone, Copy, Debug)]
pub struct LivenessSettings {
    /// An active instance silent for longer than this becomes stale.
    pub stale_after: Duration,
    /// Period of the background sweep; `None` disables it (forced sweeps still work).
    pub interval: Option<Duration>,
}

/// Runs one sweep now; answered with the instances it moved to `stale`.
#[derive(Message)]
#[rtype(result = "Result<Vec<Arc<Instance>>, SweepError>")]
pub struct RunOnce;

/// Why a sweep failed.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Failed(#[from] WorkerFailed),
    #[error(transparent)]
    Registry(#[from] InstanceError),
    #[error("the instance registry is not running")]
    Unavailable,
}

impl DomainError for SweepError {
    fn kind(&self) -> ErrorKind {
        match self {
            SweepError::Failed(e) => e.kind(),
            SweepError::Registry(e) => e.kind(),
            SweepError::Unavailable => ErrorKind::Unavailable,
        }
    }
}

/// The liveness worker.
pub struct LivenessMonitor {
    registry: Addr<InstanceRegistry>,
    settings: LivenessSettings,
    worker: WorkerState,
}

impl LivenessMonitor {
    /// Starts the monitor under a supervisor.
    pub fn start(
        registry: Addr<InstanceRegistry>,
        settings: LivenessSettings,
    ) -> Addr<LivenessMonitor> {
        Supervisor::start(move |_| LivenessMonitor {
            registry,
            settings,
            worker: WorkerState::default(),
        })
    }
}

impl Actor for LivenessMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Also runs after every restart: the context's timers are reset by a restart.
        if let Some(period) = self.settings.interval {
            ctx.run_interval(period, |_, ctx| ctx.notify(RunOnce));
        }
    }
}

impl Supervised for LivenessMonitor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.worker.restarted(WORKER);
    }
}

impl Handler<RunOnce> for LivenessMonitor {
    type Result = AtomicResponse<Self, Result<Vec<Arc<Instance>>, SweepError>>;

    fn handle(&mut self, _: RunOnce, _: &mut Self::Context) -> Self::Result {
        let registry = self.registry.clone();
        let stale_after = i64::try_from(self.settings.stale_after.as_micros()).unwrap_or(i64::MAX);
        let fault = self.worker.take_fault();
        let step = guarded(WORKER, move || async move {
            if fault {
                panic!("injected fault");
            }
            let seen_before = now_micros().saturating_sub(stale_after);
            // The registry commits the status changes and their `agent.stale` events together.
            let moved = registry
                .send(MarkStale { seen_before })
                .await
                .map_err(|_| SweepError::Unavailable)??;
            if !moved.is_empty() {
                tracing::info!(count = moved.len(), "instances marked stale");
            }
            Ok::<_, SweepError>(moved)
        });
        AtomicResponse::new(Box::pin(step.map(|outcome, act: &mut Self, _| {
            let moved = outcome??;
            act.worker.step_done();
            Ok(moved)
        })))
    }
}

worker_messages!(LivenessMonitor);
