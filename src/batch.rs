//! Group commit: the write queue every single-writer domain actor drains into batches.
//!
//! A write joins the queue and its caller waits on a oneshot. At most one batch is in
//! flight; everything that arrives meanwhile goes into the next batch, so under load many
//! writes share one transaction (and one fsync) while a lone write is committed at once.

use std::collections::VecDeque;

use tokio::sync::oneshot;

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
