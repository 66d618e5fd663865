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
use super::model::{AuditEntry, AuditError, AuditSummary, ChainWalk, VerifyReport};
use super::repository::AuditRepository;

/// The audit domain actor.
pub struct AuditLog {
    repo: AuditRepository,
    /// The highest id this process has seen committed (raised by every writer's outbox):
    /// a chain that ends below it has lost its newest entries.
    committed: Arc<AtomicI64>,
}

impl AuditLog {
    /// Reads the chain head into `committed`, the high-water mark the writers raise.
    pub async fn load(db: DatabaseConnection, committed: Arc<AtomicI64>) -> Result<Self, DbErr> {
        let repo = AuditRepository::new(db);
        committed.fetch_max(repo.max_id().await?, Ordering::AcqRel);
        Ok(Self { repo, committed })
    }
}

impl Actor for AuditLog {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
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
