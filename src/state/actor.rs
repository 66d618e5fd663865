//! `StateStore`: the single owner and single writer of the state tables.
//!
//! Concurrency: `ListKeys` and `GetCurrent` answer from memory inside the actor.
//! `GetHistory`, `GetVersion` and `DiffVersions` return futures that read through the
//! pool and run concurrently with everything else (they only see committed rows).
//! Writes (`PutValue`, `DeleteKey`, `RollbackKey`) join a queue; at most one batch is in
//! flight, and every write that arrives meanwhile is committed in the next batch (one
//! transaction, multi-row INSERTs). Memory is updated and callers are answered only after
//! the commit, so an acknowledged write is durable and visible to the next read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use serde_json::json;
use tokio::sync::oneshot;

use super::diff::diff;
use super::messages::*;
use super::model::{StateEntry, StateError, StoredVersion, VersionMeta};
use super::repository::{Applied, StateRepository, WriteDone, WriteOp};
use crate::batch::{Batch, WriteQueue};
use crate::events::{EventBus, Publish};
use crate::time::now_micros;

type Outcome = Result<WriteDone, StateError>;

/// The state domain actor.
pub struct StateStore {
    repo: StateRepository,
    current: BTreeMap<String, Arc<StateEntry>>,
    queue: WriteQueue<WriteOp, Outcome>,
    events: Addr<EventBus>,
}

impl StateStore {
    /// Loads every key's current value from the database and returns the actor, not yet
    /// started. `batch_max` bounds how many writes share one transaction.
    pub async fn load(
        db: DatabaseConnection,
        batch_max: usize,
        events: Addr<EventBus>,
    ) -> Result<Self, sea_orm::DbErr> {
        let repo = StateRepository::new(db);
        let current = repo
            .load_current()
            .await?
            .into_iter()
            .map(|e| (e.key.clone(), Arc::new(e)))
            .collect();
        Ok(Self {
            repo,
            current,
            queue: WriteQueue::new(batch_max),
            events,
        })
    }

    fn enqueue(&mut self, op: WriteOp, ctx: &mut Context<Self>) -> oneshot::Receiver<Outcome> {
        let rx = self.queue.push(op);
        self.flush(ctx);
        rx
    }

    /// Starts committing the next batch unless one is already in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(mut batch) = self.queue.next_batch() else {
            return;
        };
        let mut snapshot = HashMap::new();
        for op in &batch.ops {
            snapshot
                .entry(op.key().to_string())
                .or_insert_with(|| self.current.get(op.key()).cloned());
        }
        let ops = std::mem::take(&mut batch.ops);
        let repo = self.repo.clone();
        let now = now_micros();
        let commit = async move { repo.apply(ops, snapshot, now).await };
        ctx.spawn(commit.into_actor(self).map(move |outcome, act, ctx| {
            act.queue.done();
            match outcome {
                Ok(applied) => act.finish(applied, batch),
                Err(e) => {
                    tracing::error!(error = %e, writes = batch.replies.len(), "state batch failed to commit");
                    for reply in batch.replies {
                        let _ = reply.send(Err(StateError::Storage(e.to_string())));
                    }
                }
            }
            act.flush(ctx);
        }));
    }

    /// After a commit: update memory first, then answer callers, then publish events.
    fn finish(&mut self, applied: Applied, batch: Batch<WriteOp, Outcome>) {
        for (key, entry) in applied.changed {
            match entry {
                Some(e) => {
                    self.current.insert(key, e);
                }
                None => {
                    self.current.remove(&key);
                }
            }
        }
        let mut events = Vec::new();
        for (result, reply) in applied.results.into_iter().zip(batch.replies) {
            if let Ok(done) = &result {
                events.push(match done {
                    WriteDone::Stored(e) => Publish::system(
                        "state.updated",
                        "state",
                        json!({"key": e.key, "version": e.version, "hash": e.hash}),
                    ),
                    WriteDone::Deleted { key, version } => Publish::system(
                        "state.deleted",
                        "state",
                        json!({"key": key, "version": version}),
                    ),
                });
            }
            let _ = reply.send(result);
        }
        for event in events {
            self.events.do_send(event);
        }
    }
}

impl Actor for StateStore {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Writers wait for their commit, so a deep mailbox only holds waiting callers.
        ctx.set_mailbox_capacity(crate::app::MAILBOX_CAPACITY);
    }
}

impl Handler<ListKeys> for StateStore {
    type Result = MessageResult<ListKeys>;

    fn handle(&mut self, _: ListKeys, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.current.values().cloned().collect())
    }
}

impl Handler<CountKeys> for StateStore {
    type Result = usize;

    fn handle(&mut self, _: CountKeys, _: &mut Self::Context) -> usize {
        self.current.len()
    }
}

impl Handler<GetCurrent> for StateStore {
    type Result = Option<Arc<StateEntry>>;

    fn handle(&mut self, msg: GetCurrent, _: &mut Self::Context) -> Self::Result {
        self.current.get(&msg.key).cloned()
    }
}

impl Handler<GetHistory> for StateStore {
    type Result = ResponseFuture<Result<Vec<VersionMeta>, StateError>>;

    fn handle(&mut self, msg: GetHistory, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.history(&msg.key, msg.limit).await?) })
    }
}

impl Handler<GetVersion> for StateStore {
    type Result = ResponseFuture<Result<StoredVersion, StateError>>;

    fn handle(&mut self, msg: GetVersion, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move {
            repo.version(&msg.key, msg.version)
                .await?
                .ok_or(StateError::VersionNotFound {
                    key: msg.key,
                    version: msg.version,
                })
        })
    }
}

impl Handler<DiffVersions> for StateStore {
    type Result = ResponseFuture<Result<Vec<super::diff::DiffEntry>, StateError>>;

    fn handle(&mut self, msg: DiffVersions, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move {
            // Both versions must exist (404) before either is parsed (400).
            let mut stored = Vec::with_capacity(2);
            for version in [msg.from, msg.to] {
                stored.push(repo.version(&msg.key, version).await?.ok_or_else(|| {
                    StateError::VersionNotFound {
                        key: msg.key.clone(),
                        version,
                    }
                })?);
            }
            let mut docs = Vec::with_capacity(2);
            for s in stored {
                let doc: serde_json::Value = serde_json::from_slice(&s.value).map_err(|_| {
                    StateError::Invalid(format!(
                        "version {} of {} is not valid JSON, so it cannot be diffed",
                        s.version, msg.key
                    ))
                })?;
                docs.push(doc);
            }
            Ok(diff(&docs[0], &docs[1]))
        })
    }
}

async fn committed(rx: oneshot::Receiver<Outcome>) -> Outcome {
    rx.await.unwrap_or(Err(StateError::Unavailable))
}

fn stored(done: WriteDone) -> Result<Arc<StateEntry>, StateError> {
    match done {
        WriteDone::Stored(e) => Ok(e),
        WriteDone::Deleted { .. } => Err(StateError::Storage("a write reported a delete".into())),
    }
}

impl Handler<PutValue> for StateStore {
    type Result = ResponseFuture<Result<Arc<StateEntry>, StateError>>;

    fn handle(&mut self, msg: PutValue, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.enqueue(
            WriteOp::Put {
                key: msg.key,
                value: msg.value,
                content_type: msg.content_type,
                hash: msg.hash,
                preconditions: msg.preconditions,
            },
            ctx,
        );
        Box::pin(async move { stored(committed(rx).await?) })
    }
}

impl Handler<DeleteKey> for StateStore {
    type Result = ResponseFuture<Result<(), StateError>>;

    fn handle(&mut self, msg: DeleteKey, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.enqueue(
            WriteOp::Delete {
                key: msg.key,
                preconditions: msg.preconditions,
            },
            ctx,
        );
        Box::pin(async move { committed(rx).await.map(|_| ()) })
    }
}

impl Handler<RollbackKey> for StateStore {
    type Result = ResponseFuture<Result<Arc<StateEntry>, StateError>>;

    fn handle(&mut self, msg: RollbackKey, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.enqueue(
            WriteOp::Rollback {
                key: msg.key,
                version: msg.version,
                preconditions: msg.preconditions,
            },
            ctx,
        );
        Box::pin(async move { stored(committed(rx).await?) })
    }
}
