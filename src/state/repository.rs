//! SQL access to a versioned-document table. Private to the state domain: only the
//! `VersionedStore` actor (state and specs) uses it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use entities::state_version::{self, Entity};
use futures_util::TryStreamExt;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, Statement, Value,
};

use super::model::{Precondition, StateEntry, StateError, StoredVersion, VersionMeta};

/// Rows per multi-row INSERT (7 bound values each, far under SQLite's variable limit).
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

/// The outcome of one batch: per-write results, in order, the new current entry (or
/// `None` = deleted) of every key the batch changed, and the new highest fencing token of
/// every key a fenced write raised.
pub struct Applied {
    pub results: Vec<Result<WriteDone, StateError>>,
    pub changed: HashMap<String, Option<Arc<StateEntry>>>,
    pub fences: HashMap<String, i64>,
    /// The batch's last version inserts, not yet run: the caller hands them to the
    /// journal, which runs them with its own inserts in one round trip.
    pub deferred: Vec<Statement>,
}

/// Handle to one versioned-document table (cheap to clone: a pool handle). The table has
/// the columns of `entities::state_version` (`state_versions` for state, `spec_versions`
/// for specs); its name is a compile-time constant of the document kind, never input.
#[derive(Clone)]
pub struct StateRepository {
    db: DatabaseConnection,
    table: &'static str,
}

fn entry_from(m: state_version::Model) -> StateEntry {
    StateEntry {
        key: m.key,
        version: m.version,
        hash: m.hash,
        content_type: m.content_type,
        updated_at: m.updated_at,
        value: Bytes::from(m.value),
        fencing_token: m.fencing_token,
    }
}

fn stmt(backend: DbBackend, sql: String, values: Vec<Value>) -> Statement {
    crate::db::statement(backend, sql, values)
}

impl StateRepository {
    pub fn new(db: DatabaseConnection, table: &'static str) -> Self {
        Self { db, table }
    }

    /// The newest version of every key: the store's memory at start-up.
    pub async fn load_current(&self) -> Result<Vec<StateEntry>, DbErr> {
        let sql = format!(
            "SELECT s.key, s.version, s.value, s.hash, s.content_type, s.updated_at, \
             s.fencing_token \
             FROM {t} s \
             JOIN (SELECT key, MAX(version) AS version FROM {t} GROUP BY key) m \
             ON m.key = s.key AND m.version = s.version",
            t = self.table
        );
        // Row by row: the whole result is never buffered beside the entries made from it.
        let mut rows = Entity::find()
            .from_raw_sql(stmt(self.db.get_database_backend(), sql, vec![]))
            .stream(&self.db)
            .await?;
        let mut entries = Vec::new();
        while let Some(row) = rows.try_next().await? {
            entries.push(entry_from(row));
        }
        Ok(entries)
    }

    /// The newest version of each of `keys` that exists (a follower's reload, API §27).
    pub async fn load_keys(&self, keys: &[String]) -> Result<Vec<StateEntry>, DbErr> {
        let mut found = Vec::new();
        for chunk in keys.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT s.key, s.version, s.value, s.hash, s.content_type, s.updated_at, \
                 s.fencing_token \
                 FROM {t} s \
                 JOIN (SELECT key, MAX(version) AS version FROM {t} \
                 WHERE key IN ({marks}) GROUP BY key) m \
                 ON m.key = s.key AND m.version = s.version",
                t = self.table
            );
            let values = chunk.iter().map(|k| Value::from(k.as_str())).collect();
            let rows = Entity::find()
                .from_raw_sql(stmt(self.db.get_database_backend(), sql, values))
                .all(&self.db)
                .await?;
            found.extend(rows.into_iter().map(entry_from));
        }
        Ok(found)
    }

    /// The highest fencing token that has written to each key of this kind (kept after a
    /// delete).
    pub async fn load_fences(&self) -> Result<HashMap<String, i64>, DbErr> {
        let rows = self
            .db
            .query_all_raw(stmt(
                self.db.get_database_backend(),
                "SELECT key, highest FROM doc_fences WHERE kind = ?".into(),
                vec![self.table.into()],
            ))
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
            .collect()
    }

    /// Up to `limit` versions of `key`, newest first, without values.
    pub async fn history(&self, key: &str, limit: u64) -> Result<Vec<VersionMeta>, DbErr> {
        let sql = format!(
            "SELECT version, hash, content_type, updated_at, fencing_token FROM {} \
             WHERE key = ? ORDER BY version DESC LIMIT ?",
            self.table
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .db
            .query_all_raw(stmt(
                self.db.get_database_backend(),
                sql,
                vec![key.into(), limit.into()],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(VersionMeta {
                    version: r.try_get_by_index(0)?,
                    hash: r.try_get_by_index(1)?,
                    content_type: r.try_get_by_index(2)?,
                    updated_at: r.try_get_by_index(3)?,
                    fencing_token: r.try_get_by_index(4)?,
                })
            })
            .collect()
    }

    /// Version `version` of `key`, if stored.
    pub async fn version(&self, key: &str, version: i64) -> Result<Option<StoredVersion>, DbErr> {
        version_in(&self.db, self.table, key, version).await
    }

    /// Applies a batch of writes through `txn` (which the caller commits), in order. Each
    /// write is checked against the state left by the writes before it (`snapshot` holds
    /// the committed current entry of every key in the batch, `fences` the highest
    /// fencing token of every key that has one): its fencing token first (API §22), then
    /// its preconditions. A write that fails its check or finds nothing gets its own error
    /// and changes nothing; the others still apply.
    pub async fn apply<C: ConnectionTrait>(
        &self,
        txn: &C,
        ops: Vec<(WriteOp, Option<i64>)>,
        snapshot: HashMap<String, Option<Arc<StateEntry>>>,
        fences: HashMap<String, i64>,
        now: i64,
    ) -> Result<Applied, DbErr> {
        let table = self.table;
        let mut overlay = snapshot;
        let mut highest = fences;
        let mut raised: HashMap<String, i64> = HashMap::new();
        let mut changed: HashMap<String, Option<Arc<StateEntry>>> = HashMap::new();
        let mut pending: Vec<Arc<StateEntry>> = Vec::new();
        let mut results = Vec::with_capacity(ops.len());

        for (op, fence) in ops {
            if let (Some(token), Some(&top)) = (fence, highest.get(op.key()))
                && token < top
            {
                results.push(Err(StateError::Fenced { highest: top }));
                continue;
            }
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
                    fencing_token: fence,
                },
                WriteOp::Delete { key, .. } => {
                    let Some(last) = current.as_ref().map(|c| c.version) else {
                        results.push(Err(StateError::KeyNotFound(key)));
                        continue;
                    };
                    flush_inserts(txn, table, &mut pending).await?;
                    txn.execute_raw(stmt(
                        txn.get_database_backend(),
                        format!("DELETE FROM {table} WHERE key = ?"),
                        vec![key.as_str().into()],
                    ))
                    .await?;
                    overlay.insert(key.clone(), None);
                    changed.insert(key.clone(), None);
                    if let Some(token) = fence {
                        raise(&mut highest, &mut raised, &key, token);
                    }
                    results.push(Ok(WriteDone::Deleted { key, version: last }));
                    continue;
                }
                WriteOp::Rollback { key, version, .. } => {
                    if current.is_none() {
                        results.push(Err(StateError::KeyNotFound(key)));
                        continue;
                    }
                    flush_inserts(txn, table, &mut pending).await?;
                    let Some(old) = version_in(txn, table, &key, version).await? else {
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
                        fencing_token: fence,
                    }
                }
            };
            if let Some(token) = fence {
                raise(&mut highest, &mut raised, &stored.key, token);
            }
            let stored = Arc::new(stored);
            pending.push(stored.clone());
            overlay.insert(stored.key.clone(), Some(stored.clone()));
            changed.insert(stored.key.clone(), Some(stored.clone()));
            results.push(Ok(WriteDone::Stored(stored)));
        }
        let deferred = insert_statement(txn.get_database_backend(), table, &pending);
        for (key, token) in &raised {
            let backend = txn.get_database_backend();
            txn.execute_raw(stmt(
                backend,
                format!(
                    "INSERT INTO doc_fences (kind, key, highest) VALUES (?, ?, ?) \
                     ON CONFLICT (kind, key) DO UPDATE SET highest = {}",
                    crate::db::greatest(backend, "doc_fences.highest", "excluded.highest")
                ),
                vec![table.into(), key.as_str().into(), (*token).into()],
            ))
            .await?;
        }
        Ok(Applied {
            results,
            changed,
            fences: raised,
            deferred,
        })
    }
}

/// Raises `key`'s highest token to `token` (in the batch's view and in what it stores).
/// What a history prune removes: versions beyond the newest `keep` of their key, and
/// versions older than `before` (unix microseconds); never a key's current version.
#[derive(Clone, Copy, Debug)]
pub struct PruneRule {
    pub keep: Option<u64>,
    pub before: Option<i64>,
}

impl PruneRule {
    /// The SQL condition on the row `{alias}` of `table`, and its values.
    fn condition(&self, table: &str, alias: &str) -> (String, Vec<Value>) {
        let top = format!("(SELECT MAX(m.version) FROM {table} m WHERE m.key = {alias}.key)");
        let mut rules = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(keep) = self.keep {
            rules.push(format!("{alias}.version <= {top} - ?"));
            values.push(i64::try_from(keep).unwrap_or(i64::MAX).into());
        }
        if let Some(before) = self.before {
            rules.push(format!("{alias}.updated_at < ?"));
            values.push(before.into());
        }
        if rules.is_empty() {
            rules.push("1 = 0".into());
        }
        (
            format!("{alias}.version < {top} AND ({})", rules.join(" OR ")),
            values,
        )
    }
}

impl StateRepository {
    /// Up to `limit` versions that `rule` prunes, after `after` in (key, version) order,
    /// as (key, version). Read outside any write transaction.
    pub async fn prunable(
        &self,
        after: (&str, i64),
        rule: PruneRule,
        limit: u64,
    ) -> Result<Vec<(String, i64)>, DbErr> {
        let (condition, rule_values) = rule.condition(self.table, "s");
        let sql = format!(
            "SELECT s.key, s.version FROM {t} s WHERE (s.key, s.version) > (?, ?) AND {condition} \
             ORDER BY s.key, s.version LIMIT ?",
            t = self.table
        );
        let mut values: Vec<Value> = vec![after.0.into(), after.1.into()];
        values.extend(rule_values);
        values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        let rows = self
            .db
            .query_all_raw(stmt(self.db.get_database_backend(), sql, values))
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
            .collect()
    }

    /// Deletes `versions` in one short write transaction, each only if `rule` still prunes
    /// it (checked again under the write lock: a key deleted and written again since the
    /// read keeps its new versions). Returns how many were deleted.
    pub async fn prune(&self, versions: &[(String, i64)], rule: PruneRule) -> Result<u64, DbErr> {
        if versions.is_empty() {
            return Ok(0);
        }
        let table = self.table;
        let (condition, rule_values) = rule.condition(table, table);
        let rows = vec!["(?, ?)"; versions.len()].join(", ");
        let sql =
            format!("DELETE FROM {table} WHERE (key, version) IN (VALUES {rows}) AND {condition}");
        let mut values: Vec<Value> = Vec::with_capacity(versions.len() * 2 + 2);
        for (key, version) in versions {
            values.push(key.as_str().into());
            values.push((*version).into());
        }
        values.extend(rule_values);
        let txn = crate::db::begin_write(&self.db).await?;
        let deleted = txn
            .execute_raw(stmt(txn.get_database_backend(), sql, values))
            .await?
            .rows_affected();
        txn.commit().await?;
        Ok(deleted)
    }
}

fn raise(
    highest: &mut HashMap<String, i64>,
    raised: &mut HashMap<String, i64>,
    key: &str,
    token: i64,
) {
    let top = highest.entry(key.to_string()).or_insert(token);
    *top = (*top).max(token);
    raised.insert(key.to_string(), *top);
}

async fn flush_inserts<C: ConnectionTrait>(
    db: &C,
    table: &str,
    pending: &mut Vec<Arc<StateEntry>>,
) -> Result<(), DbErr> {
    for statement in insert_statement(db.get_database_backend(), table, pending) {
        db.execute_raw(statement).await?;
    }
    pending.clear();
    Ok(())
}

/// Multi-row INSERTs of `rows` (up to `INSERT_CHUNK` rows each).
fn insert_statement(backend: DbBackend, table: &str, rows: &[Arc<StateEntry>]) -> Vec<Statement> {
    rows.chunks(INSERT_CHUNK)
        .map(|chunk| {
            let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 7);
            for e in chunk {
                values.push(e.key.as_str().into());
                values.push(e.version.into());
                values.push(e.value.to_vec().into());
                values.push(e.hash.as_str().into());
                values.push(e.content_type.as_str().into());
                values.push(e.updated_at.into());
                values.push(e.fencing_token.into());
            }
            stmt(
                backend,
                format!(
                    "INSERT INTO {table} \
                     (key, version, value, hash, content_type, updated_at, fencing_token) \
                     VALUES {placeholders}"
                ),
                values,
            )
        })
        .collect()
}

async fn version_in<C: ConnectionTrait>(
    db: &C,
    table: &str,
    key: &str,
    version: i64,
) -> Result<Option<StoredVersion>, DbErr> {
    let sql = format!(
        "SELECT version, content_type, hash, value FROM {table} WHERE key = ? AND version = ?"
    );
    let Some(row) = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            sql,
            vec![key.into(), version.into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    let value: Vec<u8> = row.try_get_by_index(3)?;
    Ok(Some(StoredVersion {
        version: row.try_get_by_index(0)?,
        content_type: row.try_get_by_index(1)?,
        hash: row.try_get_by_index(2)?,
        value: Bytes::from(value),
    }))
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
        let repo = StateRepository::new(db.clone(), "state_versions");
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
        let txn = crate::db::begin_write(&db).await.unwrap();
        let ops = ops.into_iter().map(|op| (op, None)).collect();
        let mut applied = repo
            .apply(&txn, ops, snapshot, HashMap::new(), 7)
            .await
            .unwrap();
        for statement in std::mem::take(&mut applied.deferred) {
            txn.execute_raw(statement).await.unwrap();
        }
        txn.commit().await.unwrap();
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
