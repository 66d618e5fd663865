//! `VersionedStore<K>`: the single owner and single writer of one versioned-document
//! table. State (`StateStore`) and specs (`SpecRegistry`) are two kinds of it: same
//! versions, hashes, ETags, preconditions and group commit; different table and events.
//!
//! Concurrency: `ListKeys` and `GetCurrent` answer from memory inside the actor.
//! `GetHistory`, `GetVersion` and `DiffVersions` return futures that read through the
//! pool and run concurrently with everything else (they only see committed rows).
//! Writes (`PutValue`, `DeleteKey`, `RollbackKey`) join a queue; at most one batch is in
//! flight, and every write that arrives meanwhile is committed in the next batch (one
//! transaction, multi-row INSERTs). Memory is updated and callers are answered only after
//! the commit, so an acknowledged write is durable and visible to the next read.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::diff::diff;
use super::messages::*;
use super::model::{StateEntry, StateError, StoredVersion, VersionMeta};
use super::repository::{Applied, StateRepository, WriteDone, WriteOp};
use crate::batch::{Batch, WriteQueue};
use crate::events::{EventBus, Publish};
use crate::time::now_micros;

type Outcome = Result<WriteDone, StateError>;

/// What distinguishes one kind of versioned document from another.
pub trait DocKind: Unpin + 'static {
    /// The table holding every version (the columns of `entities::state_version`).
    const TABLE: &'static str;
    /// `source` of this kind's events.
    const SOURCE: &'static str;
    /// Topic published after a put or rollback.
    const UPDATED: &'static str;
    /// Topic published after a delete.
    const DELETED: &'static str;
    /// `data` of the update event (never the value).
    fn updated(key: &str, version: i64, hash: &str) -> Value;
    /// `data` of the delete event.
    fn deleted(key: &str, version: i64) -> Value;
}

/// Versioned key/value state (API §4).
pub struct StateDocs;

impl DocKind for StateDocs {
    const TABLE: &'static str = "state_versions";
    const SOURCE: &'static str = "state";
    const UPDATED: &'static str = "state.updated";
    const DELETED: &'static str = "state.deleted";

    fn updated(key: &str, version: i64, hash: &str) -> Value {
        json!({"key": key, "version": version, "hash": hash})
    }

    fn deleted(key: &str, version: i64) -> Value {
        json!({"key": key, "version": version})
    }
}

/// The state domain actor.
pub type StateStore = VersionedStore<StateDocs>;

/// A versioned-document store of kind `K`.
pub struct VersionedStore<K: DocKind> {
    kind: PhantomData<K>,
    repo: StateRepository,
    current: BTreeMap<String, Arc<StateEntry>>,
    queue: WriteQueue<WriteOp, Outcome>,
    events: Addr<EventBus>,
}

impl<K: DocKind> VersionedStore<K> {
    /// Loads every key's current value from the database and returns the actor, not yet
    /// started. `batch_max` bounds how many writes share one transaction.
    pub async fn load(
        db: DatabaseConnection,
        batch_max: usize,
        events: Addr<EventBus>,
    ) -> Result<Self, sea_orm::DbErr> {
        let repo = StateRepository::new(db, K::TABLE);
        let current = repo
            .load_current()
            .await?
            .into_iter()
            .map(|e| (e.key.clone(), Arc::new(e)))
            .collect();
        Ok(Self {
            kind: PhantomData,
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
                        K::UPDATED,
                        K::SOURCE,
                        K::updated(&e.key, e.version, &e.hash),
                    ),
                    WriteDone::Deleted { key, version } => {
                        Publish::system(K::DELETED, K::SOURCE, K::deleted(key, *version))
                    }
                });
            }
            let _ = reply.send(result);
        }
        for event in events {
            self.events.do_send(event);
        }
    }
}

impl<K: DocKind> Actor for VersionedStore<K> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Writers wait for their commit, so a deep mailbox only holds waiting callers.
        ctx.set_mailbox_capacity(crate::app::MAILBOX_CAPACITY);
    }
}

impl<K: DocKind> Handler<ListKeys> for VersionedStore<K> {
    type Result = MessageResult<ListKeys>;

    fn handle(&mut self, _: ListKeys, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.current.values().cloned().collect())
    }
}

impl<K: DocKind> Handler<ListPrefix> for VersionedStore<K> {
    type Result = MessageResult<ListPrefix>;

    fn handle(&mut self, msg: ListPrefix, _: &mut Self::Context) -> Self::Result {
        let items = self
            .current
            .range(msg.prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&msg.prefix))
            .map(|(_, v)| v.clone())
            .collect();
        MessageResult(items)
    }
}

impl<K: DocKind> Handler<CountKeys> for VersionedStore<K> {
    type Result = usize;

    fn handle(&mut self, _: CountKeys, _: &mut Self::Context) -> usize {
        self.current.len()
    }
}

impl<K: DocKind> Handler<GetCurrent> for VersionedStore<K> {
    type Result = Option<Arc<StateEntry>>;

    fn handle(&mut self, msg: GetCurrent, _: &mut Self::Context) -> Self::Result {
        self.current.get(&msg.key).cloned()
    }
}

impl<K: DocKind> Handler<GetHistory> for VersionedStore<K> {
    type Result = ResponseFuture<Result<Vec<VersionMeta>, StateError>>;

    fn handle(&mut self, msg: GetHistory, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.history(&msg.key, msg.limit).await?) })
    }
}

impl<K: DocKind> Handler<GetVersion> for VersionedStore<K> {
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

impl<K: DocKind> Handler<DiffVersions> for VersionedStore<K> {
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

impl<K: DocKind> Handler<PutValue> for VersionedStore<K> {
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

impl<K: DocKind> Handler<DeleteKey> for VersionedStore<K> {
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

impl<K: DocKind> Handler<RollbackKey> for VersionedStore<K> {
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
