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
use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, Set, Statement};

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
/// microseconds). Both heads are read with one statement.
pub async fn append_in<C: ConnectionTrait>(
    txn: &C,
    records: Records,
    now: i64,
) -> Result<Stamped, DbErr> {
    let mut stamped = Stamped::default();
    if records.is_empty() {
        return Ok(stamped);
    }
    let heads = Heads::read(txn).await?;
    if !records.events.is_empty() {
        stamped.events = append_events(txn, records.events, heads.event_id, now).await?;
    }
    if !records.audit.is_empty() {
        stamped.last_audit_id =
            append_audit(txn, records.audit, (heads.audit_id, heads.audit_hash), now).await?;
    }
    Ok(stamped)
}

/// Where the two shared sequences stand: the highest event id ever assigned, and the
/// newest audit entry's id and hash.
struct Heads {
    event_id: i64,
    audit_id: i64,
    audit_hash: String,
}

impl Heads {
    async fn read<C: ConnectionTrait>(conn: &C) -> Result<Self, DbErr> {
        let sql = format!(
            "SELECT ({EVENT_HEAD}), \
             COALESCE((SELECT id FROM audit_log ORDER BY id DESC LIMIT 1), 0), \
             COALESCE((SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), '')"
        );
        let row = conn
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
            .await?
            .ok_or_else(|| DbErr::Custom("the journal heads query returned no row".into()))?;
        let audit_id: i64 = row.try_get_by_index(1)?;
        let audit_hash: String = row.try_get_by_index(2)?;
        Ok(Self {
            event_id: row.try_get_by_index(0)?,
            audit_id,
            audit_hash: if audit_id == 0 {
                GENESIS.to_string()
            } else {
                audit_hash
            },
        })
    }
}

/// The highest event id ever assigned: `events` is an AUTOINCREMENT table, so
/// `sqlite_sequence` remembers ids whose rows were pruned.
const EVENT_HEAD: &str = "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), \
                          COALESCE((SELECT MAX(id) FROM events), 0))";

/// The highest event id ever assigned (0 if none), pruned ones included: `events` is an
/// AUTOINCREMENT table, so `sqlite_sequence` remembers ids whose rows are gone.
pub async fn last_event_id<C: ConnectionTrait>(conn: &C) -> Result<i64, DbErr> {
    let row = conn
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, EVENT_HEAD))
        .await?;
    Ok(match row {
        Some(r) => r.try_get_by_index::<i64>(0)?,
        None => 0,
    })
}

async fn append_events<C: ConnectionTrait>(
    txn: &C,
    events: Vec<Publish>,
    head: i64,
    now: i64,
) -> Result<Vec<Arc<Event>>, DbErr> {
    let mut id = head;
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

/// Chains `entries` to `head` (the newest stored entry's id and hash) and inserts them;
/// returns the last id.
async fn append_audit<C: ConnectionTrait>(
    txn: &C,
    entries: Vec<Audit>,
    head: (i64, String),
    now: i64,
) -> Result<i64, DbErr> {
    let (mut id, mut prev) = head;
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
