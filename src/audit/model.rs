//! Audit entries, the hash chain over them, and the summary and verification reports.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{DomainError, ErrorKind};
use crate::http::Caller;
use crate::time::format_micros;

/// The outcome every recorded entry has (API §15: only successful mutations are recorded).
pub const SUCCESS: &str = "success";

/// The hash the first entry chains to.
pub const GENESIS: &str = "";

/// A mutation to record: built by the handler that made it, after it succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    pub action: String,
    pub resource: String,
    pub actor: String,
    pub detail: Map<String, Value>,
}

impl Audit {
    /// `action` on `resource`, with the empty actor and an empty detail.
    pub fn new(action: &str, resource: impl Into<String>) -> Self {
        Self {
            action: action.to_string(),
            resource: resource.into(),
            actor: String::new(),
            detail: Map::new(),
        }
    }

    /// Sets the actor API §15 names for the action (replaced by [`Audit::by`] when the
    /// request names a registered agent).
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Adds `key: value` to the detail object.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_string(), value.into());
        self
    }

    /// Attributes the entry to the agent the request acts for, if any: the actor becomes
    /// that agent's name and the detail gains its `instance_id`. Otherwise a verified
    /// principal is the actor (`admin`, `key:<name>`, API §25).
    pub fn by(mut self, caller: &Caller) -> Self {
        if let Some(agent) = &caller.agent {
            self.actor = agent.name.clone();
            self.detail
                .insert("instance_id".into(), Value::String(agent.id.clone()));
        } else if let Some(label) = caller.principal.label() {
            self.actor = label;
        }
        self
    }
}

/// A stored entry. `timestamp` is unix microseconds; `hash` chains it to the entry before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub timestamp: i64,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub detail: String,
    pub outcome: String,
    pub hash: String,
}

impl AuditEntry {
    /// The hash of this entry's content chained to `prev` (the previous entry's hash, or
    /// [`GENESIS`]): SHA-256, hex, over the JSON array of every field and `prev`. A JSON
    /// array is an unambiguous encoding, so no two different entries hash alike by
    /// shifting text from one field to the next.
    pub fn chain_hash(&self, prev: &str) -> String {
        let content = serde_json::json!([
            self.id,
            self.timestamp,
            self.actor,
            self.action,
            self.resource,
            self.detail,
            self.outcome,
            prev
        ]);
        hex::encode(Sha256::digest(content.to_string().as_bytes()))
    }
}

/// An entry on the wire (API §15, plus its chain `hash`).
#[derive(Debug, Clone, Serialize)]
pub struct AuditOut {
    pub id: i64,
    pub timestamp: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub detail: String,
    pub outcome: String,
    pub hash: String,
}

impl From<AuditEntry> for AuditOut {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            timestamp: format_micros(e.timestamp),
            actor: e.actor,
            action: e.action,
            resource: e.resource,
            detail: e.detail,
            outcome: e.outcome,
            hash: e.hash,
        }
    }
}

/// Filters of `GET /api/audit` (all exact; instants inclusive, unix microseconds).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// `GET /api/audit/summary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditSummary {
    pub total_entries: i64,
    pub action_counts: std::collections::BTreeMap<String, i64>,
    pub outcome_counts: std::collections::BTreeMap<String, i64>,
    pub unique_actors: i64,
    pub unique_resources: i64,
}

/// `GET /api/audit/verify`: the chain is intact over `entries` entries, or broken at
/// `broken_id` (the first entry whose stored hash or position does not match).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub entries: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The first entry the walk checked: the one after the checkpoint (only when the log
    /// was pruned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_id: Option<i64>,
    /// Where the walk started (only when the log was pruned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointOut>,
}

/// Where a pruned log is verified from: the last pruned entry's id, hash and time (unix
/// microseconds), and when it was pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub id: i64,
    pub hash: String,
    pub timestamp: i64,
    pub pruned_at: i64,
}

/// A checkpoint on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointOut {
    pub id: i64,
    pub hash: String,
    pub timestamp: String,
    pub pruned_at: String,
}

impl From<&Checkpoint> for CheckpointOut {
    fn from(c: &Checkpoint) -> Self {
        Self {
            id: c.id,
            hash: c.hash.clone(),
            timestamp: format_micros(c.timestamp),
            pruned_at: format_micros(c.pruned_at),
        }
    }
}

/// Walks the chain in id order, one entry at a time.
#[derive(Debug, Clone)]
pub struct ChainWalk {
    last_id: i64,
    prev: String,
}

impl Default for ChainWalk {
    fn default() -> Self {
        Self {
            last_id: 0,
            prev: GENESIS.to_string(),
        }
    }
}

impl ChainWalk {
    /// A walk that continues after `checkpoint` (from the start when `None`).
    pub fn after(checkpoint: Option<&Checkpoint>) -> Self {
        match checkpoint {
            Some(c) => Self {
                last_id: c.id,
                prev: c.hash.clone(),
            },
            None => Self::default(),
        }
    }

    /// The id of the last entry checked (0 before the first).
    pub fn last_id(&self) -> i64 {
        self.last_id
    }

    /// Checks `e`, the next entry in id order: its id follows the last one, and its stored
    /// hash is the hash of its content chained to the previous entry's stored hash.
    pub fn step(&mut self, e: &AuditEntry) -> Result<(), String> {
        if e.id != self.last_id + 1 {
            return Err(if self.last_id == 0 {
                format!("the log starts at entry {} instead of 1", e.id)
            } else {
                format!("entries {} to {} are missing", self.last_id + 1, e.id - 1)
            });
        }
        if e.chain_hash(&self.prev) != e.hash {
            return Err(
                "the stored hash does not match the entry's content and the previous entry's hash"
                    .into(),
            );
        }
        self.last_id = e.id;
        self.prev.clone_from(&e.hash);
        Ok(())
    }
}

/// Why an audit operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("audit storage error: {0}")]
    Storage(String),
    #[error("the audit log is not available")]
    Unavailable,
}

impl From<sea_orm::DbErr> for AuditError {
    fn from(e: sea_orm::DbErr) -> Self {
        AuditError::Storage(e.to_string())
    }
}

impl DomainError for AuditError {
    fn kind(&self) -> ErrorKind {
        match self {
            AuditError::Storage(_) => ErrorKind::Internal,
            AuditError::Unavailable => ErrorKind::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|id| {
                let mut e = AuditEntry {
                    id,
                    timestamp: 1_700_000_000_000_000 + id,
                    actor: String::new(),
                    action: "state.put".into(),
                    resource: format!("k{id}"),
                    detail: format!("{{\"version\":{id}}}"),
                    outcome: SUCCESS.into(),
                    hash: String::new(),
                };
                e.hash = e.chain_hash(&prev);
                prev.clone_from(&e.hash);
                e
            })
            .collect()
    }

    fn walk(entries: &[AuditEntry]) -> Result<i64, (i64, String)> {
        let mut w = ChainWalk::default();
        for e in entries {
            w.step(e).map_err(|reason| (e.id, reason))?;
        }
        Ok(w.last_id())
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(walk(&chain(5)), Ok(5));
        assert_eq!(walk(&[]), Ok(0));
    }

    #[test]
    fn an_edited_field_breaks_the_chain_at_that_entry() {
        let mut entries = chain(5);
        entries[2].detail = "{}".into();
        assert_eq!(walk(&entries).unwrap_err().0, 3);
    }

    #[test]
    fn a_recomputed_hash_breaks_the_chain_at_the_next_entry() {
        let mut entries = chain(5);
        entries[2].actor = "mallory".into();
        let prev = entries[1].hash.clone();
        entries[2].hash = entries[2].chain_hash(&prev);
        assert_eq!(walk(&entries).unwrap_err().0, 4);
    }

    #[test]
    fn a_removed_entry_is_reported_as_missing() {
        let mut entries = chain(5);
        entries.remove(1);
        let (id, reason) = walk(&entries).unwrap_err();
        assert_eq!(id, 3);
        assert!(reason.contains("entries 2 to 2 are missing"), "{reason}");
    }

    #[test]
    fn text_cannot_move_between_fields() {
        let e = &chain(1)[0];
        let mut moved = e.clone();
        moved.action = format!("{}{}", e.action, "x");
        moved.resource = e.resource.trim_start_matches('x').to_string();
        assert_ne!(moved.chain_hash(GENESIS), e.chain_hash(GENESIS));
    }

    #[test]
    fn attribution_replaces_the_actor_and_names_the_instance() {
        let caller = Caller::agent(crate::http::Agent {
            id: "i-1".into(),
            name: "claude".into(),
        });
        let a = Audit::new("state.put", "k").with("version", 2).by(&caller);
        assert_eq!(a.actor, "claude");
        assert_eq!(a.detail["instance_id"], "i-1");
        assert_eq!(a.detail["version"], 2);
        let anonymous = Audit::new("rule.propose", "p/r")
            .actor("bob")
            .by(&Caller::anonymous());
        assert_eq!(anonymous.actor, "bob");
        assert!(!anonymous.detail.contains_key("instance_id"));
    }
}
