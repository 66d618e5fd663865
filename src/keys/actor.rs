//! `KeyStore`: the single owner and single writer of `access_keys`.
//!
//! Writes (create, revoke, rotate) are rare and go through the group-commit write path one
//! at a time (`batch_max` 1): each is checked against memory, committed with its audit
//! entry and its event, and only then applied to memory and to the shared [`KeyRing`] the
//! gate reads, before its caller is answered. Reads (`ListKeys`) are answered from memory.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use serde_json::json;

use super::messages::*;
use super::model::{Grant, Issued, KeyError, KeyRecord, MAX_KEYS, NewKey, new_secret};
use super::repository;
use super::ring::{KeyRing, digest_bytes, digest_hex};
use crate::audit::Audit;
use crate::batch::{GroupCommit, Outbox, WritePath, enqueue};
use crate::events::Publish;
use crate::http::Caller;
use crate::journal::Records;

/// The `source` of key events.
const SOURCE: &str = "keys";

/// A queued write.
#[derive(Debug)]
pub enum Op {
    Create(NewKey),
    Revoke(String),
    Rotate(String),
}

/// What a write changed, applied to memory after the commit.
#[derive(Debug)]
pub enum Change {
    /// A new or re-keyed key, with its secret; `old` is the digest it replaces.
    Issued {
        key: KeyRecord,
        secret: String,
        old: Option<String>,
    },
    Revoked(KeyRecord),
}

type Outcome = Result<Change, KeyError>;

/// The batch's one write, checked, with what its transaction does.
pub struct Work {
    result: Result<(Change, Records), KeyError>,
}

/// The keys domain actor.
pub struct KeyStore {
    /// Keys not revoked, by id.
    live: HashMap<String, KeyRecord>,
    ring: KeyRing,
    path: WritePath<(Op, Caller), Outcome>,
}

impl KeyStore {
    /// Loads every stored key into `ring` and returns the actor, not yet started.
    pub async fn load(
        db: DatabaseConnection,
        outbox: Outbox,
        ring: KeyRing,
    ) -> Result<Self, DbErr> {
        let mut live = HashMap::new();
        for key in repository::load_all(&db).await? {
            ring.mark_keys_exist();
            if key.revoked_at.is_some() {
                continue;
            }
            if let Some(d) = digest_bytes(&key.digest) {
                ring.insert(d, Arc::new(Grant::new(&key)));
            }
            live.insert(key.id.clone(), key);
        }
        Ok(Self {
            live,
            ring,
            path: WritePath::new(db, outbox, 1),
        })
    }

    /// Reads every stored key back into `ring`, replacing what it held: a follower's copy of
    /// the keys, after an event told it they changed (API §27). The leader's ring is changed
    /// by its `KeyStore` alone.
    pub async fn reload_ring(db: &DatabaseConnection, ring: &KeyRing) -> Result<(), DbErr> {
        let mut live = HashMap::new();
        for key in repository::load_all(db).await? {
            ring.mark_keys_exist();
            if key.revoked_at.is_some() {
                continue;
            }
            if let Some(d) = digest_bytes(&key.digest) {
                live.insert(d, Arc::new(Grant::new(&key)));
            }
        }
        ring.replace(live);
        Ok(())
    }

    fn check(&self, op: Op, caller: &Caller, now: i64) -> Result<(Change, Records), KeyError> {
        let mut records = Records::new();
        let change = match op {
            Op::Create(new) => {
                if self.live.values().any(|k| k.name == new.name) {
                    return Err(KeyError::Duplicate(new.name));
                }
                if self.live.len() >= MAX_KEYS {
                    return Err(KeyError::Invalid(format!(
                        "at most {MAX_KEYS} keys may exist; revoke some first"
                    )));
                }
                let secret = new_secret()?;
                let key = KeyRecord {
                    id: uuid::Uuid::new_v4().to_string(),
                    name: new.name,
                    digest: digest_hex(&secret),
                    scopes: new.scopes,
                    projects: new.projects,
                    expires_at: new.expires_at,
                    rate_limit: new.rate_limit,
                    created_at: now,
                    last_used_at: None,
                    revoked_at: None,
                };
                let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
                records.audit(
                    Audit::new("key.create", key.id.as_str())
                        .with("name", key.name.as_str())
                        .with("scopes", json!(scopes))
                        .by(caller),
                );
                records.event(Publish::system(
                    "key.created",
                    SOURCE,
                    json!({"id": key.id, "name": key.name, "scopes": scopes}),
                ));
                Change::Issued {
                    key,
                    secret,
                    old: None,
                }
            }
            Op::Revoke(id) => {
                let mut key = self.live.get(&id).cloned().ok_or(KeyError::NotFound(id))?;
                key.revoked_at = Some(now);
                records.audit(
                    Audit::new("key.revoke", key.id.as_str())
                        .with("name", key.name.as_str())
                        .by(caller),
                );
                records.event(Publish::system(
                    "key.revoked",
                    SOURCE,
                    json!({"id": key.id, "name": key.name}),
                ));
                Change::Revoked(key)
            }
            Op::Rotate(id) => {
                let mut key = self.live.get(&id).cloned().ok_or(KeyError::NotFound(id))?;
                let secret = new_secret()?;
                let old = std::mem::replace(&mut key.digest, digest_hex(&secret));
                records.audit(
                    Audit::new("key.rotate", key.id.as_str())
                        .with("name", key.name.as_str())
                        .by(caller),
                );
                records.event(Publish::system(
                    "key.rotated",
                    SOURCE,
                    json!({"id": key.id, "name": key.name}),
                ));
                Change::Issued {
                    key,
                    secret,
                    old: Some(old),
                }
            }
        };
        Ok((change, records))
    }

    fn enqueue(
        &mut self,
        op: Op,
        caller: Caller,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Outcome> + 'static {
        let rx = enqueue(self, (op, caller), ctx);
        async move { rx.await.unwrap_or(Err(KeyError::Unavailable)) }
    }
}

impl GroupCommit for KeyStore {
    type Op = (Op, Caller);
    type Out = Outcome;
    type Work = Vec<Work>;
    type Done = Vec<Outcome>;

    fn write_path(&mut self) -> &mut WritePath<Self::Op, Outcome> {
        &mut self.path
    }

    fn prepare(&mut self, ops: Vec<(Op, Caller)>, now: i64) -> Vec<Work> {
        ops.into_iter()
            .map(|(op, caller)| Work {
                result: self.check(op, &caller, now),
            })
            .collect()
    }

    async fn write(
        work: Vec<Work>,
        txn: &DatabaseTransaction,
    ) -> Result<(Vec<Outcome>, Records), DbErr> {
        let mut all = Records::new();
        let mut out = Vec::with_capacity(work.len());
        for w in work {
            match w.result {
                Ok((change, records)) => {
                    match &change {
                        Change::Issued { key, old: None, .. } => {
                            repository::insert(txn, key).await?
                        }
                        Change::Issued { key, .. } => {
                            repository::rotate(txn, &key.id, &key.digest).await?
                        }
                        Change::Revoked(key) => {
                            repository::revoke(txn, &key.id, key.revoked_at.unwrap_or(0)).await?
                        }
                    }
                    all.audit.extend(records.audit);
                    all.events.extend(records.events);
                    out.push(Ok(change));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        Ok((out, all))
    }

    /// Applies the committed changes to memory and to the ring, before anyone is answered.
    fn finish(&mut self, done: Vec<Outcome>, _: &mut Context<Self>) -> Vec<Outcome> {
        for change in done.iter().flatten() {
            match change {
                Change::Issued { key, old, .. } => {
                    self.ring.mark_keys_exist();
                    if let Some(d) = old.as_deref().and_then(digest_bytes) {
                        self.ring.remove(&d);
                    }
                    if let Some(d) = digest_bytes(&key.digest) {
                        self.ring.insert(d, Arc::new(Grant::new(key)));
                    }
                    self.live.insert(key.id.clone(), key.clone());
                }
                Change::Revoked(key) => {
                    if let Some(d) = digest_bytes(&key.digest) {
                        self.ring.remove(&d);
                    }
                    self.live.remove(&key.id);
                }
            }
        }
        done
    }

    fn failed(error: &DbErr) -> Outcome {
        Err(KeyError::Storage(error.to_string()))
    }
}

impl Actor for KeyStore {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
    }
}

fn issued(change: Change) -> Result<Issued, KeyError> {
    match change {
        Change::Issued { key, secret, .. } => Ok(Issued {
            grant: Arc::new(Grant::new(&key)),
            secret,
        }),
        Change::Revoked(_) => Err(KeyError::Storage("unexpected answer".into())),
    }
}

impl Handler<CreateKey> for KeyStore {
    type Result = ResponseFuture<Result<Issued, KeyError>>;

    fn handle(&mut self, msg: CreateKey, ctx: &mut Self::Context) -> Self::Result {
        let reply = self.enqueue(Op::Create(msg.key), msg.caller, ctx);
        Box::pin(async move { issued(reply.await?) })
    }
}

impl Handler<RotateKey> for KeyStore {
    type Result = ResponseFuture<Result<Issued, KeyError>>;

    fn handle(&mut self, msg: RotateKey, ctx: &mut Self::Context) -> Self::Result {
        let reply = self.enqueue(Op::Rotate(msg.id), msg.caller, ctx);
        Box::pin(async move { issued(reply.await?) })
    }
}

impl Handler<RevokeKey> for KeyStore {
    type Result = ResponseFuture<Result<String, KeyError>>;

    fn handle(&mut self, msg: RevokeKey, ctx: &mut Self::Context) -> Self::Result {
        let reply = self.enqueue(Op::Revoke(msg.id), msg.caller, ctx);
        Box::pin(async move {
            match reply.await? {
                Change::Revoked(key) => Ok(key.id),
                Change::Issued { .. } => Err(KeyError::Storage("unexpected answer".into())),
            }
        })
    }
}

impl Handler<ListKeys> for KeyStore {
    type Result = MessageResult<ListKeys>;

    fn handle(&mut self, _: ListKeys, _: &mut Self::Context) -> Self::Result {
        let mut keys: Vec<Arc<Grant>> = self
            .live
            .values()
            .filter_map(|k| digest_bytes(&k.digest))
            .filter_map(|d| self.ring.grant(&d))
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        MessageResult(keys)
    }
}
