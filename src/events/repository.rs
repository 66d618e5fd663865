//! SeaORM access to `events`. Private to the events domain: only `EventBus` uses it.

use entities::event::{self, Column, Entity};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};
use serde_json::Value;

use super::model::{Event, HistoryFilter};
use super::pattern::TopicPattern;
use crate::retention::{Batch, Running};

/// Rows fetched per round trip while filtering topics in memory.
const PAGE: u64 = 500;

/// Handle to the events table (cheap to clone).
#[derive(Clone)]
pub struct EventRepository {
    db: DatabaseConnection,
    pruning: Running,
}

fn from_model(m: event::Model) -> Event {
    Event {
        id: m.id,
        topic: m.topic,
        data: serde_json::from_str(&m.data).unwrap_or(Value::Null),
        source: m.source,
        created_at: m.created_at,
    }
}

impl EventRepository {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            pruning: Running::default(),
        }
    }

    /// The oldest stored id, if any.
    pub async fn oldest_id(&self) -> Result<Option<i64>, DbErr> {
        let id: Option<i64> = Entity::find()
            .select_only()
            .column(Column::Id)
            .order_by_asc(Column::Id)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(id)
    }

    fn filtered(filter: &HistoryFilter) -> Select<Entity> {
        let mut q = crate::db::within(Entity::find(), Column::CreatedAt, filter.from, filter.to);
        if let Some(source) = &filter.source {
            q = q.filter(Column::Source.eq(source.as_str()));
        }
        if let Some(until) = filter.until_id {
            q = q.filter(Column::Id.lte(until));
        }
        q
    }

    /// Up to `last` matching events, newest first.
    pub async fn newest(&self, filter: &HistoryFilter, last: u64) -> Result<Vec<Event>, DbErr> {
        let pattern = TopicPattern::new(filter.topic.as_deref().unwrap_or(""));
        let mut out = Vec::new();
        let mut before: Option<i64> = None;
        loop {
            let mut q = Self::filtered(filter).order_by_desc(Column::Id).limit(PAGE);
            if let Some(b) = before {
                q = q.filter(Column::Id.lt(b));
            }
            let rows = q.all(&self.db).await?;
            let done = (rows.len() as u64) < PAGE;
            before = rows.last().map(|r| r.id);
            for row in rows {
                if pattern.matches(&row.topic) {
                    out.push(from_model(row));
                    if out.len() as u64 >= last {
                        return Ok(out);
                    }
                }
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// Up to `limit` matching events with id > `after`, oldest first.
    pub async fn after(
        &self,
        after: i64,
        filter: &HistoryFilter,
        limit: u64,
    ) -> Result<Vec<Event>, DbErr> {
        let pattern = TopicPattern::new(filter.topic.as_deref().unwrap_or(""));
        let mut out = Vec::new();
        let mut cursor = after;
        loop {
            let rows = Self::filtered(filter)
                .filter(Column::Id.gt(cursor))
                .order_by_asc(Column::Id)
                .limit(PAGE)
                .all(&self.db)
                .await?;
            let done = (rows.len() as u64) < PAGE;
            if let Some(last) = rows.last() {
                cursor = last.id;
            }
            for row in rows {
                if pattern.matches(&row.topic) {
                    out.push(from_model(row));
                    if out.len() as u64 >= limit {
                        return Ok(out);
                    }
                }
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// The highest id to delete so that only the newest `keep` events remain, if any.
    pub async fn prune_cutoff(&self, keep: u64) -> Result<Option<i64>, DbErr> {
        let id: Option<i64> = Entity::find()
            .select_only()
            .column(Column::Id)
            .order_by_desc(Column::Id)
            .offset(keep)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(id)
    }

    /// Deletes the oldest events up to `cutoff`, at most `limit` ids of them, in one short
    /// write transaction; answers how many it deleted and whether any up to `cutoff` remain.
    pub async fn prune_batch(&self, cutoff: i64, limit: u64) -> Result<Batch, DbErr> {
        let Some(oldest) = self.oldest_id().await? else {
            return Ok(Batch::default());
        };
        if oldest > cutoff {
            return Ok(Batch::default());
        }
        let span = i64::try_from(limit.max(1) - 1).unwrap_or(i64::MAX);
        let through = cutoff.min(oldest.saturating_add(span));
        let txn = crate::db::begin_write(&self.db).await?;
        let deleted = Entity::delete_many()
            .filter(Column::Id.lte(through))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(Batch {
            deleted,
            more: through < cutoff,
        })
    }

    /// Marks the pruner running (one prune at a time).
    pub fn pruning(&self) -> &Running {
        &self.pruning
    }
}
