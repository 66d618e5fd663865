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
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix::dev::SendError;
use actix::prelude::*;
use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;

use super::messages::*;
use super::model::{Event, EventError, HistoryFilter};
use super::pattern::TopicPattern;
use super::repository::EventRepository;
use crate::batch::WriteQueue;
use crate::time::now_micros;

type Outcome = Result<Arc<Event>, EventError>;

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
}

/// The events domain actor.
pub struct EventBus {
    repo: EventRepository,
    settings: BusSettings,
    /// Highest id assigned so far (committed or in flight).
    last_assigned: i64,
    /// Highest id committed and fanned out.
    last_committed: i64,
    /// Events with an id up to this one may have been pruned. Shared with read futures:
    /// the pruner raises it before deleting, and reads check it again after reading, so a
    /// read that raced a prune reports `Expired` instead of a silent gap.
    pruned_through: Arc<AtomicI64>,
    queue: WriteQueue<Publish, Outcome>,
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
        settings: BusSettings,
    ) -> Result<Self, sea_orm::DbErr> {
        let repo = EventRepository::new(db);
        let last_id = repo.last_id().await?;
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
            last_assigned: last_id,
            last_committed: last_id,
            pruned_through: Arc::new(AtomicI64::new(pruned_through)),
            queue: WriteQueue::new(settings.batch_max),
            subscribers: HashMap::new(),
            next_subscriber: 1,
            waiters: Vec::new(),
            published: 0,
        })
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(mut batch) = self.queue.next_batch() else {
            return;
        };
        let now = now_micros();
        let events: Vec<Event> = std::mem::take(&mut batch.ops)
            .into_iter()
            .map(|p| {
                self.last_assigned += 1;
                Event {
                    id: self.last_assigned,
                    topic: p.topic,
                    data: p.data,
                    source: p.source,
                    created_at: now,
                }
            })
            .collect();
        let repo = self.repo.clone();
        let commit = async move {
            let result = repo.insert(&events).await;
            (events, result)
        };
        ctx.spawn(commit.into_actor(self).map(move |(events, result), act, ctx| {
            act.queue.done();
            match result {
                Ok(()) => {
                    let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
                    batch.answer(events.iter().cloned().map(Ok));
                    for event in &events {
                        act.fan_out(event);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, events = events.len(), "event batch failed to commit");
                    batch.fail(Err(EventError::Storage(e.to_string())));
                }
            }
            act.flush(ctx);
        }));
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
        ctx.set_mailbox_capacity(crate::app::MAILBOX_CAPACITY);
        ctx.run_interval(self.settings.prune_interval, |act, ctx| {
            act.waiters.retain(|w| !w.wake.is_closed());
            ctx.notify(PruneEvents);
        });
    }
}

impl Handler<Publish> for EventBus {
    type Result = ResponseFuture<Result<Arc<Event>, EventError>>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.queue.push(msg);
        self.flush(ctx);
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
            let Some(cutoff) = repo.prune_cutoff(keep).await? else {
                return Ok(0);
            };
            // Raised before the delete, so no reader can miss the gap it leaves.
            pruned.fetch_max(cutoff, Ordering::AcqRel);
            let deleted = repo.delete_through(cutoff).await?;
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
            last_event_id: self.last_assigned,
            subscribers: self.subscribers.values().filter(|s| s.client).count(),
            published: self.published,
        }
    }
}
