//! SeaORM access to `state_versions`. Private to the state domain: only `StateStore` uses it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use entities::state_version::{self, Column, Entity};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};

use super::model::{Precondition, StateEntry, StateError, StoredVersion, VersionMeta};

/// Rows per multi-row INSERT (6 bound values each, far under SQLite's variable limit).
const INSERT_CHUNK: usize = 1000;

/// A queued write.
#[derive(Debug)]
pub enum WriteOp {
    Put {
        key: String,
        value: Bytes,
        content_type: String,
        hash: String,
        preconditions: Vec<Precondition>,
    },
    Delete {
        key: String,
        preconditions: Vec<Precondition>,
    },
    Rollback {
        key: String,
        version: i64,
        preconditions: Vec<Precondition>,
    },
}

impl WriteOp {
    /// The key this write touches.
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Put { key, .. }
            | WriteOp::Delete { key, .. }
            | WriteOp::Rollback { key, .. } => key,
        }
    }
}

/// What a write did, once committed.
#[derive(Debug)]
pub enum WriteDone {
    /// The key now has this entry (put or rollback).
    Stored(Arc<StateEntry>),
    /// The key was deleted; `version` was its last version.
    Deleted { key: String, version: i64 },
}

/// The outcome of one batch: per-write results, in order, and the new current entry
/// (or `None` = deleted) of every key the batch changed.
pub struct Applied {
    pub results: Vec<Result<WriteDone, StateError>>,
    pub changed: HashMap<String, Option<Arc<StateEntry>>>,
}

/// Handle to the state tables (cheap to clone: a pool handle).
#[derive(Clone)]
pub struct StateRepository {
    db: DatabaseConnection,
}

fn entry_from(m: state_version::Model) -> StateEntry {
    StateEntry {
        key: m.key,
        version: m.version,
        hash: m.hash,
        content_type: m.content_type,
        updated_at: m.updated_at,
        value: Bytes::from(m.value),
    }
}

impl StateRepository {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The newest version of every key: the store's memory at start-up.
    pub async fn load_current(&self) -> Result<Vec<StateEntry>, DbErr> {
        let sql = "SELECT s.key, s.version, s.value, s.hash, s.content_type, s.updated_at \
                   FROM state_versions s \
                   JOIN (SELECT key, MAX(version) AS version FROM state_versions GROUP BY key) m \
                   ON m.key = s.key AND m.version = s.version";
        let rows = Entity::find()
            .from_raw_sql(Statement::from_string(DbBackend::Sqlite, sql))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(entry_from).collect())
    }

    /// Up to `limit` versions of `key`, newest first, without values.
    pub async fn history(&self, key: &str, limit: u64) -> Result<Vec<VersionMeta>, DbErr> {
        let rows: Vec<(i64, String, String, i64)> = Entity::find()
            .select_only()
            .column(Column::Version)
            .column(Column::Hash)
            .column(Column::ContentType)
            .column(Column::UpdatedAt)
            .filter(Column::Key.eq(key))
            .order_by_desc(Column::Version)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(version, hash, content_type, updated_at)| VersionMeta {
                version,
                hash,
                content_type,
                updated_at,
            })
            .collect())
    }

    /// Version `version` of `key`, if stored.
    pub async fn version(&self, key: &str, version: i64) -> Result<Option<StoredVersion>, DbErr> {
        version_in(&self.db, key, version).await
    }

    /// Applies a batch of writes in one transaction, in order. Each write is checked
    /// against the state left by the writes before it (`snapshot` holds the committed
    /// current entry of every key in the batch). A write that fails its check or finds
    /// nothing gets its own error and changes nothing; the others still apply.
    pub async fn apply(
        &self,
        ops: Vec<WriteOp>,
        snapshot: HashMap<String, Option<Arc<StateEntry>>>,
        now: i64,
    ) -> Result<Applied, DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        let mut overlay = snapshot;
        let mut changed: HashMap<String, Option<Arc<StateEntry>>> = HashMap::new();
        let mut pending: Vec<state_version::ActiveModel> = Vec::new();
        let mut results = Vec::with_capacity(ops.len());

        for op in ops {
            let current = overlay.get(op.key()).cloned().flatten();
            let failed = match &op {
                WriteOp::Put { preconditions, .. }
                | WriteOp::Delete { preconditions, .. }
                | WriteOp::Rollback { preconditions, .. } => {
                    preconditions.iter().find(|p| !p.holds(current.as_deref()))
                }
            };
            if failed.is_some() {
                results.push(Err(StateError::PreconditionFailed {
                    current: current.as_ref().map(|c| c.version),
                }));
                continue;
            }
            let next_version = current.as_ref().map_or(1, |c| c.version + 1);
            let stored = match op {
                WriteOp::Put {
                    key,
                    value,
                    content_type,
                    hash,
                    ..
                } => StateEntry {
                    key,
                    version: next_version,
                    hash,
                    content_type,
                    updated_at: now,
                    value,
                },
                WriteOp::Delete { key, .. } => {
                    let Some(last) = current.as_ref().map(|c| c.version) else {
                        results.push(Err(StateError::KeyNotFound(key)));
                        continue;
                    };
                    flush_inserts(&txn, &mut pending).await?;
                    Entity::delete_many()
                        .filter(Column::Key.eq(key.as_str()))
                        .exec(&txn)
                        .await?;
                    overlay.insert(key.clone(), None);
                    changed.insert(key.clone(), None);
                    results.push(Ok(WriteDone::Deleted { key, version: last }));
                    continue;
                }
                WriteOp::Rollback { key, version, .. } => {
                    if current.is_none() {
                        results.push(Err(StateError::KeyNotFound(key)));
                        continue;
                    }
                    flush_inserts(&txn, &mut pending).await?;
                    let Some(old) = version_in(&txn, &key, version).await? else {
                        results.push(Err(StateError::VersionNotFound { key, version }));
                        continue;
                    };
                    StateEntry {
                        key,
                        version: next_version,
                        hash: old.hash,
                        content_type: old.content_type,
                        updated_at: now,
                        value: old.value,
                    }
                }
            };
            pending.push(state_version::ActiveModel {
                key: Set(stored.key.clone()),
                version: Set(stored.version),
                value: Set(stored.value.to_vec()),
                hash: Set(stored.hash.clone()),
                content_type: Set(stored.content_type.clone()),
                updated_at: Set(stored.updated_at),
            });
            let stored = Arc::new(stored);
            overlay.insert(stored.key.clone(), Some(stored.clone()));
            changed.insert(stored.key.clone(), Some(stored.clone()));
            results.push(Ok(WriteDone::Stored(stored)));
        }
        flush_inserts(&txn, &mut pending).await?;
        txn.commit().await?;
        Ok(Applied { results, changed })
    }
}

async fn flush_inserts<C: ConnectionTrait>(
    db: &C,
    pending: &mut Vec<state_version::ActiveModel>,
) -> Result<(), DbErr> {
    while !pending.is_empty() {
        let rest = pending.split_off(pending.len().min(INSERT_CHUNK));
        let chunk = std::mem::replace(pending, rest);
        Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

async fn version_in<C: ConnectionTrait>(
    db: &C,
    key: &str,
    version: i64,
) -> Result<Option<StoredVersion>, DbErr> {
    let row: Option<(i64, String, String, Vec<u8>)> = Entity::find()
        .select_only()
        .column(Column::Version)
        .column(Column::ContentType)
        .column(Column::Hash)
        .column(Column::Value)
        .filter(Column::Key.eq(key))
        .filter(Column::Version.eq(version))
        .into_tuple()
        .one(db)
        .await?;
    Ok(
        row.map(|(version, content_type, hash, value)| StoredVersion {
            version,
            content_type,
            hash,
            value: Bytes::from(value),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &'static [u8], preconditions: Vec<Precondition>) -> WriteOp {
        WriteOp::Put {
            key: key.into(),
            value: Bytes::from_static(value),
            content_type: "text/plain".into(),
            hash: format!("h-{}", String::from_utf8_lossy(value)),
            preconditions,
        }
    }

    #[actix_web::test]
    async fn one_batch_applies_puts_deletes_and_rollbacks_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::connect(&dir.path().join("data.db"), 1)
            .await
            .unwrap();
        crate::db::migrate(&db).await.unwrap();
        let repo = StateRepository::new(db);
        let ops = vec![
            put("k", b"a", vec![]),
            put("k", b"b", vec![]),
            WriteOp::Delete {
                key: "k".into(),
                preconditions: vec![],
            },
            put("k", b"c", vec![Precondition::Absent]),
            WriteOp::Rollback {
                key: "k".into(),
                version: 1,
                preconditions: vec![Precondition::Version(1)],
            },
            put("j", b"x", vec![Precondition::Version(5)]),
            WriteOp::Delete {
                key: "j".into(),
                preconditions: vec![],
            },
        ];
        let snapshot = HashMap::from([("k".to_string(), None), ("j".to_string(), None)]);
        let applied = repo.apply(ops, snapshot, 7).await.unwrap();
        let summary: Vec<String> = applied
            .results
            .iter()
            .map(|r| match r {
                Ok(WriteDone::Stored(e)) => format!("{}@{}={:?}", e.key, e.version, e.value),
                Ok(WriteDone::Deleted { key, version }) => format!("-{key}@{version}"),
                Err(e) => format!("err {e}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "k@1=b\"a\"",
                "k@2=b\"b\"",
                "-k@2",
                "k@1=b\"c\"",
                "k@2=b\"c\"",
                "err precondition failed: the current version is none (the key does not exist)",
                "err key not found: j",
            ]
        );
        let current = repo.load_current().await.unwrap();
        assert_eq!(current.len(), 1);
        assert_eq!(
            (current[0].version, current[0].value.as_ref()),
            (2, &b"c"[..])
        );
        assert_eq!(repo.history("k", 10).await.unwrap().len(), 2);
        assert!(matches!(applied.changed.get("k"), Some(Some(e)) if e.version == 2));
        assert!(!applied.changed.contains_key("j"));
    }
}
