//! SeaORM access to `audit_log`. Private to the audit domain: only `AuditLog` uses it.
//! There is deliberately no insert or update of an entry here: entries are appended by the
//! writers' transactions through [`crate::journal`], and never changed. The one delete is
//! pruning ([`AuditRepository::prune_through`]), behind the checkpoint it moves first.

use entities::audit_entry::{Column, Entity, Model};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::model::{AuditEntry, AuditFilter, AuditSummary, Checkpoint};

/// Rows read per page while verifying the chain.
const VERIFY_PAGE: u64 = 2000;

/// Handle to the audit table (cheap to clone: a pool handle).
#[derive(Clone)]
pub struct AuditRepository {
    db: DatabaseConnection,
}

fn entry(m: Model) -> AuditEntry {
    AuditEntry {
        id: m.id,
        timestamp: m.timestamp,
        actor: m.actor,
        action: m.action,
        resource: m.resource,
        detail: m.detail,
        outcome: m.outcome,
        hash: m.hash,
    }
}

impl AuditRepository {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Up to `limit` matching entries, newest first.
    pub async fn query(&self, f: &AuditFilter, limit: u64) -> Result<Vec<AuditEntry>, DbErr> {
        let mut q = crate::db::within(Entity::find(), Column::Timestamp, f.from, f.to);
        if let Some(actor) = &f.actor {
            q = q.filter(Column::Actor.eq(actor.as_str()));
        }
        if let Some(action) = &f.action {
            q = q.filter(Column::Action.eq(action.as_str()));
        }
        let rows = q
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(entry).collect())
    }

    /// Counts over the entries in range.
    pub async fn summary(&self, from: Option<i64>, to: Option<i64>) -> Result<AuditSummary, DbErr> {
        let mut out = AuditSummary::default();
        for (column, counts) in [
            (Column::Action, &mut out.action_counts),
            (Column::Outcome, &mut out.outcome_counts),
        ] {
            let rows: Vec<(String, i64)> =
                crate::db::within(Entity::find(), Column::Timestamp, from, to)
                    .select_only()
                    .column(column)
                    .column_as(Column::Id.count(), "n")
                    .group_by(column)
                    .into_tuple()
                    .all(&self.db)
                    .await?;
            counts.extend(rows);
        }
        out.total_entries = out.action_counts.values().sum();
        let (actors, resources): (i64, i64) =
            crate::db::within(Entity::find(), Column::Timestamp, from, to)
                .select_only()
                .column_as(
                    sea_orm::sea_query::Expr::cust("COUNT(DISTINCT actor)"),
                    "actors",
                )
                .column_as(
                    sea_orm::sea_query::Expr::cust("COUNT(DISTINCT resource)"),
                    "resources",
                )
                .into_tuple()
                .one(&self.db)
                .await?
                .unwrap_or((0, 0));
        out.unique_actors = actors;
        out.unique_resources = resources;
        Ok(out)
    }

    /// Up to `VERIFY_PAGE` entries with ids above `after`, oldest first.
    pub async fn page_after(&self, after: i64) -> Result<Vec<AuditEntry>, DbErr> {
        let rows = Entity::find()
            .filter(Column::Id.gt(after))
            .order_by_asc(Column::Id)
            .limit(VERIFY_PAGE)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(entry).collect())
    }

    /// The id of the newest entry (0 when empty).
    pub async fn max_id(&self) -> Result<i64, DbErr> {
        let id: Option<i64> = Entity::find()
            .select_only()
            .column(Column::Id)
            .order_by_desc(Column::Id)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// The checkpoint a pruned log is verified from (`None` when never pruned).
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, DbErr> {
        checkpoint_in(&self.db).await
    }

    /// Up to `limit` entries after `after` (the checkpoint) that are older than `before`
    /// (unix microseconds), oldest first; never the newest entry, whose hash the next
    /// entry chains to. Times never decrease in id order, so these are a prefix of the log.
    pub async fn prunable(
        &self,
        after: i64,
        before: i64,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, DbErr> {
        let newest = self.max_id().await?;
        let rows = Entity::find()
            .filter(Column::Id.gt(after))
            .filter(Column::Id.lt(newest))
            .filter(Column::Timestamp.lt(before))
            .order_by_asc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(entry).collect())
    }

    /// In one write transaction: moves the checkpoint to `last` (pruned at `now`), then
    /// deletes every entry up to it (the trigger on `audit_log` lets exactly those go).
    /// Returns how many entries were deleted.
    pub async fn prune_through(&self, last: &AuditEntry, now: i64) -> Result<u64, DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        let backend = txn.get_database_backend();
        txn.execute_raw(crate::db::statement(
            backend,
            "INSERT INTO audit_checkpoint (id, through_id, hash, through_timestamp, pruned_at) \
             VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
             through_id = excluded.through_id, hash = excluded.hash, \
             through_timestamp = excluded.through_timestamp, pruned_at = excluded.pruned_at",
            vec![
                last.id.into(),
                last.hash.as_str().into(),
                last.timestamp.into(),
                now.into(),
            ],
        ))
        .await?;
        let deleted = Entity::delete_many()
            .filter(Column::Id.lte(last.id))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(deleted)
    }
}

/// The checkpoint, read through `conn`.
async fn checkpoint_in<C: ConnectionTrait>(conn: &C) -> Result<Option<Checkpoint>, DbErr> {
    let row = conn
        .query_one_raw(crate::db::statement(
            conn.get_database_backend(),
            "SELECT through_id, hash, through_timestamp, pruned_at FROM audit_checkpoint \
             WHERE id = 1",
            vec![],
        ))
        .await?;
    row.map(|r| {
        Ok(Checkpoint {
            id: r.try_get_by_index(0)?,
            hash: r.try_get_by_index(1)?,
            timestamp: r.try_get_by_index(2)?,
            pruned_at: r.try_get_by_index(3)?,
        })
    })
    .transpose()
}
