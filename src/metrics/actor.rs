//! `AgentMetrics`: the single owner and single writer of the agent metrics table.
//!
//! Concurrency: `RecordMetrics` is group-committed ([`GroupCommit`]); each batch merges
//! its increments per bucket and commits them in one transaction, then answers every
//! caller. Reads (`AgentSummary`, `AgentDetail`) run as concurrent futures over the pool.

use std::collections::HashMap;

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};

use super::messages::*;
use super::model::{AgentTotals, MetricRow, MetricsError};
use super::repository::{Increment, MetricsRepository, add_in};
use crate::batch::{GroupCommit, Outbox, WritePath, enqueue};
use crate::journal::Records;

type Outcome = Result<(), MetricsError>;

/// The metrics domain actor.
pub struct AgentMetrics {
    repo: MetricsRepository,
    path: WritePath<RecordMetrics, Outcome>,
}

impl AgentMetrics {
    /// The actor, not yet started. `batch_max` bounds how many records share one commit.
    pub fn new(db: DatabaseConnection, outbox: Outbox, batch_max: usize) -> Self {
        Self {
            repo: MetricsRepository::new(db.clone()),
            path: WritePath::new(db, outbox, batch_max),
        }
    }
}

impl GroupCommit for AgentMetrics {
    type Op = RecordMetrics;
    type Out = Outcome;
    type Work = (Vec<Increment>, usize);
    type Done = usize;

    fn write_path(&mut self) -> &mut WritePath<RecordMetrics, Outcome> {
        &mut self.path
    }

    fn prepare(&mut self, ops: Vec<RecordMetrics>, _: i64) -> Self::Work {
        (merge(&ops), ops.len())
    }

    async fn write(
        (increments, n): Self::Work,
        txn: &DatabaseTransaction,
    ) -> Result<(usize, Records), DbErr> {
        add_in(txn, increments).await?;
        Ok((n, Records::new()))
    }

    fn finish(&mut self, n: usize, _: &mut Context<Self>) -> Vec<Outcome> {
        vec![Ok(()); n]
    }

    fn failed(error: &DbErr) -> Outcome {
        Err(MetricsError::Storage(error.to_string()))
    }
}
/// Sums the increments of a batch per (instance, metric, period), in first-seen order.
pub(super) fn merge(records: &[RecordMetrics]) -> Vec<Increment> {
    let mut index: HashMap<(String, String, String), usize> = HashMap::new();
    let mut out: Vec<Increment> = Vec::new();
    for r in records {
        for (name, n) in &r.counts {
            let key = (r.instance_id.clone(), name.clone(), r.period.clone());
            match index.get(&key) {
                Some(&i) => out[i].1 += n,
                None => {
                    index.insert(key.clone(), out.len());
                    out.push((key, *n));
                }
            }
        }
    }
    out
}

impl Actor for AgentMetrics {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
    }
}

impl Handler<RecordMetrics> for AgentMetrics {
    type Result = ResponseFuture<Result<(), MetricsError>>;

    fn handle(&mut self, msg: RecordMetrics, ctx: &mut Self::Context) -> Self::Result {
        if msg.instance_id.is_empty() || msg.counts.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        let rx = enqueue(self, msg, ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(MetricsError::Unavailable)) })
    }
}

impl Handler<AgentSummary> for AgentMetrics {
    type Result = ResponseFuture<Result<Vec<AgentTotals>, MetricsError>>;

    fn handle(&mut self, msg: AgentSummary, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.summary(msg.period.as_deref()).await?) })
    }
}

impl Handler<AgentDetail> for AgentMetrics {
    type Result = ResponseFuture<Result<Vec<MetricRow>, MetricsError>>;

    fn handle(&mut self, msg: AgentDetail, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.detail(&msg.instance_id, msg.period.as_deref()).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start() -> (tempfile::TempDir, Addr<AgentMetrics>) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::connect(&dir.path().join("data.db"), 2)
            .await
            .unwrap();
        crate::db::migrate(&db).await.unwrap();
        (dir, AgentMetrics::new(db, Outbox::default(), 64).start())
    }

    fn record(id: &str, period: &str, counts: &[(&str, i64)]) -> RecordMetrics {
        RecordMetrics {
            instance_id: id.into(),
            period: period.into(),
            counts: counts.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        }
    }

    #[actix::test]
    async fn increments_add_up_per_bucket_and_filter_by_period_prefix() {
        let (_dir, metrics) = start().await;
        let sends = [
            record("b", "2026-02-16T14", &[("heartbeats", 1)]),
            record(
                "b",
                "2026-02-16T14",
                &[("heartbeats", 2), ("violations", 1)],
            ),
            record("b", "2026-02-16T15", &[("heartbeats", 4)]),
            record("a", "2026-02-17T01", &[("heartbeats", 8)]),
        ]
        .map(|r| metrics.send(r));
        for sent in futures_util::future::join_all(sends).await {
            sent.unwrap().unwrap();
        }
        // Committed after the batch above, so the sum crosses two transactions.
        metrics
            .send(record("b", "2026-02-16T15", &[("heartbeats", 16)]))
            .await
            .unwrap()
            .unwrap();

        let all = metrics
            .send(AgentSummary { period: None })
            .await
            .unwrap()
            .unwrap();
        let ids: Vec<_> = all.iter().map(|t| t.instance_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(all[1].metrics["heartbeats"], 23);
        assert_eq!(all[1].metrics["violations"], 1);

        let hour = metrics
            .send(AgentSummary {
                period: Some("2026-02-16T14".into()),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hour.len(), 1);
        assert_eq!(hour[0].metrics["heartbeats"], 3);

        let rows = metrics
            .send(AgentDetail {
                instance_id: "b".into(),
                period: Some("2026-02-16".into()),
            })
            .await
            .unwrap()
            .unwrap();
        let shown: Vec<_> = rows
            .iter()
            .map(|r| format!("{} {}={}", r.period, r.metric_name, r.metric_value))
            .collect();
        assert_eq!(
            shown,
            [
                "2026-02-16T15 heartbeats=20",
                "2026-02-16T14 heartbeats=3",
                "2026-02-16T14 violations=1",
            ]
        );
        let none = metrics
            .send(AgentDetail {
                instance_id: "nobody".into(),
                period: None,
            })
            .await
            .unwrap()
            .unwrap();
        assert!(none.is_empty());
    }
}
