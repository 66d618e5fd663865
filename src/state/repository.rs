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

/// Rows per multi-row INSERT (9 bound values each, far under SQLite's variable limit).
const INSERT_CHUNK: usize = 1000;

/// Every version whose number is a multiple of this is marked (`{kind}_marks`), so that
/// finding an old version walks at most this many links of its chain.
pub const MARK_EVERY: i64 = 256;

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

/// Handle to one versioned-document table and its heads (cheap to clone: a pool handle).
/// The table has the columns of `entities::state_version` (`state_versions` for state,
/// `spec_versions` for specs): every version is appended under a new, higher `id` and
/// links to its key's previous version (`prev_id`). The heads table (`state_heads`,
/// `spec_heads`) holds each key's current `id` and version. A write appends one row and
/// updates one head, so its cost does not grow with the history; reading a key's history
/// walks its chain from the head, and finding one old version starts from the nearest
/// mark above it (`state_marks`, `spec_marks`: every [`MARK_EVERY`]th version). The
/// names are compile-time constants of the document kind, never input.
#[derive(Clone)]
pub struct StateRepository {
    db: DatabaseConnection,
    tables: Tables,
}

/// The three tables of one kind of versioned document.
#[derive(Clone, Copy, Debug)]
pub struct Tables {
    /// Every version.
    pub versions: &'static str,
    /// Each key's current version.
    pub heads: &'static str,
    /// Every [`MARK_EVERY`]th version of each key.
    pub marks: &'static str,
}

/// The columns of a version row, for `SELECT`s through `entities::state_version`.
const ROW: &str = "s.id, s.key, s.version, s.value, s.hash, s.content_type, s.updated_at, \
                   s.fencing_token, s.prev_id";

fn entry_from(m: state_version::Model) -> StateEntry {
    StateEntry {
        id: m.id,
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
    pub fn new(db: DatabaseConnection, tables: Tables) -> Self {
        Self { db, tables }
    }

    /// The newest version of every key: the store's memory at start-up.
    pub async fn load_current(&self) -> Result<Vec<StateEntry>, DbErr> {
        let sql = format!(
            "SELECT {ROW} FROM {h} h JOIN {t} s ON s.id = h.id",
            t = self.tables.versions,
            h = self.tables.heads
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
                "SELECT {ROW} FROM {h} h JOIN {t} s ON s.id = h.id WHERE h.key IN ({marks})",
                t = self.tables.versions,
                h = self.tables.heads
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
                vec![self.tables.versions.into()],
            ))
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
            .collect()
    }

    /// Up to `limit` versions of `key`, newest first, without values: its chain, walked
    /// from its head.
    pub async fn history(&self, key: &str, limit: u64) -> Result<Vec<VersionMeta>, DbErr> {
        let sql = format!(
            "WITH RECURSIVE chain (id, version, hash, content_type, updated_at, \
             fencing_token, prev_id, n) AS (\
             SELECT s.id, s.version, s.hash, s.content_type, s.updated_at, s.fencing_token, \
             s.prev_id, 1 FROM {h} h JOIN {t} s ON s.id = h.id WHERE h.key = ? \
             UNION ALL \
             SELECT s.id, s.version, s.hash, s.content_type, s.updated_at, s.fencing_token, \
             s.prev_id, c.n + 1 FROM chain c JOIN {t} s ON s.id = c.prev_id WHERE c.n < ?) \
             SELECT version, hash, content_type, updated_at, fencing_token FROM chain \
             ORDER BY version DESC",
            t = self.tables.versions,
            h = self.tables.heads
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
        version_in(&self.db, self.tables, key, version).await
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
        let tables = self.tables;
        let mut overlay = snapshot;
        let mut highest = fences;
        let mut raised: HashMap<String, i64> = HashMap::new();
        let mut changed: HashMap<String, Option<Arc<StateEntry>>> = HashMap::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        // The next row id: one above the highest stored, read under the write lock the
        // first time this batch stores a version.
        let mut next_id: Option<i64> = None;

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
            let prev_id = current.as_ref().map(|c| c.id);
            // Never older than the version it follows, even if the clock stepped back: the
            // age rule then only ever cuts a chain's oldest versions, never its middle.
            let now = current.as_ref().map_or(now, |c| now.max(c.updated_at));
            let stored = match op {
                WriteOp::Put {
                    key,
                    value,
                    content_type,
                    hash,
                    ..
                } => StateEntry {
                    id: 0,
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
                    flush_inserts(txn, tables, &mut pending).await?;
                    delete_chain(txn, tables, &key).await?;
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
                    flush_inserts(txn, tables, &mut pending).await?;
                    let Some(old) = version_in(txn, tables, &key, version).await? else {
                        results.push(Err(StateError::VersionNotFound { key, version }));
                        continue;
                    };
                    StateEntry {
                        id: 0,
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
            let id = match next_id {
                Some(id) => id,
                None => highest_id(txn, tables.versions).await? + 1,
            };
            next_id = Some(id + 1);
            let stored = Arc::new(StateEntry { id, ..stored });
            pending.push(Pending {
                entry: stored.clone(),
                prev_id,
            });
            overlay.insert(stored.key.clone(), Some(stored.clone()));
            changed.insert(stored.key.clone(), Some(stored.clone()));
            results.push(Ok(WriteDone::Stored(stored)));
        }
        let deferred = insert_statements(txn.get_database_backend(), tables, &pending);
        for (key, token) in &raised {
            let backend = txn.get_database_backend();
            txn.execute_raw(stmt(
                backend,
                format!(
                    "INSERT INTO doc_fences (kind, key, highest) VALUES (?, ?, ?) \
                     ON CONFLICT (kind, key) DO UPDATE SET highest = {}",
                    crate::db::greatest(backend, "doc_fences.highest", "excluded.highest")
                ),
                vec![tables.versions.into(), key.as_str().into(), (*token).into()],
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

/// What a history prune removes: versions beyond the newest `keep` of their key, and
/// versions older than `before` (unix microseconds); never a key's current version.
#[derive(Clone, Copy, Debug)]
pub struct PruneRule {
    pub keep: Option<u64>,
    pub before: Option<i64>,
}

impl PruneRule {
    /// The SQL condition on the version row `{row}` and its key's head `h`, and its values.
    fn condition(&self, row: &str) -> (String, Vec<Value>) {
        let mut rules = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(keep) = self.keep {
            rules.push(format!("{row}.version <= h.version - ?"));
            values.push(i64::try_from(keep).unwrap_or(i64::MAX).into());
        }
        if let Some(before) = self.before {
            rules.push(format!("{row}.updated_at < ?"));
            values.push(before.into());
        }
        if rules.is_empty() {
            rules.push("1 = 0".into());
        }
        (
            format!(
                "h.key = {row}.key AND h.id <> {row}.id AND ({})",
                rules.join(" OR ")
            ),
            values,
        )
    }
}

impl StateRepository {
    /// The ids of up to `limit` versions that `rule` prunes, above `after`, oldest first.
    /// Read outside any write transaction.
    pub async fn prunable(
        &self,
        after: i64,
        rule: PruneRule,
        limit: u64,
    ) -> Result<Vec<i64>, DbErr> {
        let (condition, rule_values) = rule.condition("s");
        let sql = format!(
            "SELECT s.id FROM {t} s JOIN {h} h ON {condition} WHERE s.id > ? \
             ORDER BY s.id LIMIT ?",
            t = self.tables.versions,
            h = self.tables.heads
        );
        let mut values = rule_values;
        values.push(after.into());
        values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        let rows = self
            .db
            .query_all_raw(stmt(self.db.get_database_backend(), sql, values))
            .await?;
        rows.iter().map(|r| r.try_get_by_index(0)).collect()
    }

    /// Deletes the versions `ids` in one short write transaction, each only if `rule`
    /// still prunes it (checked again under the write lock: a key deleted and written
    /// again since the read keeps its new versions). Returns how many were deleted.
    pub async fn prune(&self, ids: &[i64], rule: PruneRule) -> Result<u64, DbErr> {
        if ids.is_empty() {
            return Ok(0);
        }
        let Tables {
            versions: table,
            heads,
            marks,
        } = self.tables;
        let (condition, rule_values) = rule.condition(table);
        let list = vec!["?"; ids.len()].join(", ");
        let sql = format!(
            "DELETE FROM {table} WHERE id IN ({list}) \
             AND EXISTS (SELECT 1 FROM {heads} h WHERE {condition})"
        );
        let listed: Vec<Value> = ids.iter().map(|&id| id.into()).collect();
        let mut values = listed.clone();
        values.extend(rule_values);
        // First the marks of the versions about to go, found through their rows (marks
        // are keyed by key and version).
        let (mark_condition, mut mark_values) = rule.condition("s");
        let marked = format!(
            "DELETE FROM {marks} WHERE (key, version) IN (SELECT s.key, s.version \
             FROM {table} s JOIN {heads} h ON {mark_condition} WHERE s.id IN ({list}))"
        );
        mark_values.extend(listed);
        let txn = crate::db::begin_write(&self.db).await?;
        let backend = txn.get_database_backend();
        txn.execute_raw(stmt(backend, marked, mark_values)).await?;
        let deleted = txn
            .execute_raw(stmt(backend, sql, values))
            .await?
            .rows_affected();
        txn.commit().await?;
        Ok(deleted)
    }
}

/// Raises `key`'s highest token to `token` (in the batch's view and in what it stores).
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

/// A version to store, and the id of its key's previous version.
struct Pending {
    entry: Arc<StateEntry>,
    prev_id: Option<i64>,
}

/// The highest row id stored in `table` (0 when empty).
async fn highest_id<C: ConnectionTrait>(db: &C, table: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            format!("SELECT COALESCE(MAX(id), 0) FROM {table}"),
            vec![],
        ))
        .await?;
    row.map_or(Ok(0), |r| r.try_get_by_index(0))
}

/// Deletes `key`'s chain (every version, walked from its head) and its head.
async fn delete_chain<C: ConnectionTrait>(db: &C, tables: Tables, key: &str) -> Result<(), DbErr> {
    let Tables {
        versions: table,
        heads,
        marks,
    } = tables;
    let backend = db.get_database_backend();
    db.execute_raw(stmt(
        backend,
        format!(
            "WITH RECURSIVE chain (id) AS (SELECT id FROM {heads} WHERE key = ? \
             UNION ALL SELECT s.prev_id FROM chain c JOIN {table} s ON s.id = c.id \
             WHERE s.prev_id IS NOT NULL) \
             DELETE FROM {table} WHERE id IN (SELECT id FROM chain)"
        ),
        vec![key.into()],
    ))
    .await?;
    for table in [heads, marks] {
        db.execute_raw(stmt(
            backend,
            format!("DELETE FROM {table} WHERE key = ?"),
            vec![key.into()],
        ))
        .await?;
    }
    Ok(())
}

async fn flush_inserts<C: ConnectionTrait>(
    db: &C,
    tables: Tables,
    pending: &mut Vec<Pending>,
) -> Result<(), DbErr> {
    for statement in insert_statements(db.get_database_backend(), tables, pending) {
        db.execute_raw(statement).await?;
    }
    pending.clear();
    Ok(())
}

/// Multi-row INSERTs of `rows` (up to `INSERT_CHUNK` rows each), then one upsert of the
/// head of every key they touch (its last row), and the marks among them.
fn insert_statements(backend: DbBackend, tables: Tables, rows: &[Pending]) -> Vec<Statement> {
    if rows.is_empty() {
        return Vec::new();
    }
    let Tables {
        versions: table,
        heads,
        marks,
    } = tables;
    let mut statements: Vec<Statement> = rows
        .chunks(INSERT_CHUNK)
        .map(|chunk| {
            let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 9);
            for Pending { entry: e, prev_id } in chunk {
                values.push(e.id.into());
                values.push(e.key.as_str().into());
                values.push(e.version.into());
                values.push(e.value.to_vec().into());
                values.push(e.hash.as_str().into());
                values.push(e.content_type.as_str().into());
                values.push(e.updated_at.into());
                values.push(e.fencing_token.into());
                values.push((*prev_id).into());
            }
            stmt(
                backend,
                format!(
                    "INSERT INTO {table} (id, key, version, value, hash, content_type, \
                     updated_at, fencing_token, prev_id) VALUES {placeholders}"
                ),
                values,
            )
        })
        .collect();
    // One row per key (an upsert may not touch a row twice), in first-seen order.
    let mut last: Vec<&StateEntry> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for Pending { entry, .. } in rows {
        match at.get(entry.key.as_str()) {
            Some(&i) => last[i] = entry,
            None => {
                at.insert(entry.key.as_str(), last.len());
                last.push(entry);
            }
        }
    }
    let marked: Vec<&StateEntry> = rows
        .iter()
        .map(|p| p.entry.as_ref())
        .filter(|e| e.version % MARK_EVERY == 0)
        .collect();
    for (entries, into, conflict) in [(last, heads, "(key)"), (marked, marks, "(key, version)")] {
        for chunk in entries.chunks(INSERT_CHUNK) {
            let placeholders = vec!["(?, ?, ?)"; chunk.len()].join(", ");
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 3);
            for e in chunk {
                values.push(e.key.as_str().into());
                values.push(e.id.into());
                values.push(e.version.into());
            }
            statements.push(stmt(
                backend,
                format!(
                    "INSERT INTO {into} (key, id, version) VALUES {placeholders} \
                     ON CONFLICT {conflict} DO UPDATE SET id = excluded.id, \
                     version = excluded.version"
                ),
                values,
            ));
        }
    }
    statements
}

/// Version `version` of `key`: its chain, walked down to that version from the nearest
/// mark at or above it (at most [`MARK_EVERY`] links), or else from its head.
async fn version_in<C: ConnectionTrait>(
    db: &C,
    tables: Tables,
    key: &str,
    version: i64,
) -> Result<Option<StoredVersion>, DbErr> {
    let Tables {
        versions: table,
        heads,
        marks,
    } = tables;
    let sql = format!(
        "WITH RECURSIVE chain (id, version, prev_id) AS (\
         SELECT s.id, s.version, s.prev_id FROM {table} s WHERE s.id = COALESCE(\
         (SELECT m.id FROM {marks} m WHERE m.key = ? AND m.version >= ? \
         ORDER BY m.version LIMIT 1), \
         (SELECT h.id FROM {heads} h WHERE h.key = ?)) AND s.key = ? \
         UNION ALL \
         SELECT s.id, s.version, s.prev_id FROM chain c JOIN {table} s ON s.id = c.prev_id \
         WHERE c.version > ?) \
         SELECT s.version, s.content_type, s.hash, s.value FROM chain c \
         JOIN {table} s ON s.id = c.id WHERE c.version = ?"
    );
    let Some(row) = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            sql,
            vec![
                key.into(),
                version.into(),
                key.into(),
                key.into(),
                version.into(),
                version.into(),
            ],
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
    use crate::state::{DocKind, StateDocs};

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
        let (_dir, db, repo) = store().await;
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
        let applied = apply_batch(&repo, &db, ops, snapshot).await;
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

    /// A repository on a fresh, migrated database (the directory lives as long as it).
    async fn store() -> (tempfile::TempDir, DatabaseConnection, StateRepository) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::connect(&dir.path().join("data.db"), 1)
            .await
            .unwrap();
        crate::db::migrate(&db).await.unwrap();
        let repo = StateRepository::new(db.clone(), StateDocs::TABLES);
        (dir, db, repo)
    }

    /// Applies `ops` over `snapshot` and commits them with their deferred inserts, as the
    /// store's write path does.
    async fn apply_batch(
        repo: &StateRepository,
        db: &DatabaseConnection,
        ops: Vec<WriteOp>,
        snapshot: HashMap<String, Option<Arc<StateEntry>>>,
    ) -> Applied {
        let txn = crate::db::begin_write(db).await.unwrap();
        let ops = ops.into_iter().map(|op| (op, None)).collect();
        let mut applied = repo
            .apply(&txn, ops, snapshot, HashMap::new(), 7)
            .await
            .unwrap();
        for statement in std::mem::take(&mut applied.deferred) {
            txn.execute_raw(statement).await.unwrap();
        }
        txn.commit().await.unwrap();
        applied
    }

    /// Commits one batch of `ops` on top of `current` and records in it the new current
    /// entry of every key the batch changed.
    async fn commit(
        repo: &StateRepository,
        db: &DatabaseConnection,
        ops: Vec<WriteOp>,
        current: &mut HashMap<String, Option<Arc<StateEntry>>>,
    ) {
        let snapshot = ops
            .iter()
            .map(|op| {
                (
                    op.key().to_string(),
                    current.get(op.key()).cloned().flatten(),
                )
            })
            .collect();
        let applied = apply_batch(repo, db, ops, snapshot).await;
        current.extend(applied.changed);
    }

    async fn rows(db: &DatabaseConnection) -> i64 {
        let row = db
            .query_one_raw(stmt(
                DbBackend::Sqlite,
                "SELECT COUNT(*) FROM state_versions".into(),
                vec![],
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    }

    #[actix_web::test]
    async fn chains_link_versions_and_pruning_cuts_them_from_the_oldest() {
        let (_dir, db, repo) = store().await;
        let mut current = HashMap::new();
        const VALUES: [&[u8]; 6] = [b"0", b"1", b"2", b"3", b"4", b"5"];
        // Two keys written in turns, so their chains interleave in the table.
        for (i, value) in VALUES.into_iter().enumerate() {
            let key = if i % 3 == 2 { "b" } else { "a" };
            commit(&repo, &db, vec![put(key, value, vec![])], &mut current).await;
        }
        let versions = |h: Vec<VersionMeta>| h.iter().map(|v| v.version).collect::<Vec<_>>();
        assert_eq!(versions(repo.history("a", 10).await.unwrap()), [4, 3, 2, 1]);
        assert_eq!(versions(repo.history("a", 2).await.unwrap()), [4, 3]);
        assert_eq!(versions(repo.history("b", 10).await.unwrap()), [2, 1]);
        let old = repo.version("a", 2).await.unwrap().unwrap();
        assert_eq!(old.value.as_ref(), b"1");
        assert!(repo.version("a", 5).await.unwrap().is_none());
        assert!(repo.version("c", 1).await.unwrap().is_none());

        // Keep the newest two versions of each key.
        let rule = PruneRule {
            keep: Some(2),
            before: None,
        };
        let ids = repo.prunable(0, rule, 100).await.unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(repo.prune(&ids, rule).await.unwrap(), 2);
        assert_eq!(versions(repo.history("a", 10).await.unwrap()), [4, 3]);
        assert_eq!(versions(repo.history("b", 10).await.unwrap()), [2, 1]);
        assert!(repo.version("a", 2).await.unwrap().is_none());
        assert_eq!(
            repo.version("a", 3).await.unwrap().unwrap().value.as_ref(),
            b"3"
        );
        // Nothing older than everything: the current versions are never pruned.
        let all = PruneRule {
            keep: None,
            before: Some(i64::MAX),
        };
        let ids = repo.prunable(0, all, 100).await.unwrap();
        assert_eq!(repo.prune(&ids, all).await.unwrap(), 2);
        assert_eq!(rows(&db).await, 2);
        assert_eq!(repo.load_current().await.unwrap().len(), 2);

        // A rollback, then a delete that takes the whole chain; the key starts afresh.
        let rollback = WriteOp::Rollback {
            key: "a".into(),
            version: 4,
            preconditions: vec![],
        };
        commit(
            &repo,
            &db,
            vec![put("a", b"x", vec![]), rollback],
            &mut current,
        )
        .await;
        assert_eq!(
            repo.version("a", 6).await.unwrap().unwrap().value.as_ref(),
            b"4"
        );
        let delete = WriteOp::Delete {
            key: "a".into(),
            preconditions: vec![],
        };
        commit(
            &repo,
            &db,
            vec![delete, put("a", b"y", vec![])],
            &mut current,
        )
        .await;
        assert_eq!(versions(repo.history("a", 10).await.unwrap()), [1]);
        assert_eq!(rows(&db).await, 2);
        assert_eq!(
            repo.version("a", 1).await.unwrap().unwrap().value.as_ref(),
            b"y"
        );
    }

    async fn marks(db: &DatabaseConnection) -> Vec<i64> {
        let rows = db
            .query_all_raw(stmt(
                DbBackend::Sqlite,
                "SELECT version FROM state_marks ORDER BY version".into(),
                vec![],
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect()
    }

    #[actix_web::test]
    async fn marks_find_old_versions_and_go_with_them() {
        let (_dir, db, repo) = store().await;
        let mut current = HashMap::new();
        let value = |v: i64| format!("v{v}");
        let ops = (1..=600)
            .map(|v| WriteOp::Put {
                key: "k".into(),
                value: Bytes::from(value(v)),
                content_type: "text/plain".into(),
                hash: format!("h{v}"),
                preconditions: vec![],
            })
            .collect();
        commit(&repo, &db, ops, &mut current).await;
        // An unrelated key between, so ids and versions differ.
        commit(&repo, &db, vec![put("other", b"o", vec![])], &mut current).await;
        assert_eq!(marks(&db).await, [256, 512]);
        for v in [1, 255, 256, 257, 511, 512, 513, 600] {
            let found = repo.version("k", v).await.unwrap().unwrap();
            assert_eq!((found.version, found.value), (v, Bytes::from(value(v))));
        }
        assert!(repo.version("k", 601).await.unwrap().is_none());
        assert!(repo.version("k", 0).await.unwrap().is_none());

        // Keep 100: versions up to 500 go, and the mark of 256 with them.
        let rule = PruneRule {
            keep: Some(100),
            before: None,
        };
        let ids = repo.prunable(0, rule, 1000).await.unwrap();
        assert_eq!(repo.prune(&ids, rule).await.unwrap(), 500);
        assert_eq!(marks(&db).await, [512]);
        assert!(repo.version("k", 300).await.unwrap().is_none());
        assert!(repo.version("k", 500).await.unwrap().is_none());
        assert_eq!(repo.version("k", 501).await.unwrap().unwrap().version, 501);
        assert_eq!(repo.version("k", 512).await.unwrap().unwrap().version, 512);

        // A delete takes the marks too, and the new chain's versions are its own.
        let delete = WriteOp::Delete {
            key: "k".into(),
            preconditions: vec![],
        };
        commit(
            &repo,
            &db,
            vec![delete, put("k", b"new", vec![])],
            &mut current,
        )
        .await;
        assert!(marks(&db).await.is_empty());
        assert_eq!(
            repo.version("k", 1).await.unwrap().unwrap().value.as_ref(),
            b"new"
        );
        assert!(repo.version("k", 512).await.unwrap().is_none());
    }
}
