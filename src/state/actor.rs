//! `VersionedStore<K>`: the single owner and single writer of one versioned-document
//! table. State (`StateStore`) and specs (`SpecRegistry`) are two kinds of it: same
//! versions, hashes, ETags, preconditions and group commit; different table and events.
//!
//! Concurrency: `ListKeys` and `GetCurrent` answer from memory inside the actor.
//! `GetHistory`, `GetVersion` and `DiffVersions` return futures that read through the
//! pool and run concurrently with everything else (they only see committed rows).
//! Writes (`PutValue`, `DeleteKey`, `RollbackKey`) are group-committed ([`GroupCommit`]):
//! at most one batch is in flight, and every write that arrives meanwhile is committed in
//! the next batch: one transaction holding the versions (multi-row INSERTs), their audit
//! entries and their events. Memory is updated and callers are answered only after the
//! commit, so an acknowledged write, its audit entry and its event are durable together
//! and the write is visible to the next read.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::diff::diff;
use super::messages::*;
use super::model::{StateEntry, StateError, StoredVersion, VersionMeta};
use super::repository::{Applied, PruneRule, StateRepository, Tables, WriteDone, WriteOp};
use crate::audit::Audit;
use crate::batch::{GroupCommit, Outbox, WritePath, enqueue};
use crate::events::Publish;
use crate::http::Caller;
use crate::journal::Records;
use crate::retention::{HistoryRetention, PRUNE_BATCH, PRUNE_PAUSE, Running, cutoff};
use crate::time::now_micros;

type Outcome = Result<WriteDone, StateError>;

/// What distinguishes one kind of versioned document from another.
pub trait DocKind: Unpin + 'static {
    /// The tables holding every version (the columns of `entities::state_version`), each
    /// key's current one, and the marks of its history. `TABLES.versions` also names the
    /// kind in `doc_fences`.
    const TABLES: Tables;
    /// `source` of this kind's events.
    const SOURCE: &'static str;
    /// Topic published after a put or rollback.
    const UPDATED: &'static str;
    /// Topic published after a delete.
    const DELETED: &'static str;
    /// Audit actions of a put, a rollback and a delete (API §15).
    const AUDIT: [&'static str; 3];
    /// `data` of the update event (never the value).
    fn updated(key: &str, version: i64, hash: &str) -> Value;
    /// `data` of the delete event.
    fn deleted(key: &str, version: i64) -> Value;
    /// The key an update or delete event's `data` names (the inverse of [`DocKind::updated`]
    /// and [`DocKind::deleted`]).
    fn key_of(data: &Value) -> Option<String>;
}

/// Versioned key/value state (API §4).
pub struct StateDocs;

impl DocKind for StateDocs {
    const TABLES: Tables = Tables {
        versions: "state_versions",
        heads: "state_heads",
        marks: "state_marks",
    };
    const SOURCE: &'static str = "state";
    const UPDATED: &'static str = "state.updated";
    const DELETED: &'static str = "state.deleted";
    const AUDIT: [&'static str; 3] = ["state.put", "state.rollback", "state.delete"];

    fn updated(key: &str, version: i64, hash: &str) -> Value {
        json!({"key": key, "version": version, "hash": hash})
    }

    fn deleted(key: &str, version: i64) -> Value {
        json!({"key": key, "version": version})
    }

    fn key_of(data: &Value) -> Option<String> {
        data.get("key")?.as_str().map(str::to_string)
    }
}

/// The state domain actor.
pub type StateStore = VersionedStore<StateDocs>;

/// What a queued write is, for its audit entry: who, and which kind of write.
pub struct Intent {
    caller: Caller,
    /// The write's fencing token.
    fence: Option<i64>,
    /// `Some(v)` for a rollback to version `v`.
    rollback: Option<i64>,
    /// Recorded instead of the write's own entry.
    audit_as: Option<Audit>,
}

/// A batch prepared for its transaction.
pub struct Work {
    repo: StateRepository,
    ops: Vec<WriteOp>,
    intents: Vec<Intent>,
    snapshot: HashMap<String, Option<Arc<StateEntry>>>,
    fences: HashMap<String, i64>,
    now: i64,
}

/// A versioned-document store of kind `K`.
pub struct VersionedStore<K: DocKind> {
    kind: PhantomData<K>,
    repo: StateRepository,
    current: BTreeMap<String, Arc<StateEntry>>,
    /// The highest fencing token that has written to each key (kept after a delete).
    fences: HashMap<String, i64>,
    path: WritePath<(WriteOp, Intent), Outcome>,
    /// How much history is kept.
    retention: HistoryRetention,
    /// How often the pruner runs.
    prune_interval: std::time::Duration,
    running: Running,
}

impl<K: DocKind> VersionedStore<K> {
    /// Loads every key's current value from the database and returns the actor, not yet
    /// started. `batch_max` bounds how many writes share one transaction.
    pub async fn load(
        db: DatabaseConnection,
        outbox: Outbox,
        batch_max: usize,
    ) -> Result<Self, sea_orm::DbErr> {
        let repo = StateRepository::new(db.clone(), K::TABLES);
        let current = repo
            .load_current()
            .await?
            .into_iter()
            .map(|e| (e.key.clone(), Arc::new(e)))
            .collect();
        let fences = repo.load_fences().await?;
        Ok(Self {
            kind: PhantomData,
            repo,
            current,
            fences,
            path: WritePath::new(db, outbox, batch_max),
            retention: HistoryRetention::default(),
            prune_interval: std::time::Duration::from_secs(60),
            running: Running::default(),
        })
    }

    /// Prunes history as `retention` allows every `interval` (never when it keeps all).
    pub fn with_retention(
        mut self,
        retention: HistoryRetention,
        interval: std::time::Duration,
    ) -> Self {
        self.retention = retention;
        self.prune_interval = interval;
        self
    }

    fn write(
        &mut self,
        op: WriteOp,
        intent: Intent,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Outcome> {
        enqueue(self, (op, intent), ctx)
    }
}

/// The audit entry and the event of each write that succeeded, in order.
fn records<K: DocKind>(results: &[Outcome], intents: Vec<Intent>) -> Records {
    let mut records = Records::new();
    for (result, intent) in results.iter().zip(intents) {
        let Ok(done) = result else { continue };
        let [put, rolled_back, deleted] = K::AUDIT;
        let (entry, event) = match (done, intent.rollback) {
            (WriteDone::Stored(e), None) => (
                Audit::new(put, e.key.as_str()).with("version", e.version),
                Publish::system(
                    K::UPDATED,
                    K::SOURCE,
                    K::updated(&e.key, e.version, &e.hash),
                ),
            ),
            (WriteDone::Stored(e), Some(from)) => (
                Audit::new(rolled_back, e.key.as_str())
                    .with("from_version", from)
                    .with("new_version", e.version),
                Publish::system(
                    K::UPDATED,
                    K::SOURCE,
                    K::updated(&e.key, e.version, &e.hash),
                ),
            ),
            (WriteDone::Deleted { key, version }, _) => (
                Audit::new(deleted, key.as_str()),
                Publish::system(K::DELETED, K::SOURCE, K::deleted(key, *version)),
            ),
        };
        records.audit(intent.audit_as.unwrap_or_else(|| entry.by(&intent.caller)));
        records.event(event);
    }
    records
}

impl<K: DocKind> GroupCommit for VersionedStore<K> {
    type Op = (WriteOp, Intent);
    type Out = Outcome;
    type Work = Work;
    type Done = Applied;

    fn write_path(&mut self) -> &mut WritePath<Self::Op, Outcome> {
        &mut self.path
    }

    fn prepare(&mut self, batch: Vec<Self::Op>, now: i64) -> Work {
        let mut snapshot = HashMap::new();
        let mut fences = HashMap::new();
        let (ops, intents): (Vec<WriteOp>, Vec<Intent>) = batch.into_iter().unzip();
        for op in &ops {
            snapshot
                .entry(op.key().to_string())
                .or_insert_with(|| self.current.get(op.key()).cloned());
            if let Some(&top) = self.fences.get(op.key()) {
                fences.insert(op.key().to_string(), top);
            }
        }
        Work {
            repo: self.repo.clone(),
            ops,
            intents,
            snapshot,
            fences,
            now,
        }
    }

    async fn write(work: Work, txn: &DatabaseTransaction) -> Result<(Applied, Records), DbErr> {
        let ops = work
            .ops
            .into_iter()
            .zip(work.intents.iter().map(|i| i.fence))
            .collect();
        let mut applied = work
            .repo
            .apply(txn, ops, work.snapshot, work.fences, work.now)
            .await?;
        let mut records = records::<K>(&applied.results, work.intents);
        for statement in std::mem::take(&mut applied.deferred) {
            records.defer(statement);
        }
        Ok((applied, records))
    }

    fn finish(&mut self, applied: Applied, _: &mut Context<Self>) -> Vec<Outcome> {
        self.fences.extend(applied.fences);
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
        applied.results
    }

    fn failed(error: &DbErr) -> Outcome {
        Err(StateError::Storage(error.to_string()))
    }
}

impl<K: DocKind> Actor for VersionedStore<K> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Writers wait for their commit, so a deep mailbox only holds waiting callers.
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
        if !self.retention.keeps_all() {
            ctx.run_interval(self.prune_interval, |_, ctx| ctx.notify(PruneHistory));
        }
    }
}

impl<K: DocKind> Handler<Reload> for VersionedStore<K> {
    type Result = ResponseActFuture<Self, Result<(), StateError>>;

    fn handle(&mut self, msg: Reload, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(
            async move {
                let found = repo
                    .load_keys(&msg.0)
                    .await
                    .map_err(|e| StateError::Storage(e.to_string()))?;
                Ok::<_, StateError>((msg.0, found))
            }
            .into_actor(self)
            .map(|read, act, _| {
                let (keys, found) = read?;
                for key in keys {
                    act.current.remove(&key);
                }
                for entry in found {
                    act.current.insert(entry.key.clone(), Arc::new(entry));
                }
                Ok(())
            }),
        )
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

impl<K: DocKind> Handler<PruneHistory> for VersionedStore<K> {
    type Result = ResponseFuture<Result<u64, StateError>>;

    fn handle(&mut self, _: PruneHistory, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        let retention = self.retention;
        let running = self.running.clone();
        Box::pin(async move {
            let Some(_run) = running.start().filter(|_| !retention.keeps_all()) else {
                return Ok(0);
            };
            let deleted = prune_history(&repo, retention).await?;
            if deleted > 0 {
                tracing::debug!(deleted, table = K::TABLES.versions, "pruned history");
            }
            Ok(deleted)
        })
    }
}

/// One pass over the table in id order (oldest first), in batches of [`PRUNE_BATCH`].
async fn prune_history(repo: &StateRepository, retention: HistoryRetention) -> Result<u64, DbErr> {
    let mut after = 0_i64;
    let mut deleted = 0;
    loop {
        let rule = PruneRule {
            keep: retention.keep_versions,
            before: retention.max_age.map(|age| cutoff(now_micros(), age)),
        };
        let batch = repo.prunable(after, rule, PRUNE_BATCH).await?;
        let Some(&last) = batch.last() else {
            break;
        };
        deleted += repo.prune(&batch, rule).await?;
        if (batch.len() as u64) < PRUNE_BATCH {
            break;
        }
        after = last;
        tokio::time::sleep(PRUNE_PAUSE).await;
    }
    Ok(deleted)
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
        let rx = self.write(
            WriteOp::Put {
                key: msg.key,
                value: msg.value,
                content_type: msg.content_type,
                hash: msg.hash,
                preconditions: msg.preconditions,
            },
            Intent {
                caller: msg.caller,
                fence: msg.fence,
                rollback: None,
                audit_as: msg.audit_as,
            },
            ctx,
        );
        Box::pin(async move { stored(committed(rx).await?) })
    }
}

impl<K: DocKind> Handler<DeleteKey> for VersionedStore<K> {
    type Result = ResponseFuture<Result<(), StateError>>;

    fn handle(&mut self, msg: DeleteKey, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.write(
            WriteOp::Delete {
                key: msg.key,
                preconditions: msg.preconditions,
            },
            Intent {
                caller: msg.caller,
                fence: msg.fence,
                rollback: None,
                audit_as: None,
            },
            ctx,
        );
        Box::pin(async move { committed(rx).await.map(|_| ()) })
    }
}

impl<K: DocKind> Handler<RollbackKey> for VersionedStore<K> {
    type Result = ResponseFuture<Result<Arc<StateEntry>, StateError>>;

    fn handle(&mut self, msg: RollbackKey, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.write(
            WriteOp::Rollback {
                key: msg.key,
                version: msg.version,
                preconditions: msg.preconditions,
            },
            Intent {
                caller: msg.caller,
                fence: msg.fence,
                rollback: Some(msg.version),
                audit_as: None,
            },
            ctx,
        );
        Box::pin(async move { stored(committed(rx).await?) })
    }
}
