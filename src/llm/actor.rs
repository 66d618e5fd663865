//! `LlmLedger`: the single owner and single writer of `llm_usage` and `llm_budgets`.
//!
//! Concurrency: every write (`RecordUsage`, `PutBudget`, `DeleteBudget`) is
//! group-committed ([`GroupCommit`]); one batch at a time is committed in one transaction
//! that inserts the records, applies budget changes in order, decides budget
//! announcements from the budget rows read inside that transaction, counts the records in
//! the agent metrics, and appends the batch's audit entries and events (a record's
//! `llm.usage.recorded`, then its `budget.warning` / `budget.exceeded`). Record ids are
//! assigned here, in order, so they strictly increase. Because batches never overlap, two
//! records can never both announce the same crossing. Callers are answered after the
//! commit. Reads (`ListUsage`, `SummarizeUsage`, `ListBudgets`, `GetBudget`) run as
//! concurrent futures over the pool.

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use serde_json::json;
use tokio::sync::oneshot;

use super::messages::*;
use super::model::{
    BudgetIn, BudgetStatus, LlmError, NewUsage, Period, Recorded, SOURCE, Scope, TOPIC_RECORDED,
    Usage, UsageSummary,
};
use super::repository::{Done, LlmRepository, Outcome, Write};
use crate::audit::Audit;
use crate::batch::{GroupCommit, Outbox, WritePath, enqueue};
use crate::events::Publish;
use crate::http::Caller;
use crate::journal::Records;
use crate::metrics::RecordMetrics;
use crate::retention::{Batch, PRUNE_BATCH, Running, cutoff, in_batches};
use crate::time::now_micros;

/// A queued write.
#[derive(Debug)]
pub enum Op {
    Record(NewUsage),
    Put(Scope, BudgetIn),
    Delete(Scope),
}

/// The LLM usage domain actor.
pub struct LlmLedger {
    repo: LlmRepository,
    path: WritePath<(Op, Caller), Outcome>,
    /// Highest record id assigned so far (committed or in flight).
    last_id: i64,
    /// Records older than this are pruned (`None`: kept forever).
    retention: Option<std::time::Duration>,
    /// How often the pruner runs.
    prune_interval: std::time::Duration,
    running: Running,
}

impl LlmLedger {
    /// Reads the record id sequence and returns the actor, not yet started. `batch_max`
    /// bounds how many writes share one transaction.
    pub async fn load(
        db: DatabaseConnection,
        outbox: Outbox,
        batch_max: usize,
    ) -> Result<Self, sea_orm::DbErr> {
        let repo = LlmRepository::new(db.clone());
        let last_id = repo.last_id().await?;
        Ok(Self {
            repo,
            path: WritePath::new(db, outbox, batch_max),
            last_id,
            retention: None,
            prune_interval: std::time::Duration::from_secs(60),
            running: Running::default(),
        })
    }

    /// Prunes records older than `retention` (if set) every `interval`.
    pub fn with_retention(
        mut self,
        retention: Option<std::time::Duration>,
        interval: std::time::Duration,
    ) -> Self {
        self.retention = retention;
        self.prune_interval = interval;
        self
    }

    fn enqueue(
        &mut self,
        op: Op,
        caller: Caller,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Outcome> {
        enqueue(self, (op, caller), ctx)
    }
}

/// A batch prepared for its transaction.
pub struct Work {
    writes: Vec<Write>,
    callers: Vec<Caller>,
    now: i64,
}

/// The audit entries, events and agent metrics of a committed batch, in order.
fn records(outcomes: &[Outcome], callers: Vec<Caller>) -> (Records, Vec<RecordMetrics>) {
    let mut records = Records::new();
    let mut counted = Vec::new();
    for (outcome, caller) in outcomes.iter().zip(callers) {
        let entry = match outcome {
            Ok(Done::Recorded(recorded)) => {
                let u = &recorded.usage;
                for event in events_of(recorded) {
                    records.event(event);
                }
                if !u.instance_id.is_empty() {
                    counted.push(RecordMetrics::now(
                        &u.instance_id,
                        vec![
                            ("llm_requests".to_string(), 1),
                            ("llm_tokens_in".to_string(), u.tokens_in),
                            ("llm_tokens_out".to_string(), u.tokens_out),
                        ],
                    ));
                }
                Audit::new("llm.usage", format!("{}/{}", u.project, u.model))
                    .actor(u.instance_id.clone())
                    .with("tokens_in", u.tokens_in)
                    .with("tokens_out", u.tokens_out)
                    .with("cost_usd", u.cost_usd)
            }
            Ok(Done::Budget(status)) => Audit::new("llm.budget.put", status.scope.clone())
                .with("period", status.period)
                .with("max_tokens", json!(status.max_tokens))
                .with("max_cost_usd", json!(status.max_cost_usd)),
            Ok(Done::Deleted(scope)) => Audit::new("llm.budget.delete", scope.to_string()),
            Err(_) => continue,
        };
        records.audit(entry.by(&caller));
    }
    (records, counted)
}

impl GroupCommit for LlmLedger {
    type Op = (Op, Caller);
    type Out = Outcome;
    type Work = Work;
    type Done = Vec<Outcome>;

    fn write_path(&mut self) -> &mut WritePath<Self::Op, Outcome> {
        &mut self.path
    }

    fn prepare(&mut self, batch: Vec<(Op, Caller)>, now: i64) -> Work {
        let mut writes = Vec::with_capacity(batch.len());
        let mut callers = Vec::with_capacity(batch.len());
        for (op, caller) in batch {
            writes.push(match op {
                Op::Record(usage) => {
                    self.last_id += 1;
                    Write::Record(usage.stored(self.last_id, now))
                }
                Op::Put(scope, input) => Write::Put(input.budget(scope, now)),
                Op::Delete(scope) => Write::Delete(scope),
            });
            callers.push(caller);
        }
        Work {
            writes,
            callers,
            now,
        }
    }

    async fn write(
        work: Work,
        txn: &DatabaseTransaction,
    ) -> Result<(Vec<Outcome>, Records), DbErr> {
        let outcomes = LlmRepository::write_in(txn, &work.writes, work.now).await?;
        let (records, counted) = records(&outcomes, work.callers);
        crate::metrics::record_in(txn, &counted).await?;
        Ok((outcomes, records))
    }

    fn finish(&mut self, outcomes: Vec<Outcome>, _: &mut Context<Self>) -> Vec<Outcome> {
        outcomes
    }

    fn failed(error: &DbErr) -> Outcome {
        Err(LlmError::Storage(error.to_string()))
    }
}

/// The events of a committed record: the record itself, then its budget announcements.
fn events_of(recorded: &Recorded) -> Vec<Publish> {
    let mut out = Vec::with_capacity(1 + recorded.announced.len());
    out.push(Publish::system(
        TOPIC_RECORDED,
        SOURCE,
        recorded.usage.to_value(),
    ));
    for (topic, status) in &recorded.announced {
        out.push(Publish::system(
            topic,
            SOURCE,
            serde_json::to_value(status).unwrap_or_default(),
        ));
    }
    out
}

async fn done(rx: oneshot::Receiver<Outcome>) -> Result<Done, LlmError> {
    rx.await.unwrap_or(Err(LlmError::Unavailable))
}

fn unexpected() -> LlmError {
    LlmError::Storage("unexpected batch result".into())
}

impl Actor for LlmLedger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
        if self.retention.is_some() {
            ctx.run_interval(self.prune_interval, |_, ctx| ctx.notify(PruneUsage));
        }
    }
}

impl Handler<PruneUsage> for LlmLedger {
    type Result = ResponseFuture<Result<u64, LlmError>>;

    fn handle(&mut self, _: PruneUsage, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        let retention = self.retention;
        let running = self.running.clone();
        Box::pin(async move {
            let (Some(age), Some(_run)) = (retention, running.start()) else {
                return Ok(0);
            };
            let repo = &repo;
            let deleted = in_batches(|| async move {
                let now = now_micros();
                // The current month's records stay: a monthly budget counts them.
                let before = cutoff(now, age).min(Period::Month.start(now));
                let ids = repo.prunable(before, PRUNE_BATCH).await?;
                Ok::<_, DbErr>(Batch {
                    deleted: repo.prune(&ids).await?,
                    more: ids.len() as u64 == PRUNE_BATCH,
                })
            })
            .await?;
            if deleted > 0 {
                tracing::debug!(deleted, "pruned LLM usage records");
            }
            Ok(deleted)
        })
    }
}

impl Handler<RecordUsage> for LlmLedger {
    type Result = ResponseFuture<Result<Recorded, LlmError>>;

    fn handle(&mut self, msg: RecordUsage, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.enqueue(Op::Record(msg.usage), msg.caller, ctx);
        Box::pin(async move {
            let Done::Recorded(recorded) = done(rx).await? else {
                return Err(unexpected());
            };
            Ok(*recorded)
        })
    }
}

impl Handler<PutBudget> for LlmLedger {
    type Result = ResponseFuture<Result<BudgetStatus, LlmError>>;

    fn handle(&mut self, msg: PutBudget, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.enqueue(Op::Put(msg.scope, msg.budget), msg.caller, ctx);
        Box::pin(async move {
            match done(rx).await? {
                Done::Budget(status) => Ok(*status),
                _ => Err(unexpected()),
            }
        })
    }
}

impl Handler<DeleteBudget> for LlmLedger {
    type Result = ResponseFuture<Result<(), LlmError>>;

    fn handle(&mut self, msg: DeleteBudget, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.enqueue(Op::Delete(msg.scope), msg.caller, ctx);
        Box::pin(async move {
            match done(rx).await? {
                Done::Deleted(_) => Ok(()),
                _ => Err(unexpected()),
            }
        })
    }
}

impl Handler<ListUsage> for LlmLedger {
    type Result = ResponseFuture<Result<Vec<Usage>, LlmError>>;

    fn handle(&mut self, msg: ListUsage, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.list(&msg.filter, msg.limit).await?) })
    }
}

impl Handler<SummarizeUsage> for LlmLedger {
    type Result = ResponseFuture<Result<UsageSummary, LlmError>>;

    fn handle(&mut self, msg: SummarizeUsage, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.summary(msg.group_by, msg.from, msg.to).await?) })
    }
}

impl Handler<ListBudgets> for LlmLedger {
    type Result = ResponseFuture<Result<Vec<BudgetStatus>, LlmError>>;

    fn handle(&mut self, _: ListBudgets, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.budgets(None, now_micros()).await?) })
    }
}

impl Handler<GetBudget> for LlmLedger {
    type Result = ResponseFuture<Result<BudgetStatus, LlmError>>;

    fn handle(&mut self, msg: GetBudget, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move {
            repo.budgets(Some(&msg.scope), now_micros())
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| LlmError::NotFound(msg.scope.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::BusSettings;
    use crate::llm::model::{Period, TOPIC_EXCEEDED, TOPIC_WARNING};

    async fn start() -> (tempfile::TempDir, Addr<LlmLedger>) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::connect(&dir.path().join("data.db"), 2)
            .await
            .unwrap();
        crate::db::migrate(&db).await.unwrap();
        let events = crate::events::EventBus::load(
            db.clone(),
            Outbox::default(),
            BusSettings {
                batch_max: 64,
                retention: 1000,
                prune_interval: std::time::Duration::from_secs(3600),
                replica: false,
            },
        )
        .await
        .unwrap()
        .start();
        let outbox = Outbox::default().with_bus(events);
        let ledger = LlmLedger::load(db, outbox, 64).await.unwrap().start();
        (dir, ledger)
    }

    fn usage(project: &str, tokens_in: i64) -> RecordUsage {
        RecordUsage {
            usage: NewUsage {
                instance_id: String::new(),
                project: project.into(),
                provider: "openai".into(),
                model: "gpt-4".into(),
                tokens_in,
                tokens_out: 0,
                cost_usd: 0.0,
                request_type: "completion".into(),
                session_tag: String::new(),
            },
            caller: Caller::anonymous(),
        }
    }

    #[actix::test]
    async fn concurrent_records_announce_each_crossing_exactly_once() {
        let (_dir, ledger) = start().await;
        ledger
            .send(PutBudget {
                scope: Scope::Project("p".into()),
                budget: BudgetIn {
                    period: Period::Day,
                    max_tokens: Some(100),
                    max_cost_usd: None,
                },
                caller: Caller::anonymous(),
            })
            .await
            .unwrap()
            .unwrap();
        // 30 records of 10 tokens against a limit of 100, all in flight at once: they
        // share batches, and the 8th and 10th cross the two thresholds.
        let sends = (0..30).map(|_| ledger.send(usage("p", 10)));
        let answers: Vec<Recorded> = futures_util::future::join_all(sends)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        let mut ids: Vec<i64> = answers.iter().map(|r| r.usage.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 30);
        let mut topics: Vec<(i64, &str)> = answers
            .iter()
            .flat_map(|r| r.announced.iter().map(|(t, _)| (r.usage.id, *t)))
            .collect();
        topics.sort_unstable();
        let first = ids[0];
        assert_eq!(
            topics,
            [(first + 7, TOPIC_WARNING), (first + 9, TOPIC_EXCEEDED)],
            "{topics:?}"
        );
        for r in &answers {
            let over = r.usage.id >= first + 9;
            assert_eq!(r.exceeded.is_empty(), !over, "record {}", r.usage.id);
        }
        let status = ledger
            .send(GetBudget {
                scope: Scope::Project("p".into()),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.spent_tokens, 300);
        assert_eq!(status.remaining_tokens, Some(0));
        assert_eq!(status.used_percent, 300.0);
    }

    #[actix::test]
    async fn deleting_a_missing_budget_is_not_found() {
        let (_dir, ledger) = start().await;
        let e = ledger
            .send(DeleteBudget {
                scope: Scope::Instance("nobody".into()),
                caller: Caller::anonymous(),
            })
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, LlmError::NotFound(_)), "{e}");
        let all = ledger.send(ListBudgets).await.unwrap().unwrap();
        assert!(all.is_empty());
    }
}
