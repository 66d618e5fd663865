//! `EventBus`: the single owner of the `events` table and of the live subscriptions.
//!
//! Concurrency: `Publish` joins a queue; one batch at a time is committed (ids are
//! assigned here, in order, so they strictly increase and are never reused); publishers
//! are answered after the commit, then the batch is fanned out in id order to matching
//! subscribers (`try_send`: a full subscriber buffer unsubscribes it and sends it
//! `BusFrame::Lagged`, so no event is ever dropped silently and no publisher waits) and
//! long-poll waiters are woken. History, resume and long-poll reads run as concurrent
//! futures over the pool. Pruning runs every `prune_interval` and on `PruneEvents`.

use bytestring::ByteString;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix::dev::SendError;
use actix::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use tokio::sync::oneshot;

use super::messages::*;
use super::model::{Event, EventError, HistoryFilter};
use super::pattern::TopicPattern;
use super::repository::EventRepository;
use crate::batch::{GroupCommit, Outbox, WritePath, enqueue};
use crate::journal::{Records, Stamped};

type Outcome = Result<Arc<Event>, EventError>;

/// How long an id may be missing from the fan-out before it is read back from the table.
/// Commits of different domains may report out of order by a few microseconds; an id that
/// is still missing after this was committed by a writer that never reported it.
const GAP_WAIT: Duration = Duration::from_millis(100);

/// How often a follower's bus reads where the leader's pruning has reached, so that a
/// resume from a pruned cursor is answered `Expired`.
const REPLICA_PRUNE_CHECK: Duration = Duration::from_secs(1);

struct Subscriber {
    pattern: TopicPattern,
    recipient: Recipient<BusFrame>,
    client: bool,
}

struct Waiter {
    pattern: TopicPattern,
    after: i64,
    wake: oneshot::Sender<()>,
}

/// Settings of the bus.
#[derive(Clone, Copy, Debug)]
pub struct BusSettings {
    /// Most events committed in one transaction.
    pub batch_max: usize,
    /// Events kept by the pruner.
    pub retention: u64,
    /// How often the pruner runs.
    pub prune_interval: Duration,
    /// A follower's bus (API §27): its events come from the replica as `Committed`; it
    /// prunes nothing and only follows where the leader's pruning has reached.
    pub replica: bool,
}

/// The events domain actor.
pub struct EventBus {
    repo: EventRepository,
    settings: BusSettings,
    path: WritePath<Publish, Outcome>,
    /// Highest id fanned out: every committed event up to it has been delivered.
    last_committed: i64,
    /// Committed events waiting for a lower id to be delivered first.
    reordered: BTreeMap<i64, Arc<Event>>,
    /// A read-back of missing ids is scheduled or running.
    filling: bool,
    /// Events with an id up to this one may have been pruned. Shared with read futures:
    /// the pruner raises it before deleting, and reads check it again after reading, so a
    /// read that raced a prune reports `Expired` instead of a silent gap.
    pruned_through: Arc<AtomicI64>,
    subscribers: HashMap<u64, Subscriber>,
    next_subscriber: u64,
    waiters: Vec<Waiter>,
    /// Events committed since this process started.
    published: u64,
}

impl EventBus {
    /// Reads the id sequence from the database and returns the actor, not yet started.
    pub async fn load(
        db: DatabaseConnection,
        outbox: Outbox,
        settings: BusSettings,
    ) -> Result<Self, sea_orm::DbErr> {
        let repo = EventRepository::new(db.clone());
        let last_id = crate::journal::last_event_id(&db).await?;
        let pruned_through = match repo.oldest_id().await? {
            Some(oldest) => oldest - 1,
            None => last_id,
        };
        Ok(Self {
            repo,
            settings: BusSettings {
                batch_max: settings.batch_max.max(1),
                ..settings
            },
            path: WritePath::new(db, outbox, settings.batch_max),
            last_committed: last_id,
            reordered: BTreeMap::new(),
            filling: false,
            pruned_through: Arc::new(AtomicI64::new(pruned_through)),
            subscribers: HashMap::new(),
            next_subscriber: 1,
            waiters: Vec::new(),
            published: 0,
        })
    }

    /// Takes committed events (from any writer, in any order) and fans out every one
    /// whose predecessors have all been fanned out.
    fn deliver(&mut self, events: Vec<Arc<Event>>, ctx: &mut Context<Self>) {
        for event in events {
            if event.id > self.last_committed {
                self.reordered.insert(event.id, event);
            }
        }
        while let Some(entry) = self.reordered.first_entry() {
            if *entry.key() != self.last_committed + 1 {
                break;
            }
            let event = entry.remove();
            self.fan_out(&event);
        }
        if !self.reordered.is_empty() && !self.filling {
            self.filling = true;
            ctx.run_later(GAP_WAIT, |act, ctx| act.fill_gap(ctx));
        }
    }

    /// Reads back the ids still missing before the first waiting event; they are
    /// committed (ids are assigned in commit order), only their report is late or lost.
    fn fill_gap(&mut self, ctx: &mut Context<Self>) {
        let Some(&first) = self.reordered.keys().next() else {
            self.filling = false;
            return;
        };
        let after = self.last_committed;
        if first <= after + 1 {
            self.filling = false;
            self.deliver(Vec::new(), ctx);
            return;
        }
        let repo = self.repo.clone();
        let filter = HistoryFilter {
            until_id: Some(first - 1),
            ..Default::default()
        };
        let missing = u64::try_from(first - 1 - after).unwrap_or(u64::MAX);
        ctx.spawn(
            async move { repo.after(after, &filter, missing).await }
                .into_actor(self)
                .map(move |found, act, ctx| {
                    act.filling = false;
                    match found {
                        Ok(events) => {
                            let got = events.len() as u64;
                            if got < missing {
                                // Pruned before they could be delivered: nothing to send.
                                tracing::warn!(after, first, got, "events missing from the fan-out");
                                act.last_committed = act.last_committed.max(first - 1);
                            }
                            let events = events.into_iter().map(Arc::new).collect();
                            act.deliver(events, ctx);
                            if got < missing {
                                act.deliver(Vec::new(), ctx);
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read back events missing from the fan-out");
                            act.deliver(Vec::new(), ctx);
                        }
                    }
                }),
        );
    }

    fn fan_out(&mut self, event: &Arc<Event>) {
        self.last_committed = event.id;
        self.published += 1;
        let mut text: Option<ByteString> = None;
        self.subscribers.retain(|id, sub| {
            if !sub.pattern.matches(&event.topic) {
                return true;
            }
            let text = text
                .get_or_insert_with(|| ByteString::from(event.to_json()))
                .clone();
            match sub.recipient.try_send(BusFrame::Event(event.clone(), text)) {
                Ok(()) => true,
                Err(SendError::Full(_)) => {
                    tracing::warn!(
                        subscriber = id,
                        event = event.id,
                        "subscriber lagged; closing it"
                    );
                    sub.recipient.do_send(BusFrame::Lagged);
                    false
                }
                Err(SendError::Closed(_)) => false,
            }
        });
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i];
            if w.wake.is_closed() {
                self.waiters.swap_remove(i);
            } else if event.id > w.after && w.pattern.matches(&event.topic) {
                let w = self.waiters.swap_remove(i);
                let _ = w.wake.send(());
            } else {
                i += 1;
            }
        }
    }

    /// `Expired` when events after `after` may already have been pruned.
    fn check_cursor(&self, after: i64) -> Result<(), EventError> {
        check_cursor(&self.pruned_through, after)
    }
}

fn check_cursor(pruned_through: &AtomicI64, after: i64) -> Result<(), EventError> {
    let pruned = pruned_through.load(Ordering::Acquire);
    if after < pruned {
        return Err(EventError::Expired {
            after,
            oldest: pruned + 1,
        });
    }
    Ok(())
}

impl Actor for EventBus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
        if self.settings.replica {
            ctx.run_interval(REPLICA_PRUNE_CHECK, |act, ctx| {
                act.waiters.retain(|w| !w.wake.is_closed());
                let (repo, pruned) = (act.repo.clone(), act.pruned_through.clone());
                ctx.spawn(
                    async move {
                        if let Ok(Some(oldest)) = repo.oldest_id().await {
                            pruned.fetch_max(oldest - 1, Ordering::AcqRel);
                        }
                    }
                    .into_actor(act),
                );
            });
            return;
        }
        ctx.run_interval(self.settings.prune_interval, |act, ctx| {
            act.waiters.retain(|w| !w.wake.is_closed());
            ctx.notify(PruneEvents);
        });
    }
}

impl GroupCommit for EventBus {
    type Op = Publish;
    type Out = Outcome;
    type Work = (Vec<Publish>, i64);
    type Done = Vec<Arc<Event>>;

    fn write_path(&mut self) -> &mut WritePath<Publish, Outcome> {
        &mut self.path
    }

    fn prepare(&mut self, ops: Vec<Publish>, now: i64) -> Self::Work {
        (ops, now)
    }

    async fn write(
        (events, now): Self::Work,
        txn: &DatabaseTransaction,
    ) -> Result<(Self::Done, Records), DbErr> {
        let records = Records {
            events,
            ..Records::new()
        };
        let stamped = crate::journal::append_in(txn, records, now).await?;
        Ok((stamped.events, Records::new()))
    }

    fn finish(&mut self, events: Self::Done, ctx: &mut Context<Self>) -> Vec<Outcome> {
        let answers = events.iter().cloned().map(Ok).collect();
        self.deliver(events, ctx);
        answers
    }

    fn failed(error: &DbErr) -> Outcome {
        Err(EventError::Storage(error.to_string()))
    }

    fn published(&mut self, stamped: Stamped, ctx: &mut Context<Self>) {
        let events = self.path.outbox().committed(stamped);
        self.deliver(events, ctx);
    }
}

impl Handler<Committed> for EventBus {
    type Result = ();

    fn handle(&mut self, msg: Committed, ctx: &mut Self::Context) {
        self.deliver(msg.0, ctx);
    }
}

impl Handler<Publish> for EventBus {
    type Result = ResponseFuture<Result<Arc<Event>, EventError>>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        let rx = enqueue(self, msg, ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(EventError::Unavailable)) })
    }
}

impl Handler<History> for EventBus {
    type Result = ResponseFuture<Result<Vec<Event>, EventError>>;

    fn handle(&mut self, msg: History, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.newest(&msg.filter, msg.last).await?) })
    }
}

impl Handler<HistoryAfter> for EventBus {
    type Result = ResponseFuture<Result<Vec<Event>, EventError>>;

    fn handle(&mut self, msg: HistoryAfter, _: &mut Self::Context) -> Self::Result {
        let checked = self.check_cursor(msg.after);
        let repo = self.repo.clone();
        let pruned = self.pruned_through.clone();
        Box::pin(async move {
            checked?;
            let events = repo.after(msg.after, &msg.filter, msg.limit).await?;
            check_cursor(&pruned, msg.after)?;
            Ok(events)
        })
    }
}

impl Handler<Wait> for EventBus {
    type Result = ResponseFuture<Result<Vec<Event>, EventError>>;

    fn handle(&mut self, msg: Wait, _: &mut Self::Context) -> Self::Result {
        let after = msg.after.unwrap_or(self.last_committed);
        let checked = self.check_cursor(after);
        let filter = HistoryFilter {
            topic: msg.topic.clone(),
            ..Default::default()
        };
        // Registered before the first read, so an event committed in between still wakes us.
        let (wake, woken) = oneshot::channel();
        if checked.is_ok() {
            self.waiters.push(Waiter {
                pattern: TopicPattern::new(msg.topic.as_deref().unwrap_or("")),
                after,
                wake,
            });
        }
        let repo = self.repo.clone();
        let pruned = self.pruned_through.clone();
        Box::pin(async move {
            checked?;
            let found = repo.after(after, &filter, msg.limit).await?;
            check_cursor(&pruned, after)?;
            if !found.is_empty() {
                return Ok(found);
            }
            match tokio::time::timeout(msg.timeout, woken).await {
                Ok(Ok(())) => {
                    let found = repo.after(after, &filter, msg.limit).await?;
                    check_cursor(&pruned, after)?;
                    Ok(found)
                }
                _ => Ok(Vec::new()),
            }
        })
    }
}

impl Handler<Subscribe> for EventBus {
    type Result = Subscribed;

    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) -> Subscribed {
        let id = self.next_subscriber;
        self.next_subscriber += 1;
        self.subscribers.insert(
            id,
            Subscriber {
                pattern: TopicPattern::new(&msg.pattern),
                recipient: msg.recipient,
                client: msg.client,
            },
        );
        Subscribed {
            id,
            live_after: self.last_committed,
        }
    }
}

impl Handler<Unsubscribe> for EventBus {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) {
        self.subscribers.remove(&msg.id);
    }
}

impl Handler<PruneEvents> for EventBus {
    type Result = ResponseFuture<Result<u64, EventError>>;

    fn handle(&mut self, _: PruneEvents, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        let keep = self.settings.retention;
        let pruned = self.pruned_through.clone();
        Box::pin(async move {
            let Some(_run) = repo.pruning().start() else {
                return Ok(0);
            };
            let Some(cutoff) = repo.prune_cutoff(keep).await? else {
                return Ok(0);
            };
            // Raised before the delete, so no reader can miss the gap it leaves.
            pruned.fetch_max(cutoff, Ordering::AcqRel);
            // Oldest first, a short write transaction per batch, so that the write lock is
            // never held for long and the WAL can be checkpointed between batches.
            let repo = &repo;
            let deleted = crate::retention::in_batches(|| {
                repo.prune_batch(cutoff, crate::retention::PRUNE_BATCH)
            })
            .await?;
            if deleted > 0 {
                tracing::debug!(deleted, through = cutoff, "pruned events");
            }
            Ok(deleted)
        })
    }
}

impl Handler<GetBusStats> for EventBus {
    type Result = BusStats;

    fn handle(&mut self, _: GetBusStats, _: &mut Self::Context) -> BusStats {
        BusStats {
            last_event_id: self
                .reordered
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0)
                .max(self.last_committed),
            subscribers: self.subscribers.values().filter(|s| s.client).count(),
            published: self.published,
        }
    }
}
