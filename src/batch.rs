//! The write path every domain shares: a write queue, one group-commit driver, and the
//! outbox that tells the rest of the server what a commit did.
//!
//! A write joins its actor's queue and its caller waits on a oneshot. At most one batch
//! per actor is in flight; everything that arrives meanwhile goes into the next batch, so
//! under load many writes share one transaction (and one fsync) while a lone write is
//! committed at once.
//!
//! A domain that batches implements [`GroupCommit`]: it prepares a batch from its memory
//! ([`GroupCommit::prepare`]), writes it through the transaction it is handed
//! ([`GroupCommit::write`], which also returns the batch's audit entries and events), and
//! finishes in memory after the commit ([`GroupCommit::finish`]). [`enqueue`] and the loop
//! behind it do the rest, the same for every domain:
//!
//! 1. `BEGIN IMMEDIATE`;
//! 2. the domain's rows;
//! 3. the batch's audit entries and events ([`crate::journal::append_in`]);
//! 4. `COMMIT` (one fsync);
//! 5. memory, then every caller's answer, in order;
//! 6. the committed events go to the event bus, which fans them out in id order.
//!
//! A failed commit answers every caller of the batch with the domain's storage error and
//! leaves memory untouched. Domains whose writes are rare and must be validated against
//! memory one at a time (rules, templates, webhooks) use [`persist_then`] with
//! [`commit_with`] instead: the same transaction shape, one write at a time.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use tokio::sync::oneshot;

use crate::events::{Committed, Event, EventBus};
use crate::journal::{Records, Stamped};
use crate::time::now_micros;

/// Mailbox size of the domain actors. Senders using `send` wait when it is full
/// (backpressure); it is large so that bursts from many HTTP workers rarely wait.
pub const MAILBOX_CAPACITY: usize = 1 << 16;

/// The queue of pending writes of one actor: `Op` is a write, `Out` what its caller gets.
pub struct WriteQueue<Op, Out> {
    pending: VecDeque<(Op, oneshot::Sender<Out>)>,
    in_flight: bool,
    batch_max: usize,
}

/// One batch taken from the queue: the writes and, in the same order, their reply slots.
pub struct Batch<Op, Out> {
    pub ops: Vec<Op>,
    pub replies: Vec<oneshot::Sender<Out>>,
}

impl<Op, Out> Batch<Op, Out> {
    /// Answers every caller with its result, in order (results beyond the replies are
    /// dropped; callers beyond the results see their channel closed).
    pub fn answer(self, results: impl IntoIterator<Item = Out>) {
        for (reply, out) in self.replies.into_iter().zip(results) {
            let _ = reply.send(out);
        }
    }

    /// Answers every caller with a clone of `out` (a failed commit).
    pub fn fail(self, out: Out)
    where
        Out: Clone,
    {
        for reply in self.replies {
            let _ = reply.send(out.clone());
        }
    }
}

impl<Op, Out> WriteQueue<Op, Out> {
    /// An empty queue committing at most `batch_max` (at least 1) writes per batch.
    pub fn new(batch_max: usize) -> Self {
        Self {
            pending: VecDeque::new(),
            in_flight: false,
            batch_max: batch_max.max(1),
        }
    }

    /// Queues `op`; the receiver resolves when its batch has been committed.
    pub fn push(&mut self, op: Op) -> oneshot::Receiver<Out> {
        let (tx, rx) = oneshot::channel();
        self.pending.push_back((op, tx));
        rx
    }

    /// The next batch, unless one is in flight or nothing waits. The caller commits it
    /// and then calls [`WriteQueue::done`].
    pub fn next_batch(&mut self) -> Option<Batch<Op, Out>> {
        if self.in_flight || self.pending.is_empty() {
            return None;
        }
        self.in_flight = true;
        let n = self.pending.len().min(self.batch_max);
        let (ops, replies) = self.pending.drain(..n).unzip();
        Some(Batch { ops, replies })
    }

    /// Marks the batch in flight as finished.
    pub fn done(&mut self) {
        self.in_flight = false;
    }

    /// Writes waiting for a batch (not counting the one in flight).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no write waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Where a commit's consequences go: its events to the bus (to be fanned out in id order)
/// and its last audit id to the audit log's high-water mark. Cheap to clone. The default
/// has no bus (a writer that records no events, or a test).
#[derive(Clone, Default)]
pub struct Outbox {
    bus: Option<Addr<EventBus>>,
    audit_committed: Arc<AtomicI64>,
}

impl Outbox {
    /// An outbox sending events to `bus`; `audit_committed` is the audit log's record of
    /// the highest entry id this process has seen committed.
    pub fn new(bus: Option<Addr<EventBus>>, audit_committed: Arc<AtomicI64>) -> Self {
        Self {
            bus,
            audit_committed,
        }
    }

    /// The same outbox with its events going to `bus`.
    pub fn with_bus(&self, bus: Addr<EventBus>) -> Self {
        Self {
            bus: Some(bus),
            audit_committed: self.audit_committed.clone(),
        }
    }

    /// After a commit: raises the audit high-water mark and hands the events to the bus.
    /// Returns the events (for the bus itself, which has no bus to send them to).
    pub fn committed(&self, stamped: Stamped) -> Vec<Arc<Event>> {
        if stamped.last_audit_id > 0 {
            self.audit_committed
                .fetch_max(stamped.last_audit_id, Ordering::AcqRel);
        }
        match &self.bus {
            Some(bus) if !stamped.events.is_empty() => {
                bus.do_send(Committed(stamped.events));
                Vec::new()
            }
            _ => stamped.events,
        }
    }
}

/// Appends `records` to `txn` (continuing the event ids and the audit chain) and commits:
/// the last step of every write transaction.
pub async fn commit_with(
    txn: DatabaseTransaction,
    records: Records,
    now: i64,
) -> Result<Stamped, DbErr> {
    let stamped = crate::journal::append_in(&txn, records, now).await?;
    txn.commit().await?;
    Ok(stamped)
}

/// The write side of a batching domain actor: its queue, its database handle and its
/// outbox.
pub struct WritePath<Op, Out> {
    queue: WriteQueue<Op, Out>,
    db: DatabaseConnection,
    outbox: Outbox,
}

impl<Op, Out> WritePath<Op, Out> {
    /// A write path committing at most `batch_max` writes per transaction.
    pub fn new(db: DatabaseConnection, outbox: Outbox, batch_max: usize) -> Self {
        Self {
            queue: WriteQueue::new(batch_max),
            db,
            outbox,
        }
    }

    /// The outbox (for an actor that also commits outside its queue).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

/// A domain actor whose writes are group-committed. Implement the four steps; [`enqueue`]
/// drives them.
pub trait GroupCommit: Actor<Context = Context<Self>> {
    /// One queued write.
    type Op: 'static;
    /// What the write's caller is answered.
    type Out: 'static;
    /// A batch prepared from memory: everything the transaction needs.
    type Work: 'static;
    /// What the transaction hands back to [`GroupCommit::finish`].
    type Done: 'static;

    /// The actor's write path.
    fn write_path(&mut self) -> &mut WritePath<Self::Op, Self::Out>;

    /// Takes a batch of writes, in arrival order, at time `now` (unix microseconds).
    /// Runs in the actor; must not change memory (the batch may still fail to commit).
    fn prepare(&mut self, ops: Vec<Self::Op>, now: i64) -> Self::Work;

    /// Writes the batch's rows through `txn` and returns what `finish` needs and what the
    /// batch records (audit entries of the writes that succeeded, and their events).
    fn write(
        work: Self::Work,
        txn: &DatabaseTransaction,
    ) -> impl Future<Output = Result<(Self::Done, Records), DbErr>>;

    /// After the commit: updates memory and returns each write's answer, in order.
    fn finish(&mut self, done: Self::Done, ctx: &mut Context<Self>) -> Vec<Self::Out>;

    /// Every caller's answer when the batch could not be committed.
    fn failed(error: &DbErr) -> Self::Out;

    /// The batch's committed events (with their ids). The default hands them to the bus.
    fn published(&mut self, stamped: Stamped, _ctx: &mut Context<Self>) {
        let _ = self.write_path().outbox.committed(stamped);
    }
}

/// Queues `op` on `act`'s write path and starts a batch unless one is in flight; the
/// receiver resolves after the commit (or its failure).
pub fn enqueue<A: GroupCommit>(
    act: &mut A,
    op: A::Op,
    ctx: &mut Context<A>,
) -> oneshot::Receiver<A::Out> {
    let rx = act.write_path().queue.push(op);
    flush(act, ctx);
    rx
}

/// Commits the next batch unless one is in flight.
#[tracing::instrument(level = "debug", skip_all, name = "group_commit", fields(actor = std::any::type_name::<A>()))]
fn flush<A: GroupCommit>(act: &mut A, ctx: &mut Context<A>) {
    let path = act.write_path();
    let Some(mut batch) = path.queue.next_batch() else {
        return;
    };
    let db = path.db.clone();
    let ops = std::mem::take(&mut batch.ops);
    let writes = ops.len();
    let now = now_micros();
    let work = act.prepare(ops, now);
    let commit = async move {
        let started = std::time::Instant::now();
        let txn = crate::db::begin_write(&db).await?;
        let (done, records) = A::write(work, &txn).await?;
        let (events, entries) = (records.events.len(), records.audit.len());
        let stamped = commit_with(txn, records, now).await?;
        tracing::debug!(
            events,
            audit = entries,
            micros = started.elapsed().as_micros() as u64,
            "batch committed"
        );
        Ok::<_, DbErr>((done, stamped))
    };
    let span = tracing::debug_span!("commit", writes);
    ctx.spawn(
        tracing::Instrument::instrument(commit, span)
            .into_actor(act)
            .map(move |result, act, ctx| {
                act.write_path().queue.done();
                match result {
                    Ok((done, stamped)) => {
                        let answers = act.finish(done, ctx);
                        batch.answer(answers);
                        act.published(stamped, ctx);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, writes = batch.replies.len(), "batch failed to commit");
                        for reply in batch.replies {
                            let _ = reply.send(A::failed(&e));
                        }
                    }
                }
                flush(act, ctx);
            }),
    );
}

/// The answer of an `AtomicResponse` handler that refuses a message before doing any work
/// (bad input, unknown id): the error, at once.
pub fn refuse<A, T, E>(err: E) -> AtomicResponse<A, Result<T, E>>
where
    A: Actor,
    T: 'static,
    E: 'static,
{
    AtomicResponse::new(Box::pin(actix::fut::ready(Err(err))))
}

/// A write of an actor that keeps its data in memory and writes one at a time: `io` (its
/// transaction, ending in [`commit_with`]) runs first, and only when it succeeds does
/// `apply` update the actor's memory and make the answer; a storage error is the answer
/// otherwise and memory stays untouched.
pub fn after_commit<A, R, T, E, Fut, F>(
    act: &A,
    io: Fut,
    apply: F,
) -> ResponseActFuture<A, Result<T, E>>
where
    A: Actor<Context = Context<A>>,
    Fut: Future<Output = Result<R, DbErr>> + 'static,
    F: FnOnce(R, &mut A, &mut Context<A>) -> T + 'static,
    R: 'static,
    T: 'static,
    E: From<DbErr> + 'static,
{
    Box::pin(
        io.into_actor(act)
            .map(move |result, act, ctx| Ok(apply(result?, act, ctx))),
    )
}

/// The answer of an `AtomicResponse` handler that writes: [`after_commit`], run while the
/// actor handles no other message.
pub fn persist_then<A, R, T, E, Fut, F>(
    act: &A,
    io: Fut,
    apply: F,
) -> AtomicResponse<A, Result<T, E>>
where
    A: Actor<Context = Context<A>>,
    Fut: Future<Output = Result<R, DbErr>> + 'static,
    F: FnOnce(R, &mut A, &mut Context<A>) -> T + 'static,
    R: 'static,
    T: 'static,
    E: From<DbErr> + 'static,
{
    AtomicResponse::new(after_commit(act, io, apply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_bounded_and_one_at_a_time() {
        let mut q: WriteQueue<u32, u32> = WriteQueue::new(2);
        let rx: Vec<_> = (0..5).map(|i| q.push(i)).collect();
        let first = q.next_batch().unwrap();
        assert_eq!(first.ops, vec![0, 1]);
        assert!(q.next_batch().is_none(), "a batch is already in flight");
        first.answer([10, 11]);
        q.done();
        let second = q.next_batch().unwrap();
        assert_eq!(second.ops, vec![2, 3]);
        second.fail(7);
        q.done();
        assert_eq!(q.len(), 1);
        let mut rx = rx.into_iter();
        assert_eq!(rx.next().unwrap().blocking_recv().unwrap(), 10);
        assert_eq!(rx.next().unwrap().blocking_recv().unwrap(), 11);
        assert_eq!(rx.next().unwrap().blocking_recv().unwrap(), 7);
        assert_eq!(rx.next().unwrap().blocking_recv().unwrap(), 7);
    }
}
