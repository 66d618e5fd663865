//! `AuditLog`: the single owner and single writer of the audit table.
//!
//! Concurrency: `Append` joins a [`WriteQueue`]; each batch is chained to the stored head
//! and inserted in one transaction (one fsync for many requests), then every caller is
//! answered with its entry's id. Reads and the chain walk run as futures over the pool,
//! so a long verification never holds up appends.

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DbErr};

use super::messages::*;
use super::model::{AuditEntry, AuditError, AuditSummary, ChainWalk, VerifyReport};
use super::repository::AuditRepository;
use crate::batch::WriteQueue;
use crate::time::now_micros;

/// The audit domain actor.
pub struct AuditLog {
    repo: AuditRepository,
    queue: WriteQueue<super::model::Audit, Result<i64, AuditError>>,
    /// The highest id this process has seen committed: a chain that ends below it has
    /// lost its newest entries.
    committed: i64,
}

impl AuditLog {
    /// Loads the chain head. `batch_max` bounds how many entries share one commit.
    pub async fn load(db: DatabaseConnection, batch_max: usize) -> Result<Self, DbErr> {
        let repo = AuditRepository::new(db);
        let committed = repo.max_id().await?;
        Ok(Self {
            repo,
            queue: WriteQueue::new(batch_max),
            committed,
        })
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(mut batch) = self.queue.next_batch() else {
            return;
        };
        let repo = self.repo.clone();
        let entries = std::mem::take(&mut batch.ops);
        ctx.spawn(
            async move { repo.append(entries, now_micros()).await }
                .into_actor(self)
                .map(move |result, act, ctx| {
                    act.queue.done();
                    match result {
                        Ok(ids) => {
                            if let Some(&last) = ids.last() {
                                act.committed = act.committed.max(last);
                            }
                            batch.answer(ids.into_iter().map(Ok));
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "audit batch failed to commit");
                            batch.fail(Err(AuditError::Storage(e.to_string())));
                        }
                    }
                    act.flush(ctx);
                }),
        );
    }
}

impl Actor for AuditLog {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::app::MAILBOX_CAPACITY);
    }
}

impl Handler<Append> for AuditLog {
    type Result = ResponseFuture<Result<i64, AuditError>>;

    fn handle(&mut self, msg: Append, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.queue.push(msg.0);
        self.flush(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(AuditError::Unavailable)) })
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
        let committed = self.committed;
        Box::pin(async move {
            let mut walk = ChainWalk::default();
            loop {
                let page = repo.page_after(walk.last_id()).await?;
                if page.is_empty() {
                    break;
                }
                for e in &page {
                    if let Err(reason) = walk.step(e) {
                        return Ok(VerifyReport {
                            ok: false,
                            entries: walk.last_id(),
                            broken_id: Some(e.id),
                            reason: Some(reason),
                        });
                    }
                }
            }
            if walk.last_id() < committed {
                return Ok(VerifyReport {
                    ok: false,
                    entries: walk.last_id(),
                    broken_id: Some(walk.last_id() + 1),
                    reason: Some(format!(
                        "entries {} to {committed} are missing",
                        walk.last_id() + 1
                    )),
                });
            }
            Ok(VerifyReport {
                ok: true,
                entries: walk.last_id(),
                broken_id: None,
                reason: None,
            })
        })
    }
}
