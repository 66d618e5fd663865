//! `AuditLog`: the reader of the audit table and the verifier of its chain.
//!
//! Entries are not written here: each domain appends the entries of its writes inside
//! its own transaction ([`crate::journal`]), so an acknowledged write and its entry commit
//! together. Every commit raises the shared high-water mark this actor verifies against.
//! Reads and the chain walk run as futures over the pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DbErr};

use super::messages::*;
use super::model::{
    AuditEntry, AuditError, AuditSummary, ChainWalk, Checkpoint, CheckpointOut, VerifyReport,
};
use super::repository::AuditRepository;
use crate::retention::{PRUNE_BATCH, PRUNE_PAUSE, Running, cutoff};
use crate::time::now_micros;

/// The audit domain actor.
pub struct AuditLog {
    repo: AuditRepository,
    /// The highest id this process has seen committed (raised by every writer's outbox):
    /// a chain that ends below it has lost its newest entries.
    committed: Arc<AtomicI64>,
    /// Entries older than this are pruned (`None`: kept forever).
    retention: Option<std::time::Duration>,
    /// How often the pruner runs.
    prune_interval: std::time::Duration,
    running: Running,
}

impl AuditLog {
    /// Reads the chain head into `committed`, the high-water mark the writers raise.
    pub async fn load(db: DatabaseConnection, committed: Arc<AtomicI64>) -> Result<Self, DbErr> {
        let repo = AuditRepository::new(db);
        committed.fetch_max(repo.max_id().await?, Ordering::AcqRel);
        Ok(Self {
            repo,
            committed,
            retention: None,
            prune_interval: std::time::Duration::from_secs(60),
            running: Running::default(),
        })
    }

    /// Prunes entries older than `retention` (if set) every `interval`, behind a checkpoint.
    pub fn with_retention(
        mut self,
        retention: Option<std::time::Duration>,
        interval: std::time::Duration,
    ) -> Self {
        self.retention = retention;
        self.prune_interval = interval;
        self
    }
}

impl Actor for AuditLog {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
        if self.retention.is_some() {
            ctx.run_interval(self.prune_interval, |_, ctx| ctx.notify(PruneAudit));
        }
    }
}

impl Handler<QueryAudit> for AuditLog {
    type Result = ResponseFuture<Result<Vec<AuditEntry>, AuditError>>;

    fn handle(&mut self, msg: QueryAudit, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.query(&msg.filter, msg.limit).await?) })
    }
}

impl Handler<SummarizeAudit> for AuditLog {
    type Result = ResponseFuture<Result<AuditSummary, AuditError>>;

    fn handle(&mut self, msg: SummarizeAudit, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.summary(msg.from, msg.to).await?) })
    }
}

impl Handler<VerifyAudit> for AuditLog {
    type Result = ResponseFuture<Result<VerifyReport, AuditError>>;

    fn handle(&mut self, _: VerifyAudit, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        let committed = self.committed.load(Ordering::Acquire);
        Box::pin(async move {
            // A prune that runs meanwhile moves the checkpoint past entries the walk
            // expected: the walk then starts again from the new checkpoint.
            let mut tries = 0;
            loop {
                let checkpoint = repo.checkpoint().await?;
                let report = walk(&repo, checkpoint.as_ref(), committed).await?;
                tries += 1;
                if report.ok || tries >= 3 || repo.checkpoint().await? == checkpoint {
                    return Ok(report);
                }
            }
        })
    }
}

/// Walks the chain from `checkpoint` (from entry 1 when `None`).
async fn walk(
    repo: &AuditRepository,
    checkpoint: Option<&Checkpoint>,
    committed: i64,
) -> Result<VerifyReport, AuditError> {
    let mut walk = ChainWalk::after(checkpoint);
    let start = walk.last_id();
    let report = |ok: bool, walk: &ChainWalk, broken: Option<(i64, String)>| VerifyReport {
        ok,
        entries: walk.last_id() - start,
        broken_id: broken.as_ref().map(|b| b.0),
        reason: broken.map(|b| b.1),
        from_id: checkpoint.map(|c| c.id + 1),
        checkpoint: checkpoint.map(CheckpointOut::from),
    };
    loop {
        let page = repo.page_after(walk.last_id()).await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            if let Err(reason) = walk.step(e) {
                return Ok(report(false, &walk, Some((e.id, reason))));
            }
        }
    }
    if walk.last_id() < committed {
        let reason = format!("entries {} to {committed} are missing", walk.last_id() + 1);
        return Ok(report(false, &walk, Some((walk.last_id() + 1, reason))));
    }
    Ok(report(true, &walk, None))
}

impl Handler<PruneAudit> for AuditLog {
    type Result = ResponseFuture<Result<u64, AuditError>>;

    fn handle(&mut self, _: PruneAudit, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        let retention = self.retention;
        let running = self.running.clone();
        Box::pin(async move {
            let (Some(age), Some(_run)) = (retention, running.start()) else {
                return Ok(0);
            };
            prune(&repo, age).await
        })
    }
}

/// Prunes every entry older than `age` but the newest, batch by batch. Each batch is
/// verified from the checkpoint before it is pruned, so a broken chain is never hidden
/// behind a checkpoint: pruning stops there and the break stays for `verify` to report.
async fn prune(repo: &AuditRepository, age: std::time::Duration) -> Result<u64, AuditError> {
    let mut deleted = 0;
    loop {
        let now = now_micros();
        let checkpoint = repo.checkpoint().await?;
        let mut walk = ChainWalk::after(checkpoint.as_ref());
        let batch = repo
            .prunable(walk.last_id(), cutoff(now, age), PRUNE_BATCH)
            .await?;
        let Some(last) = batch.last() else {
            break;
        };
        for e in &batch {
            if let Err(reason) = walk.step(e) {
                tracing::error!(
                    id = e.id,
                    reason,
                    "the audit chain is broken; not pruning it"
                );
                return Ok(deleted);
            }
        }
        deleted += repo.prune_through(last, now).await?;
        if (batch.len() as u64) < PRUNE_BATCH {
            break;
        }
        tokio::time::sleep(PRUNE_PAUSE).await;
    }
    if deleted > 0 {
        tracing::debug!(deleted, "pruned audit entries");
    }
    Ok(deleted)
}
