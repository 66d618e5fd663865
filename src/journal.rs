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
//! Write transactions run one at a time (SQLite's `BEGIN IMMEDIATE` takes the write lock
//! first; on PostgreSQL every write transaction takes one advisory lock first, see
//! [`crate::db::begin_write`]), so the head a transaction reads is the head it extends:
//! ids are dense and in commit order, and the chain is a single chain across domains. Nothing is cached in
//! memory that a failed commit could leave wrong.
//!
//! The journal owns no table. The audit domain reads `audit_log` and verifies the chain;
//! the events domain reads `events`, fans committed events out and prunes them. This module
//! is the one place that appends to either.

use std::sync::Arc;

use entities::{audit_entry, event};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryTrait, Set, Statement};

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
    /// The domain's own last statements (inserts nothing in the batch reads back), sent
    /// together with the journal's inserts (on SQLite one round trip to the connection's
    /// thread instead of one per statement).
    pub deferred: Vec<Statement>,
}

impl Records {
    /// Nothing to record.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.audit.is_empty() && self.events.is_empty() && self.deferred.is_empty()
    }

    /// The records of one audit entry (a one-at-a-time write that publishes nothing).
    pub fn audited(entry: Audit) -> Self {
        Self {
            audit: vec![entry],
            ..Self::default()
        }
    }

    /// Adds a statement of the domain's own, run with the journal's inserts.
    pub fn defer(&mut self, statement: Statement) {
        self.deferred.push(statement);
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
/// microseconds). Both heads are read with one statement. A batch takes its time before it
/// waits for the write lock, so one of another domain may commit first with a later time:
/// `now` is raised to the newest stored entry's and event's time, so times never decrease
/// in id order.
pub async fn append_in<C: ConnectionTrait>(
    txn: &C,
    records: Records,
    now: i64,
) -> Result<Stamped, DbErr> {
    let mut stamped = Stamped::default();
    if records.is_empty() {
        return Ok(stamped);
    }
    let mut statements = records.deferred;
    if !records.events.is_empty() || !records.audit.is_empty() {
        let backend = txn.get_database_backend();
        let heads = Heads::read(txn).await?;
        let now = now.max(heads.newest);
        if !records.events.is_empty() {
            let (events, inserts) = stamp_events(backend, records.events, heads.event_id, now);
            stamped.events = events;
            statements.extend(inserts);
            if backend == DbBackend::Postgres {
                // Wakes the cluster's followers at the commit (API §27); only a wake-up:
                // they read the events from the table.
                statements.push(Statement::from_string(
                    backend,
                    format!(
                        "SELECT pg_notify('{}', '')",
                        crate::cluster::replica::CHANNEL
                    ),
                ));
            }
        }
        if !records.audit.is_empty() {
            let (last, inserts) = chain_audit(
                backend,
                records.audit,
                (heads.audit_id, heads.audit_hash),
                now,
            );
            stamped.last_audit_id = last;
            statements.extend(inserts);
        }
    }
    crate::db::execute_all(txn, statements).await?;
    Ok(stamped)
}

/// Where the two shared sequences stand: the highest event id ever assigned, the newest
/// audit entry's id and hash, and the newest time either was stamped with.
struct Heads {
    event_id: i64,
    audit_id: i64,
    audit_hash: String,
    newest: i64,
}

impl Heads {
    async fn read<C: ConnectionTrait>(conn: &C) -> Result<Self, DbErr> {
        let backend = conn.get_database_backend();
        let newest = crate::db::greatest(
            backend,
            "COALESCE((SELECT timestamp FROM audit_log ORDER BY id DESC LIMIT 1), 0)",
            "COALESCE((SELECT created_at FROM events ORDER BY id DESC LIMIT 1), 0)",
        );
        let sql = format!(
            "SELECT ({}), \
             COALESCE((SELECT id FROM audit_log ORDER BY id DESC LIMIT 1), 0), \
             COALESCE((SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), ''), \
             {newest}",
            crate::db::highest_id_sql(backend, "events")
        );
        let row = conn
            .query_one_raw(Statement::from_string(backend, sql))
            .await?
            .ok_or_else(|| DbErr::Custom("the journal heads query returned no row".into()))?;
        let audit_id: i64 = row.try_get_by_index(1)?;
        let audit_hash: String = row.try_get_by_index(2)?;
        Ok(Self {
            event_id: row.try_get_by_index(0)?,
            newest: row.try_get_by_index(3)?,
            audit_id,
            audit_hash: if audit_id == 0 {
                GENESIS.to_string()
            } else {
                audit_hash
            },
        })
    }
}

/// The highest event id ever assigned (0 if none), pruned ones included (see
/// [`crate::db::highest_id_sql`]).
pub async fn last_event_id<C: ConnectionTrait>(conn: &C) -> Result<i64, DbErr> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            crate::db::highest_id_sql(backend, "events"),
        ))
        .await?;
    Ok(match row {
        Some(r) => r.try_get_by_index::<i64>(0)?,
        None => 0,
    })
}

/// Gives `events` the ids after `head` and returns them with their inserts.
fn stamp_events(
    backend: DbBackend,
    events: Vec<Publish>,
    head: i64,
    now: i64,
) -> (Vec<Arc<Event>>, Vec<Statement>) {
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
    let inserts = stored
        .chunks(INSERT_CHUNK)
        .map(|chunk| {
            event::Entity::insert_many(chunk.iter().map(|e| event::ActiveModel {
                id: Set(e.id),
                topic: Set(e.topic.clone()),
                data: Set(e.data.to_string()),
                source: Set(e.source.clone()),
                created_at: Set(e.created_at),
            }))
            .build(backend)
        })
        .collect();
    (stored, inserts)
}

/// Chains `entries` to `head` (the newest stored entry's id and hash); returns the last
/// id and the inserts.
fn chain_audit(
    backend: DbBackend,
    entries: Vec<Audit>,
    head: (i64, String),
    now: i64,
) -> (i64, Vec<Statement>) {
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
    let inserts = rows
        .chunks(INSERT_CHUNK)
        .map(|chunk| {
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
            .build(backend)
        })
        .collect();
    (id, inserts)
}
