//! The journal: the audit entries and events a write leaves behind, written inside the
//! write's own transaction.
//!
//! Every domain that changes something records what it did (API §15) and usually tells
//! the world (API §6). Both happen in the transaction that changes the domain's rows, so
//! a write, its audit entry and its events commit together with one fsync, and none of
//! them exists without the others, whatever crashes when.
//!
//! Two sequences are shared by every domain: event ids and the audit hash chain. Each is
//! continued by [`append_in`] from its stored head, read inside the writer's transaction.
//! SQLite runs one write transaction at a time (`BEGIN IMMEDIATE` takes the write lock
//! first), so the head a transaction reads is the head it extends: ids are dense and in
//! commit order, and the chain is a single chain across domains. Nothing is cached in
//! memory that a failed commit could leave wrong.
//!
//! The journal owns no table. The audit domain reads `audit_log` and verifies the chain;
//! the events domain reads `events`, fans committed events out and prunes them. This module
//! is the one place that appends to either.

use std::sync::Arc;

use entities::{audit_entry, event};
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryOrder, QuerySelect, Set, Statement,
};

use crate::audit::{Audit, AuditEntry, GENESIS, SUCCESS};
use crate::events::{Event, Publish};

/// Rows per multi-row INSERT (8 bound values each, well under SQLite's variable limit).
const INSERT_CHUNK: usize = 1000;

/// What a batch of writes records besides its own rows, in the order it happened.
#[derive(Debug, Default)]
pub struct Records {
    /// Audit entries, already attributed to their callers.
    pub audit: Vec<Audit>,
    /// Events to store and, after the commit, fan out.
    pub events: Vec<Publish>,
}

impl Records {
    /// Nothing to record.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.audit.is_empty() && self.events.is_empty()
    }

    /// Adds an audit entry.
    pub fn audit(&mut self, entry: Audit) {
        self.audit.push(entry);
    }

    /// Adds an event.
    pub fn event(&mut self, event: Publish) {
        self.events.push(event);
    }
}

/// What [`append_in`] wrote: the events with their ids, and the id of the last audit
/// entry (0 when the batch recorded none).
#[derive(Debug, Default)]
pub struct Stamped {
    pub events: Vec<Arc<Event>>,
    pub last_audit_id: i64,
}

/// Appends `records` through `txn` (a write transaction the caller commits), continuing
/// the event ids and the audit chain from their stored heads, at time `now` (unix
/// microseconds). A batch takes its time before it waits for the write lock, so one of
/// another domain may commit first with a later time: `now` is raised to the newest stored
/// entry's (and event's) time, and times never decrease in id order.
pub async fn append_in<C: ConnectionTrait>(
    txn: &C,
    records: Records,
    now: i64,
) -> Result<Stamped, DbErr> {
    let mut stamped = Stamped::default();
    if !records.events.is_empty() {
        stamped.events = append_events(txn, records.events, now).await?;
    }
    if !records.audit.is_empty() {
        stamped.last_audit_id = append_audit(txn, records.audit, now).await?;
    }
    Ok(stamped)
}

/// The highest event id ever assigned (0 if none), pruned ones included: `events` is an
/// AUTOINCREMENT table, so `sqlite_sequence` remembers ids whose rows are gone.
pub async fn last_event_id<C: ConnectionTrait>(conn: &C) -> Result<i64, DbErr> {
    Ok(event_head(conn).await?.0)
}

/// The highest event id ever assigned (as [`last_event_id`]) and the time of the newest
/// stored event (0 if none is stored).
async fn event_head<C: ConnectionTrait>(conn: &C) -> Result<(i64, i64), DbErr> {
    let sql = "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), \
               COALESCE((SELECT MAX(id) FROM events), 0)), \
               COALESCE((SELECT created_at FROM events ORDER BY id DESC LIMIT 1), 0)";
    let row = conn
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
        .await?;
    Ok(match row {
        Some(r) => (r.try_get_by_index::<i64>(0)?, r.try_get_by_index::<i64>(1)?),
        None => (0, 0),
    })
}

async fn append_events<C: ConnectionTrait>(
    txn: &C,
    events: Vec<Publish>,
    now: i64,
) -> Result<Vec<Arc<Event>>, DbErr> {
    let (mut id, newest) = event_head(txn).await?;
    let now = now.max(newest);
    let stored: Vec<Arc<Event>> = events
        .into_iter()
        .map(|p| {
            id += 1;
            Arc::new(Event {
                id,
                topic: p.topic,
                data: p.data,
                source: p.source,
                created_at: now,
            })
        })
        .collect();
    for chunk in stored.chunks(INSERT_CHUNK) {
        event::Entity::insert_many(chunk.iter().map(|e| event::ActiveModel {
            id: Set(e.id),
            topic: Set(e.topic.clone()),
            data: Set(e.data.to_string()),
            source: Set(e.source.clone()),
            created_at: Set(e.created_at),
        }))
        .exec_without_returning(txn)
        .await?;
    }
    Ok(stored)
}

/// Chains `entries` to the newest stored entry and inserts them; returns the last id.
async fn append_audit<C: ConnectionTrait>(
    txn: &C,
    entries: Vec<Audit>,
    now: i64,
) -> Result<i64, DbErr> {
    let head: Option<(i64, String, i64)> = audit_entry::Entity::find()
        .select_only()
        .column(audit_entry::Column::Id)
        .column(audit_entry::Column::Hash)
        .column(audit_entry::Column::Timestamp)
        .order_by_desc(audit_entry::Column::Id)
        .limit(1)
        .into_tuple()
        .one(txn)
        .await?;
    let (mut id, mut prev, newest) = head.unwrap_or((0, GENESIS.to_string(), 0));
    let now = now.max(newest);
    let mut rows = Vec::with_capacity(entries.len());
    for e in entries {
        id += 1;
        let mut stored = AuditEntry {
            id,
            timestamp: now,
            actor: e.actor,
            action: e.action,
            resource: e.resource,
            detail: serde_json::Value::Object(e.detail).to_string(),
            outcome: SUCCESS.to_string(),
            hash: String::new(),
        };
        stored.hash = stored.chain_hash(&prev);
        prev.clone_from(&stored.hash);
        rows.push(stored);
    }
    let last = id;
    for chunk in rows.chunks(INSERT_CHUNK) {
        audit_entry::Entity::insert_many(chunk.iter().map(|r| audit_entry::ActiveModel {
            id: Set(r.id),
            timestamp: Set(r.timestamp),
            actor: Set(r.actor.clone()),
            action: Set(r.action.clone()),
            resource: Set(r.resource.clone()),
            detail: Set(r.detail.clone()),
            outcome: Set(r.outcome.clone()),
            hash: Set(r.hash.clone()),
        }))
        .exec_without_returning(txn)
        .await?;
    }
    Ok(last)
}
