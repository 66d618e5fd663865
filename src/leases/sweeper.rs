//! `LeaseSweeper`: a supervised worker that asks every lease owner to expire what has
//! passed, one sweep at a time (`AtomicResponse`), every `interval`.

use std::time::Duration;

use actix::prelude::*;

use super::ExpireLeases;
use crate::supervise::{WorkerFailed, WorkerState, guarded, worker_messages};

/// The worker's name in logs and errors.
const WORKER: &str = "lease-sweeper";

/// Runs one sweep now; answered with how many leases expired.
#[derive(Message)]
#[rtype(result = "Result<usize, WorkerFailed>")]
pub struct RunSweep;

/// The lease sweeper.
pub struct LeaseSweeper {
    owners: Vec<Recipient<ExpireLeases>>,
    interval: Option<Duration>,
    worker: WorkerState,
}

impl LeaseSweeper {
    /// Starts the sweeper under a supervisor; `interval` `None` disables the timer (a
    /// sweep still runs on `RunSweep`).
    pub fn start(
        owners: Vec<Recipient<ExpireLeases>>,
        interval: Option<Duration>,
    ) -> Addr<LeaseSweeper> {
        Supervisor::start(move |_| LeaseSweeper {
            owners,
            interval,
            worker: WorkerState::default(),
        })
    }
}

impl Actor for LeaseSweeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Also runs after every restart: the context's timers are reset by a restart.
        if let Some(period) = self.interval {
            ctx.run_interval(period, |_, ctx| ctx.notify(RunSweep));
        }
    }
}

impl Supervised for LeaseSweeper {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.worker.restarted(WORKER);
    }
}

impl Handler<RunSweep> for LeaseSweeper {
    type Result = AtomicResponse<Self, Result<usize, WorkerFailed>>;

    fn handle(&mut self, _: RunSweep, _: &mut Self::Context) -> Self::Result {
        let owners = self.owners.clone();
        let fault = self.worker.take_fault();
        let step = guarded(WORKER, move || async move {
            if fault {
                panic!("injected fault");
            }
            let sent = owners.iter().map(|o| o.send(ExpireLeases));
            let expired = futures_util::future::join_all(sent)
                .await
                .into_iter()
                .map(|r| r.unwrap_or(0))
                .sum::<usize>();
            if expired > 0 {
                tracing::debug!(expired, "leases expired");
            }
            expired
        });
        AtomicResponse::new(Box::pin(step.map(|outcome, act: &mut Self, _| {
            let expired = outcome?;
            act.worker.step_done();
            Ok(expired)
        })))
    }
}

worker_messages!(LeaseSweeper);
