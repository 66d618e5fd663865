//! `EventBus`: the single owner of the `events` table.
//!
//! Concurrency: `Publish` joins a queue; one batch at a time is committed (ids are
//! assigned by the bus in order, so they are strictly increasing and never reused);
//! publishers are answered after the commit. History reads run as concurrent futures.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;

use super::messages::*;
use super::model::{Event, EventError};
use super::repository::EventRepository;
use crate::time::now_micros;

type Reply = oneshot::Sender<Result<Arc<Event>, EventError>>;

/// The events domain actor.
pub struct EventBus {
    repo: EventRepository,
    /// Highest id assigned so far (committed or in flight).
    last_assigned: i64,
    queue: VecDeque<(Publish, Reply)>,
    flushing: bool,
    batch_max: usize,
}

impl EventBus {
    /// Reads the id sequence from the database and returns the actor, not yet started.
    pub async fn load(db: DatabaseConnection, batch_max: usize) -> Result<Self, sea_orm::DbErr> {
        let repo = EventRepository::new(db);
        let last_assigned = repo.last_id().await?;
        Ok(Self {
            repo,
            last_assigned,
            queue: VecDeque::new(),
            flushing: false,
            batch_max: batch_max.max(1),
        })
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.queue.is_empty() {
            return;
        }
        self.flushing = true;
        let n = self.queue.len().min(self.batch_max);
        let now = now_micros();
        let mut events = Vec::with_capacity(n);
        let mut replies = Vec::with_capacity(n);
        for (p, reply) in self.queue.drain(..n) {
            self.last_assigned += 1;
            events.push(Event {
                id: self.last_assigned,
                topic: p.topic,
                data: p.data,
                source: p.source,
                created_at: now,
            });
            replies.push(reply);
        }
        let repo = self.repo.clone();
        let commit = async move {
            let result = repo.insert(&events).await;
            (events, result)
        };
        ctx.spawn(commit.into_actor(self).map(move |(events, result), act, ctx| {
            act.flushing = false;
            match result {
                Ok(()) => {
                    for (event, reply) in events.into_iter().zip(replies) {
                        let _ = reply.send(Ok(Arc::new(event)));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, events = replies.len(), "event batch failed to commit");
                    for reply in replies {
                        let _ = reply.send(Err(EventError::Storage(e.to_string())));
                    }
                }
            }
            act.flush(ctx);
        }));
    }
}

impl Actor for EventBus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::app::MAILBOX_CAPACITY);
    }
}

impl Handler<Publish> for EventBus {
    type Result = ResponseFuture<Result<Arc<Event>, EventError>>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.queue.push_back((msg, tx));
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

impl Handler<LastEventId> for EventBus {
    type Result = i64;

    fn handle(&mut self, _: LastEventId, _: &mut Self::Context) -> i64 {
        self.last_assigned
    }
}
