//! SeaORM access to `tasks`. Private to the tasks domain: only `TaskQueue` uses it.

use std::collections::HashMap;
use std::sync::Arc;

use entities::task::{self, Column, Entity};
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::Value;

use super::model::{Counts, Lease, Status, Task, TaskFilter};

/// Rows per multi-row INSERT (21 bound values each, far under SQLite's variable limit).
const INSERT_CHUNK: usize = 300;

/// Everything the task queue keeps in memory, read at start-up.
pub struct Loaded {
    /// Every task that is not finished (`queued`, `leased`, `failed`).
    pub live: Vec<Task>,
    /// (queue, idempotency key) → task id, over every task.
    pub keys: Vec<((String, String), String)>,
    pub queue_counts: HashMap<String, Counts>,
    pub group_counts: HashMap<String, Counts>,
    /// The highest `seq` ever assigned (0 when there is no task).
    pub last_seq: i64,
}

/// Handle to the tasks table (cheap to clone: a pool handle).
#[derive(Clone)]
pub struct TaskRepository {
    db: DatabaseConnection,
}

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn task_of(m: task::Model) -> Task {
    let lease = match (m.lease_holder, m.lease_token, m.lease_expires_at) {
        (Some(holder), Some(token), Some(expires_at)) => Some(Lease {
            holder,
            token,
            expires_at,
            length: m.lease_length.unwrap_or(m.lease_seconds),
        }),
        _ => None,
    };
    Task {
        id: m.id,
        seq: m.seq,
        queue: m.queue,
        payload: Arc::new(parse_json(&m.payload)),
        priority: m.priority,
        status: Status::parse(&m.status).unwrap_or(Status::Queued),
        attempts: Ord::max(m.attempts, 0) as u32,
        max_attempts: Ord::max(m.max_attempts, 1) as u32,
        lease_seconds: m.lease_seconds,
        not_before: m.not_before,
        requires: serde_json::from_str(&m.requires).unwrap_or_default(),
        group: m.task_group,
        idempotency_key: m.idempotency_key,
        lease,
        result: m.result.as_deref().map(|r| Arc::new(parse_json(r))),
        error: m.error,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// The columns a transition may change.
fn mutable_columns(t: &Task) -> task::ActiveModel {
    let lease = t.lease.as_ref();
    task::ActiveModel {
        status: Set(t.status.as_str().to_string()),
        attempts: Set(t.attempts as i32),
        not_before: Set(t.not_before),
        lease_holder: Set(lease.map(|l| l.holder.clone())),
        lease_token: Set(lease.map(|l| l.token)),
        lease_expires_at: Set(lease.map(|l| l.expires_at)),
        lease_length: Set(lease.map(|l| l.length)),
        result: Set(t.result.as_deref().filter(|r| !r.is_null()).map(json_text)),
        error: Set(t.error.clone()),
        updated_at: Set(t.updated_at),
        ..Default::default()
    }
}

fn row(t: &Task) -> task::ActiveModel {
    let mut m = mutable_columns(t);
    m.id = Set(t.id.clone());
    m.seq = Set(t.seq);
    m.queue = Set(t.queue.clone());
    m.payload = Set(json_text(&t.payload));
    m.priority = Set(t.priority);
    m.max_attempts = Set(t.max_attempts as i32);
    m.lease_seconds = Set(t.lease_seconds);
    m.requires = Set(serde_json::to_string(&t.requires).unwrap_or_else(|_| "[]".into()));
    m.task_group = Set(t.group.clone());
    m.idempotency_key = Set(t.idempotency_key.clone());
    m.created_at = Set(t.created_at);
    m
}

/// Live leases (held at `now`).
fn held(now: i64) -> Condition {
    Condition::all()
        .add(Column::Status.eq(Status::Leased.as_str()))
        .add(Column::LeaseExpiresAt.gt(now))
}

/// Leases that have passed at `now` but whose expiry is not written yet.
fn passed(now: i64) -> Condition {
    Condition::all()
        .add(Column::Status.eq(Status::Leased.as_str()))
        .add(Column::LeaseExpiresAt.lte(now))
}

/// Rows whose status, as a reader sees it at `now`, is `status` (a passed lease reads as
/// `queued`, or `dead` once the attempts are used up).
fn status_is(status: Status, now: i64) -> Condition {
    let stored = Column::Status.eq(status.as_str());
    match status {
        Status::Leased => held(now),
        Status::Queued => Condition::any()
            .add(stored)
            .add(passed(now).add(Expr::col(Column::Attempts).lt(Expr::col(Column::MaxAttempts)))),
        Status::Dead => Condition::any()
            .add(stored)
            .add(passed(now).add(Expr::col(Column::Attempts).gte(Expr::col(Column::MaxAttempts)))),
        _ => Condition::all().add(stored),
    }
}

impl TaskRepository {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The task queue's memory at start-up.
    pub async fn load(&self) -> Result<Loaded, DbErr> {
        let live = Entity::find()
            .filter(Column::Status.is_in([
                Status::Queued.as_str(),
                Status::Leased.as_str(),
                Status::Failed.as_str(),
            ]))
            .order_by_asc(Column::Seq)
            .all(&self.db)
            .await?
            .into_iter()
            .map(task_of)
            .collect();
        let keys: Vec<(String, Option<String>, String)> = Entity::find()
            .select_only()
            .column(Column::Queue)
            .column(Column::IdempotencyKey)
            .column(Column::Id)
            .filter(Column::IdempotencyKey.is_not_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        let keys = keys
            .into_iter()
            .filter_map(|(queue, key, id)| key.map(|k| ((queue, k), id)))
            .collect();
        let mut queue_counts: HashMap<String, Counts> = HashMap::new();
        let per_queue: Vec<(String, String, i64)> = Entity::find()
            .select_only()
            .column(Column::Queue)
            .column(Column::Status)
            .column_as(Column::Id.count(), "n")
            .group_by(Column::Queue)
            .group_by(Column::Status)
            .into_tuple()
            .all(&self.db)
            .await?;
        for (queue, status, n) in per_queue {
            if let Some(s) = Status::parse(&status) {
                queue_counts.entry(queue).or_default().add(s, n);
            }
        }
        let mut group_counts: HashMap<String, Counts> = HashMap::new();
        let per_group: Vec<(Option<String>, String, i64)> = Entity::find()
            .select_only()
            .column(Column::TaskGroup)
            .column(Column::Status)
            .column_as(Column::Id.count(), "n")
            .filter(Column::TaskGroup.is_not_null())
            .group_by(Column::TaskGroup)
            .group_by(Column::Status)
            .into_tuple()
            .all(&self.db)
            .await?;
        for (group, status, n) in per_group {
            if let (Some(g), Some(s)) = (group, Status::parse(&status)) {
                group_counts.entry(g).or_default().add(s, n);
            }
        }
        let last_seq: Option<i64> = Entity::find()
            .select_only()
            .column_as(Column::Seq.max(), "last")
            .into_tuple()
            .one(&self.db)
            .await?
            .flatten();
        Ok(Loaded {
            live,
            keys,
            queue_counts,
            group_counts,
            last_seq: last_seq.unwrap_or(0),
        })
    }

    /// One task by id, as stored.
    pub async fn find(&self, id: &str) -> Result<Option<Task>, DbErr> {
        Ok(Entity::find_by_id(id).one(&self.db).await?.map(task_of))
    }

    /// Up to `limit` tasks passing `filter` as a reader sees them at `now`, newest first.
    pub async fn list(
        &self,
        filter: &TaskFilter,
        limit: u64,
        now: i64,
    ) -> Result<Vec<Task>, DbErr> {
        let mut cond = Condition::all();
        if let Some(q) = &filter.queue {
            cond = cond.add(Column::Queue.eq(q.as_str()));
        }
        if let Some(g) = &filter.group {
            cond = cond.add(Column::TaskGroup.eq(g.as_str()));
        }
        if let Some(h) = &filter.holder {
            cond = cond.add(Column::LeaseHolder.eq(h.as_str())).add(held(now));
        }
        if let Some(s) = filter.status {
            cond = cond.add(status_is(s, now));
        }
        Ok(Entity::find()
            .filter(cond)
            .order_by_desc(Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(task_of)
            .collect())
    }

    /// Stores a batch through `txn` (which the caller commits): `created` are inserted,
    /// `changed` have their mutable columns updated.
    pub async fn persist<C: ConnectionTrait>(
        txn: &C,
        created: &[Arc<Task>],
        changed: &[Arc<Task>],
    ) -> Result<(), DbErr> {
        for chunk in created.chunks(INSERT_CHUNK) {
            Entity::insert_many(chunk.iter().map(|t| row(t)))
                .exec_without_returning(txn)
                .await?;
        }
        for t in changed {
            Entity::update_many()
                .set(mutable_columns(t))
                .filter(Column::Id.eq(t.id.as_str()))
                .exec(txn)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_round_trip_every_field() {
        let t = Task {
            id: "t".into(),
            seq: 4,
            queue: "q".into(),
            payload: Arc::new(json!([1, {"a": null}])),
            priority: -2,
            status: Status::Leased,
            attempts: 2,
            max_attempts: 5,
            lease_seconds: 1.5,
            not_before: Some(9),
            requires: vec!["gpu".into()],
            group: Some("g".into()),
            idempotency_key: Some("k".into()),
            lease: Some(Lease {
                holder: "h".into(),
                token: 11,
                expires_at: 99,
                length: 30.0,
            }),
            result: Some(Arc::new(json!({"ok": true}))),
            error: Some("e".into()),
            created_at: 1,
            updated_at: 2,
        };
        let m = row(&t);
        let model = task::Model {
            id: m.id.unwrap(),
            seq: m.seq.unwrap(),
            queue: m.queue.unwrap(),
            payload: m.payload.unwrap(),
            priority: m.priority.unwrap(),
            status: m.status.unwrap(),
            attempts: m.attempts.unwrap(),
            max_attempts: m.max_attempts.unwrap(),
            lease_seconds: m.lease_seconds.unwrap(),
            not_before: m.not_before.unwrap(),
            requires: m.requires.unwrap(),
            task_group: m.task_group.unwrap(),
            idempotency_key: m.idempotency_key.unwrap(),
            lease_holder: m.lease_holder.unwrap(),
            lease_token: m.lease_token.unwrap(),
            lease_expires_at: m.lease_expires_at.unwrap(),
            lease_length: m.lease_length.unwrap(),
            result: m.result.unwrap(),
            error: m.error.unwrap(),
            created_at: m.created_at.unwrap(),
            updated_at: m.updated_at.unwrap(),
        };
        assert_eq!(task_of(model), t);
    }
}
