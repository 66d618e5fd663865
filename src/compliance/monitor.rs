//! `ComplianceMonitor`: a supervised worker that checks active instances against their
//! project's contracts; one pass at a time (`AtomicResponse`), each through
//! [`crate::supervise::guarded`] like the liveness worker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use serde_json::json;

use super::model::{ComplianceError, ComplianceRun};
use super::repository::RunRepository;
use crate::batch::Outbox;
use crate::contracts::Contract;
use crate::events::Publish;
use crate::instances::{InstanceFilter, InstanceRegistry, ListInstances, Status};
use crate::journal::Records;
use crate::metrics::RecordMetrics;
use crate::specs::{SpecRegistry, split_key};
use crate::state::ListPrefix;
use crate::supervise::{WorkerState, guarded, worker_messages};
use crate::time::now_micros;

/// The worker's name in logs and errors; also the `source` of its events.
const WORKER: &str = "compliance-scheduler";

/// Runs one compliance pass now; answered with its runs (already stored).
#[derive(Message)]
#[rtype(result = "Result<Vec<ComplianceRun>, ComplianceError>")]
pub struct RunOnce;

/// Up to `limit` stored runs, newest first, optionally of one instance.
#[derive(Message)]
#[rtype(result = "Result<Vec<ComplianceRun>, ComplianceError>")]
pub struct RunHistory {
    pub instance_id: Option<String>,
    pub limit: u64,
}

/// The domains a pass reads and reports to.
#[derive(Clone)]
pub struct ComplianceDeps {
    pub instances: Addr<InstanceRegistry>,
    pub specs: Addr<SpecRegistry>,
    /// Where the violation events go after the commit.
    pub outbox: Outbox,
}

/// The compliance worker.
pub struct ComplianceMonitor {
    repo: RunRepository,
    deps: ComplianceDeps,
    interval: Option<Duration>,
    worker: WorkerState,
}

impl ComplianceMonitor {
    /// Starts the worker under a supervisor; `interval` `None` disables the timer.
    pub fn start(
        db: DatabaseConnection,
        deps: ComplianceDeps,
        interval: Option<Duration>,
    ) -> Addr<ComplianceMonitor> {
        let repo = RunRepository::new(db);
        Supervisor::start(move |_| ComplianceMonitor {
            repo,
            deps,
            interval,
            worker: WorkerState::default(),
        })
    }
}

/// One pass: every active instance with a workspace, every valid contract of that project
/// in spec-name order.
async fn pass(
    repo: RunRepository,
    deps: ComplianceDeps,
    fault: bool,
) -> Result<Vec<ComplianceRun>, ComplianceError> {
    if fault {
        panic!("injected fault");
    }
    let active = deps
        .instances
        .send(ListInstances {
            filter: InstanceFilter {
                status: Some(Status::Active),
                ..Default::default()
            },
        })
        .await?;
    let mut active: Vec<_> = active.iter().filter(|i| !i.workspace.is_empty()).collect();
    active.sort_by(|a, b| a.id.cmp(&b.id));
    let now = now_micros();
    let mut runs = Vec::new();
    let mut contracts: BTreeMap<String, Vec<(String, Arc<Contract>)>> = BTreeMap::new();
    for inst in active {
        let project = inst.workspace.clone();
        if !contracts.contains_key(&project) {
            let specs = deps
                .specs
                .send(ListPrefix {
                    prefix: format!("{project}/"),
                })
                .await?;
            let parsed = specs
                .iter()
                .filter_map(|s| {
                    Contract::parse(&s.value)
                        .ok()
                        .map(|c| (split_key(&s.key).1.to_string(), Arc::new(c)))
                })
                .collect();
            contracts.insert(project.clone(), parsed);
        }
        for (name, contract) in contracts.get(&project).into_iter().flatten() {
            let violations = contract.undefined_endpoints();
            runs.push(ComplianceRun {
                id: 0,
                instance_id: inst.id.clone(),
                project: project.clone(),
                contract: name.clone(),
                pass: violations.is_empty(),
                violations,
                run_at: now,
            });
        }
    }
    if runs.is_empty() {
        return Ok(runs);
    }
    let mut records = Records::new();
    for r in runs.iter().filter(|r| !r.pass) {
        records.event(Publish::system(
            "compliance.violation",
            WORKER,
            json!({
                "instance_id": r.instance_id,
                "project": r.project,
                "contract": r.contract,
                "violations": r.violations,
            }),
        ));
    }
    let mut counts: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for r in &runs {
        let c = counts.entry(&r.instance_id).or_default();
        c.0 += 1;
        c.1 += r.violations.len() as i64;
    }
    let counted: Vec<RecordMetrics> = counts
        .into_iter()
        .map(|(id, (n, v))| {
            let mut items = vec![("compliance_runs".to_string(), n)];
            if v > 0 {
                items.push(("violations".to_string(), v));
            }
            RecordMetrics::now(id, items)
        })
        .collect();
    // The runs, their metrics and their violation events commit together.
    let stamped = repo.insert(&mut runs, &counted, records, now).await?;
    deps.outbox.committed(stamped);
    Ok(runs)
}

impl Actor for ComplianceMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Also runs after every restart: the context's timers are reset by a restart.
        if let Some(period) = self.interval {
            ctx.run_interval(period, |_, ctx| ctx.notify(RunOnce));
        }
    }
}

impl Supervised for ComplianceMonitor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.worker.restarted(WORKER);
    }
}

impl Handler<RunOnce> for ComplianceMonitor {
    type Result = AtomicResponse<Self, Result<Vec<ComplianceRun>, ComplianceError>>;

    fn handle(&mut self, _: RunOnce, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        let deps = self.deps.clone();
        let fault = self.worker.take_fault();
        let step = guarded(WORKER, move || pass(repo, deps, fault));
        AtomicResponse::new(Box::pin(step.map(|outcome, act: &mut Self, _| {
            let runs = outcome??;
            act.worker.step_done();
            if !runs.is_empty() {
                tracing::info!(runs = runs.len(), "compliance pass done");
            }
            Ok(runs)
        })))
    }
}

impl Handler<RunHistory> for ComplianceMonitor {
    type Result = ResponseFuture<Result<Vec<ComplianceRun>, ComplianceError>>;

    fn handle(&mut self, msg: RunHistory, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.history(msg.instance_id.as_deref(), msg.limit).await?) })
    }
}

worker_messages!(ComplianceMonitor);
