//! A follower's copy of what it serves (API §27): its event bus, its state and spec caches
//! and its key ring follow the `events` table.
//!
//! Every transaction that appends events on PostgreSQL also runs `pg_notify` on
//! [`CHANNEL`] ([`crate::journal::append_in`]), delivered at its commit. The [`Replica`]
//! listens; a notification (or, should one be missed, the [`POLL`] timer) sends it
//! [`CatchUp`], which reads every event after the last one it handled, in id order, and for
//! each batch:
//! 1. reloads the state and spec keys the events name, and the key ring after `key.*`;
//! 2. then hands the batch to the follower's bus (`Committed`), which fans it out to its
//!    WebSocket and long-poll clients in id order.
//!
//! So a client that sees an event and then reads through the same follower reads what the
//! event announced. Catch-ups run one at a time; the forwarder runs one after each forwarded
//! write before it answers, so a client reads its own writes through a follower.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::postgres::PgListener;

use crate::events::{Committed, Event, EventBus, EventError, HistoryAfter, HistoryFilter};
use crate::keys::{KeyRing, KeyStore};
use crate::specs::SpecRegistry;
use crate::state::{DocKind, Reload, StateDocs, StateStore};

/// The `NOTIFY` channel of committed events.
pub const CHANNEL: &str = "koor_events";
/// How often the replica catches up without a notification.
pub const POLL: Duration = Duration::from_secs(1);
/// Events read per step of a catch-up.
const BATCH: u64 = 500;

/// Brings the follower up to the newest committed event; answered with the id it reached.
#[derive(Message)]
#[rtype(result = "Result<i64, String>")]
pub struct CatchUp;

/// What a follower keeps exact.
pub struct Replica {
    /// The tagged database URL, for the listening session.
    url: String,
    db: DatabaseConnection,
    /// The id of the last event handled.
    last: i64,
    events: Addr<EventBus>,
    state: Addr<StateStore>,
    specs: Addr<SpecRegistry>,
    ring: KeyRing,
    /// Ends the listening session (see [`Replica::stopper`]).
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Ends a replica's listening session inside the runtime, before the server's runtime
/// goes away (the session's driver needs it to close).
pub struct Stopper {
    stop: tokio::sync::watch::Sender<bool>,
}

impl Stopper {
    /// Ends the listening session and waits (up to a second) until it has closed.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stop.closed()).await;
    }
}

/// The caches a batch of events invalidates.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Touched {
    pub state: Vec<String>,
    pub specs: Vec<String>,
    pub keys: bool,
}

/// What `events` changed (a pure function of the events).
pub fn touched(events: &[Event]) -> Touched {
    let mut t = Touched::default();
    for e in events {
        let topic = e.topic.as_str();
        if topic == StateDocs::UPDATED || topic == StateDocs::DELETED {
            t.state.extend(StateDocs::key_of(&e.data));
        } else if topic == crate::specs::SpecDocs::UPDATED
            || topic == crate::specs::SpecDocs::DELETED
        {
            t.specs.extend(crate::specs::SpecDocs::key_of(&e.data));
        } else if topic.starts_with("key.") {
            t.keys = true;
        }
    }
    for keys in [&mut t.state, &mut t.specs] {
        keys.sort();
        keys.dedup();
    }
    t
}

impl Replica {
    /// A replica that has handled every event up to `last` (the bus's own start).
    pub fn new(
        url: String,
        db: DatabaseConnection,
        last: i64,
        events: Addr<EventBus>,
        state: Addr<StateStore>,
        specs: Addr<SpecRegistry>,
        ring: KeyRing,
    ) -> (Replica, Stopper) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let replica = Replica {
            url,
            db,
            last,
            events,
            state,
            specs,
            ring,
            stop: stopped,
        };
        (replica, Stopper { stop })
    }
}

impl Actor for Replica {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(POLL, |_, ctx| ctx.notify(CatchUp));
        let (url, me, stop) = (self.url.clone(), ctx.address(), self.stop.clone());
        actix::spawn(listen(url, me, stop));
    }
}

/// Sends `CatchUp` to `replica` after each notification, until `stop`.
async fn listen(url: String, replica: Addr<Replica>, mut stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow() {
        let mut listener = match PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for events; polling meanwhile");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for events; polling meanwhile");
            tokio::time::sleep(POLL).await;
            continue;
        }
        // Events committed while not listening.
        replica.do_send(CatchUp);
        loop {
            let got = tokio::select! {
                got = listener.recv() => got,
                _ = stop.changed() => {
                    let _ = listener.unlisten_all().await;
                    drop(listener);
                    return;
                }
            };
            match got {
                Ok(_) => {
                    // Many commits, one catch-up.
                    while listener.next_buffered().is_some() {}
                    if !replica.connected() {
                        return;
                    }
                    replica.do_send(CatchUp);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the events listener; listening again");
                    break;
                }
            }
        }
        if !replica.connected() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Handler<CatchUp> for Replica {
    type Result = AtomicResponse<Self, Result<i64, String>>;

    fn handle(&mut self, _: CatchUp, _: &mut Self::Context) -> Self::Result {
        let (events, state, specs) = (self.events.clone(), self.state.clone(), self.specs.clone());
        let (db, ring, mut after) = (self.db.clone(), self.ring.clone(), self.last);
        AtomicResponse::new(Box::pin(
            async move {
                loop {
                    let read = events
                        .send(HistoryAfter {
                            after,
                            filter: HistoryFilter::default(),
                            limit: BATCH,
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                    let batch = match read {
                        Ok(batch) => batch,
                        Err(EventError::Expired { oldest, .. }) => {
                            tracing::warn!(
                                after,
                                oldest,
                                "events pruned before this follower read them"
                            );
                            after = oldest - 1;
                            continue;
                        }
                        Err(e) => return Err(e.to_string()),
                    };
                    let Some(newest) = batch.last().map(|e| e.id) else {
                        return Ok(after);
                    };
                    let t = touched(&batch);
                    if !t.state.is_empty() {
                        state
                            .send(Reload(t.state))
                            .await
                            .map_err(|e| e.to_string())?
                            .map_err(|e| e.to_string())?;
                    }
                    if !t.specs.is_empty() {
                        specs
                            .send(Reload(t.specs))
                            .await
                            .map_err(|e| e.to_string())?
                            .map_err(|e| e.to_string())?;
                    }
                    if t.keys {
                        KeyStore::reload_ring(&db, &ring)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    let full = batch.len() as u64 == BATCH;
                    events.do_send(Committed(batch.into_iter().map(Arc::new).collect()));
                    after = newest;
                    if !full {
                        return Ok(after);
                    }
                }
            }
            .into_actor(self)
            .map(|reached, act, _| {
                match &reached {
                    Ok(id) => act.last = act.last.max(*id),
                    Err(e) => tracing::warn!(error = %e, "cannot catch up with the leader"),
                }
                reached
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: i64, topic: &str, data: serde_json::Value) -> Event {
        Event {
            id,
            topic: topic.into(),
            data,
            source: "test".into(),
            created_at: 0,
        }
    }

    #[test]
    fn events_name_the_caches_they_change() {
        let t = touched(&[
            event(
                1,
                "state.updated",
                json!({"key": "a/b", "version": 2, "hash": "h"}),
            ),
            event(2, "state.deleted", json!({"key": "c", "version": 1})),
            event(
                3,
                "state.updated",
                json!({"key": "a/b", "version": 3, "hash": "h"}),
            ),
            event(
                4,
                "spec.updated",
                json!({"project": "p", "name": "api", "version": 1}),
            ),
            event(5, "key.revoked", json!({"id": "k"})),
            event(6, "agent.active", json!({"key": "not-state"})),
        ]);
        assert_eq!(t.state, vec!["a/b".to_string(), "c".to_string()]);
        assert_eq!(t.specs, vec!["p/api".to_string()]);
        assert!(t.keys);
    }

    #[test]
    fn other_events_change_nothing() {
        let t = touched(&[event(1, "build.done", json!({"key": "x"}))]);
        assert_eq!(t, Touched::default());
    }
}
