//! `TaskQueue`: the single owner and single writer of the tasks table.
//!
//! Memory: every task that is not finished (`queued`, `leased`, `failed`), with a
//! per-queue claim index (priority, then age, then creation order) of the claimable ones,
//! a set of the tasks waiting for their `not_before`, a set of the held leases by expiry,
//! every idempotency key, and the status counts per queue and per group. Finished tasks
//! are read from the database.
//!
//! Concurrency: every transition (create, claim, renew, complete, fail, release, cancel,
//! retry, expiry, holder lost) is a queued write, group-committed ([`GroupCommit`]). Only
//! one batch is in flight and memory changes only after its commit, so the next batch
//! sees everything the previous one did; within a batch each write sees the writes before
//! it (a task taken by an earlier claim is skipped). So a task is leased to at most one
//! holder at a time, whatever the concurrency. Each batch first expires the leases that
//! have passed. Reads answer from memory (a passed lease reads as expired even before
//! its expiry is written), or return a future over the pool for finished tasks and lists.
//!
//! Long-polls: a claim that finds nothing registers a waiter when its batch finishes; a
//! later batch or the `not_before` / expiry timer that makes a task claimable wakes the
//! waiters that can take it, in arrival order, one per task, and each claims again.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use serde_json::Value;
use tokio::sync::oneshot;

use super::messages::*;
use super::model::{
    ClaimKey, Counts, GroupSummary, Lease, QueueStats, Status, Task, TaskError, backoff_seconds,
    covers, micros,
};
use super::repository::TaskRepository;
use crate::audit::Audit;
use crate::batch::{GroupCommit, Outbox, WritePath, enqueue};
use crate::events::Publish;
use crate::http::Caller;
use crate::instances::{InstanceRegistry, WatchHolders};
use crate::journal::Records;
use crate::leases::{ExpireLeases, Fencing, HolderLost};
use crate::time::now_micros;

/// The `source` of task events.
const SOURCE: &str = "tasks";

/// What a lease operation does once the lease is found held.
#[derive(Debug)]
pub enum LeaseAct {
    Renew(Option<f64>),
    Complete(Value),
    Fail(String, Option<f64>),
    Release,
}

impl LeaseAct {
    fn audit_action(&self) -> &'static str {
        match self {
            LeaseAct::Renew(_) => "task.renew",
            LeaseAct::Complete(_) => "task.complete",
            LeaseAct::Fail(..) => "task.fail",
            LeaseAct::Release => "task.release",
        }
    }
}

/// A claim waiting in the queue.
#[derive(Debug, Clone)]
pub struct ClaimOp {
    queue: String,
    holder: String,
    capabilities: Vec<String>,
    lease_seconds: Option<f64>,
    /// Until when the claim may wait for a task (`None`: it does not wait).
    deadline: Option<Instant>,
}

/// A queued write.
#[derive(Debug)]
pub enum Op {
    Create(Box<NewTask>),
    Claim(ClaimOp),
    Lease {
        id: String,
        token: i64,
        act: LeaseAct,
    },
    Cancel(String),
    /// A retry, with the stored task when it was not in memory (it was finished).
    Retry(String, Option<Arc<Task>>),
    /// Expire the leases that have passed (every batch does; this one only asks for it).
    Expire,
    HolderLost(Vec<String>),
}

/// What a write's caller is answered.
#[derive(Debug)]
pub enum Answer {
    Task(Arc<Task>),
    /// An idempotency key named a finished task: read it from storage.
    Stored(String),
    Claimed(Option<Arc<Task>>),
    /// Nothing was claimable: wait for this, then claim again.
    Waiting(oneshot::Receiver<()>),
    /// No such task in memory: not found, or finished (a conflict).
    Absent(String),
    Expired(usize),
    Nothing,
}

type Outcome = Result<Answer, TaskError>;

/// A task a batch touched: its state before the batch (`None`: created by it) and now.
struct Touched {
    base: Option<Arc<Task>>,
    now: Arc<Task>,
}

/// The in-memory state of the queue.
#[derive(Default)]
struct Memory {
    live: HashMap<String, Arc<Task>>,
    /// Per queue, the claimable tasks (`queued` or `failed` whose `not_before` passed).
    ready: HashMap<String, BTreeSet<ClaimKey>>,
    /// (`not_before`, id) of the tasks not claimable yet.
    delayed: BTreeSet<(i64, String)>,
    /// (`expires_at`, id) of the held leases.
    expiring: BTreeSet<(i64, String)>,
    /// (queue, idempotency key) → task id.
    keys: HashMap<(String, String), String>,
    queue_counts: HashMap<String, Counts>,
    group_counts: HashMap<String, Counts>,
}

impl Memory {
    /// Removes `t` from every index (wherever a promotion may have moved it).
    fn unindex(&mut self, t: &Task) {
        if let Some(set) = self.ready.get_mut(&t.queue) {
            set.remove(&t.claim_key());
            if set.is_empty() {
                self.ready.remove(&t.queue);
            }
        }
        if let Some(nb) = t.not_before {
            self.delayed.remove(&(nb, t.id.clone()));
        }
        if let Some(l) = &t.lease {
            self.expiring.remove(&(l.expires_at, t.id.clone()));
        }
    }

    /// Adds a task that is not finished to the index its status calls for.
    fn index(&mut self, t: &Task, now: i64) {
        match t.status {
            Status::Leased => {
                if let Some(l) = &t.lease {
                    self.expiring.insert((l.expires_at, t.id.clone()));
                }
            }
            Status::Queued | Status::Failed => match t.not_before {
                Some(nb) if nb > now => {
                    self.delayed.insert((nb, t.id.clone()));
                }
                _ => {
                    self.ready
                        .entry(t.queue.clone())
                        .or_default()
                        .insert(t.claim_key());
                }
            },
            Status::Done | Status::Dead | Status::Cancelled => {}
        }
    }

    fn count(&mut self, t: &Task, delta: i64) {
        self.queue_counts
            .entry(t.queue.clone())
            .or_default()
            .add(t.status, delta);
        if let Some(g) = &t.group {
            self.group_counts
                .entry(g.clone())
                .or_default()
                .add(t.status, delta);
        }
    }

    /// Moves the tasks whose `not_before` has passed into their queue's claim index;
    /// returns the queues that gained tasks. Changes no stored state.
    fn promote(&mut self, now: i64) -> HashSet<String> {
        let mut queues = HashSet::new();
        while let Some((nb, id)) = self.delayed.first().cloned() {
            if nb > now {
                break;
            }
            self.delayed.pop_first();
            if let Some(t) = self.live.get(&id) {
                self.ready
                    .entry(t.queue.clone())
                    .or_default()
                    .insert(t.claim_key());
                queues.insert(t.queue.clone());
            }
        }
        queues
    }

    /// The leases that have passed at `now` but are not expired in storage yet.
    fn passed(&self, now: i64) -> impl Iterator<Item = &Arc<Task>> {
        self.expiring
            .iter()
            .take_while(move |(at, _)| *at <= now)
            .filter_map(|(_, id)| self.live.get(id))
    }

    /// Counts as a reader sees them at `now`: stored counts with the passed leases moved.
    fn seen_counts(&self, now: i64, of: impl Fn(&Task) -> bool, base: Counts) -> Counts {
        let mut c = base;
        for t in self.passed(now).filter(|t| of(t)) {
            c.add(Status::Leased, -1);
            c.add(t.expired(now).status, 1);
        }
        c
    }
}

/// A batch being applied on top of memory, without changing it.
struct Overlay<'a> {
    mem: &'a Memory,
    now: i64,
    touched: HashMap<String, Touched>,
    order: Vec<String>,
    /// Per queue, tasks that became claimable in this batch.
    fresh: HashMap<String, BTreeSet<ClaimKey>>,
    keys: HashMap<(String, String), String>,
    groups: HashMap<String, Counts>,
    records: Records,
    /// Groups that became finished in this batch.
    finished: Vec<String>,
    /// Groups the current transition finished, announced after its own events.
    announce: Vec<GroupSummary>,
    max_token: i64,
}

impl<'a> Overlay<'a> {
    fn new(mem: &'a Memory, now: i64) -> Self {
        Self {
            mem,
            now,
            touched: HashMap::new(),
            order: Vec::new(),
            fresh: HashMap::new(),
            keys: HashMap::new(),
            groups: HashMap::new(),
            records: Records::new(),
            finished: Vec::new(),
            announce: Vec::new(),
            max_token: 0,
        }
    }

    fn current(&self, id: &str) -> Option<Arc<Task>> {
        match self.touched.get(id) {
            Some(t) => Some(t.now.clone()),
            None => self.mem.live.get(id).cloned(),
        }
    }

    fn group_counts(&mut self, group: &str) -> &mut Counts {
        let mem = self.mem;
        self.groups
            .entry(group.to_string())
            .or_insert_with(|| mem.group_counts.get(group).copied().unwrap_or_default())
    }

    /// Records a transition from `prev` (`None`: a new task) to `next`.
    fn put(&mut self, prev: Option<Arc<Task>>, next: Task) -> Arc<Task> {
        let next = Arc::new(next);
        if let Some(g) = next.group.clone() {
            let was = self.group_counts(&g).finished();
            if let Some(p) = prev.as_ref().filter(|p| p.group.is_some()) {
                self.group_counts(&g).add(p.status, -1);
            }
            self.group_counts(&g).add(next.status, 1);
            let counts = *self.group_counts(&g);
            if !was && counts.finished() {
                self.announce.push(GroupSummary { group: g, counts });
            }
        }
        if next.claimable(self.now) {
            self.fresh
                .entry(next.queue.clone())
                .or_default()
                .insert(next.claim_key());
        }
        match self.touched.get_mut(&next.id) {
            Some(t) => t.now = next.clone(),
            None => {
                self.order.push(next.id.clone());
                self.touched.insert(
                    next.id.clone(),
                    Touched {
                        base: prev,
                        now: next.clone(),
                    },
                );
            }
        }
        next
    }

    /// Publishes `task.group.finished` for the groups the last transition finished.
    fn announce(&mut self) {
        for summary in std::mem::take(&mut self.announce) {
            self.records.event(Publish::system(
                "task.group.finished",
                SOURCE,
                summary.out(),
            ));
            self.finished.push(summary.group);
        }
    }

    fn event(&mut self, topic: &str, t: &Task, holder: Option<&str>) {
        self.records
            .event(Publish::system(topic, SOURCE, t.event_data(holder)));
    }

    /// Expires the lease of `t` (passed, or its holder lost).
    fn expire(&mut self, t: Arc<Task>) {
        let holder = t.holder().map(str::to_string);
        let next = self.put(Some(t.clone()), t.expired(self.now));
        self.event("task.expired", &next, holder.as_deref());
        if next.status == Status::Dead {
            self.event("task.dead", &next, holder.as_deref());
        }
        self.announce();
    }

    /// Expires every lease that has passed; answers how many.
    fn expire_passed(&mut self) -> usize {
        let due: Vec<Arc<Task>> = self.mem.passed(self.now).cloned().collect();
        let n = due.len();
        for t in due {
            self.expire(t);
        }
        n
    }

    /// Creates a task numbered `seq`, or answers the task its idempotency key already
    /// names (then `seq` is not used: the second value is false).
    fn create(&mut self, spec: &NewTask, seq: i64, caller: &Caller) -> (Answer, bool) {
        if let Some(key) = &spec.idempotency_key {
            let k = (spec.queue.clone(), key.clone());
            let existing = self.keys.get(&k).or_else(|| self.mem.keys.get(&k)).cloned();
            if let Some(id) = existing {
                let answer = match self.current(&id) {
                    Some(t) => Answer::Task(t),
                    None => Answer::Stored(id),
                };
                return (answer, false);
            }
        }
        let delay = micros(spec.delay_seconds);
        let task = Task {
            id: uuid::Uuid::new_v4().to_string(),
            seq,
            queue: spec.queue.clone(),
            payload: Arc::new(spec.payload.clone()),
            priority: spec.priority,
            status: Status::Queued,
            attempts: 0,
            max_attempts: spec.max_attempts,
            lease_seconds: spec.lease_seconds,
            not_before: (delay > 0).then_some(self.now + delay),
            requires: spec.requires.clone(),
            group: spec.group.clone(),
            idempotency_key: spec.idempotency_key.clone(),
            lease: None,
            result: None,
            error: None,
            created_at: self.now,
            updated_at: self.now,
        };
        if let Some(key) = &task.idempotency_key {
            self.keys
                .insert((task.queue.clone(), key.clone()), task.id.clone());
        }
        let task = self.put(None, task);
        self.event("task.created", &task, None);
        self.records.audit(
            Audit::new("task.create", task.id.as_str())
                .with("queue", task.queue.as_str())
                .by(caller),
        );
        self.announce();
        (Answer::Task(task), true)
    }

    fn candidate(&self, key: &ClaimKey, caps: &[String]) -> bool {
        self.current(&key.id)
            .is_some_and(|t| t.claimable(self.now) && covers(caps, &t.requires))
    }

    fn claim(&mut self, op: &ClaimOp, fencing: &Fencing, caller: &Caller) -> Option<Arc<Task>> {
        let caps = &op.capabilities;
        let from_memory = self
            .mem
            .ready
            .get(&op.queue)
            .and_then(|set| set.iter().find(|k| self.candidate(k, caps)));
        let from_batch = self
            .fresh
            .get(&op.queue)
            .and_then(|set| set.iter().find(|k| self.candidate(k, caps)));
        let key = match (from_memory, from_batch) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        let t = self.current(&key.id)?;
        let length = op.lease_seconds.unwrap_or(t.lease_seconds);
        let token = fencing.draw();
        self.max_token = self.max_token.max(token);
        let mut next = (*t).clone();
        next.status = Status::Leased;
        next.attempts += 1;
        next.not_before = None;
        next.lease = Some(Lease {
            holder: op.holder.clone(),
            token,
            expires_at: self.now + micros(length),
            length,
        });
        next.updated_at = self.now;
        let next = self.put(Some(t), next);
        self.event("task.leased", &next, Some(&op.holder));
        self.records.audit(
            Audit::new("task.claim", next.id.as_str())
                .with("queue", next.queue.as_str())
                .with("holder", op.holder.as_str())
                .with("token", token)
                .by(caller),
        );
        self.announce();
        Some(next)
    }

    fn lease_op(&mut self, id: &str, token: i64, act: &LeaseAct, caller: &Caller) -> Outcome {
        let Some(t) = self.current(id) else {
            return Ok(Answer::Absent(id.to_string()));
        };
        let lease = match &t.lease {
            Some(l)
                if t.status == Status::Leased && l.token == token && l.expires_at > self.now =>
            {
                l.clone()
            }
            _ => {
                return Err(TaskError::NotHeld {
                    id: id.to_string(),
                    token,
                });
            }
        };
        let holder = lease.holder.clone();
        let mut next = (*t).clone();
        next.updated_at = self.now;
        let mut audit = Audit::new(act.audit_action(), id).with("token", token);
        let topic = match act {
            LeaseAct::Renew(length) => {
                let length = length.unwrap_or(lease.length);
                next.lease = Some(Lease {
                    expires_at: self.now + micros(length),
                    length,
                    ..lease
                });
                None
            }
            LeaseAct::Complete(result) => {
                next.status = Status::Done;
                next.lease = None;
                next.result = (!result.is_null()).then(|| Arc::new(result.clone()));
                Some("task.completed")
            }
            LeaseAct::Fail(error, retry_after) => {
                next.lease = None;
                next.error = Some(error.clone());
                if next.attempts < next.max_attempts {
                    let wait = retry_after.unwrap_or_else(|| backoff_seconds(next.attempts));
                    next.status = Status::Failed;
                    next.not_before = Some(self.now + micros(wait));
                    audit = audit.with("status", "failed");
                    Some("task.failed")
                } else {
                    next.status = Status::Dead;
                    audit = audit.with("status", "dead");
                    Some("task.dead")
                }
            }
            LeaseAct::Release => {
                next.status = Status::Queued;
                next.lease = None;
                next.attempts = next.attempts.saturating_sub(1);
                Some("task.released")
            }
        };
        let next = self.put(Some(t), next);
        if let Some(topic) = topic {
            self.event(topic, &next, Some(&holder));
        }
        self.records.audit(audit.by(caller));
        self.announce();
        Ok(Answer::Task(next))
    }

    fn cancel(&mut self, id: &str, caller: &Caller) -> Outcome {
        let Some(t) = self.current(id) else {
            return Ok(Answer::Absent(id.to_string()));
        };
        if t.status.is_terminal() {
            return Err(TaskError::State {
                id: id.to_string(),
                status: t.status.as_str(),
                action: "cancelled",
            });
        }
        let holder = t.holder().map(str::to_string);
        let mut next = (*t).clone();
        next.status = Status::Cancelled;
        next.lease = None;
        next.updated_at = self.now;
        let next = self.put(Some(t), next);
        self.event("task.cancelled", &next, holder.as_deref());
        self.records.audit(Audit::new("task.cancel", id).by(caller));
        self.announce();
        Ok(Answer::Task(next))
    }

    fn retry(&mut self, id: &str, stored: Option<&Arc<Task>>, caller: &Caller) -> Outcome {
        let Some(t) = self.current(id).or_else(|| stored.cloned()) else {
            // Finished since the handler looked: it reads the task and asks again.
            return Ok(Answer::Absent(id.to_string()));
        };
        if !matches!(t.status, Status::Dead | Status::Cancelled) {
            return Err(TaskError::State {
                id: id.to_string(),
                status: t.status.as_str(),
                action: "retried",
            });
        }
        let mut next = (*t).clone();
        next.status = Status::Queued;
        next.attempts = 0;
        next.not_before = None;
        next.lease = None;
        next.updated_at = self.now;
        let next = self.put(Some(t), next);
        self.event("task.created", &next, None);
        self.records.audit(Audit::new("task.retry", id).by(caller));
        self.announce();
        Ok(Answer::Task(next))
    }

    fn holders_lost(&mut self, ids: &[String]) {
        let lost: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut due: Vec<Arc<Task>> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let in_memory = self
            .mem
            .expiring
            .iter()
            .filter_map(|(_, id)| self.current(id));
        let in_batch = self.touched.values().map(|t| t.now.clone());
        for t in in_memory.chain(in_batch) {
            if t.status == Status::Leased
                && t.holder().is_some_and(|h| lost.contains(h))
                && seen.insert(t.id.clone())
            {
                due.push(t);
            }
        }
        due.sort_by_key(|t| t.seq);
        for t in due {
            self.expire(t);
        }
    }
}

/// A claim waiting for a task of its queue.
struct ClaimWaiter {
    capabilities: Vec<String>,
    wake: oneshot::Sender<()>,
}

/// A batch prepared for its transaction.
pub struct Work {
    created: Vec<Arc<Task>>,
    changed: Vec<Arc<Task>>,
    max_token: i64,
    records: Records,
    applied: Applied,
}

/// What `finish` applies to memory after the commit.
pub struct Applied {
    results: Vec<Outcome>,
    /// (result index, queue, capabilities) of the claims that wait.
    waits: Vec<(usize, String, Vec<String>)>,
    /// Final state of every touched task, with its state before the batch.
    touched: Vec<(Option<Arc<Task>>, Arc<Task>)>,
    finished: Vec<String>,
}

/// The tasks domain actor.
pub struct TaskQueue {
    mem: Memory,
    repo: TaskRepository,
    path: WritePath<(Op, Caller), Outcome>,
    fencing: Fencing,
    registry: Option<Addr<InstanceRegistry>>,
    last_seq: i64,
    waiters: HashMap<String, VecDeque<ClaimWaiter>>,
    group_waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
    /// The armed timer: when it fires, and its handle.
    timer: Option<(i64, SpawnHandle)>,
    /// An `Op::Expire` is queued and not yet prepared.
    expiry_pending: bool,
    /// The `now` of the last prepared batch: it expires every lease passed by then.
    prepared_at: i64,
}

impl TaskQueue {
    /// Loads the tasks that are not finished and the counts, and returns the actor, not
    /// yet started. It registers with `registry` (when given) to hear of lost holders.
    pub async fn load(
        db: DatabaseConnection,
        outbox: Outbox,
        batch_max: usize,
        fencing: Fencing,
        registry: Option<Addr<InstanceRegistry>>,
    ) -> Result<Self, DbErr> {
        let repo = TaskRepository::new(db.clone());
        let loaded = repo.load().await?;
        let now = now_micros();
        let mut mem = Memory {
            keys: loaded.keys.into_iter().collect(),
            queue_counts: loaded.queue_counts,
            group_counts: loaded.group_counts,
            ..Default::default()
        };
        for t in loaded.live {
            let t = Arc::new(t);
            mem.index(&t, now);
            mem.live.insert(t.id.clone(), t);
        }
        Ok(Self {
            mem,
            repo,
            path: WritePath::new(db, outbox, batch_max),
            fencing,
            registry,
            last_seq: loaded.last_seq,
            waiters: HashMap::new(),
            group_waiters: HashMap::new(),
            timer: None,
            expiry_pending: false,
            prepared_at: 0,
        })
    }

    fn enqueue(
        &mut self,
        op: Op,
        caller: Caller,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Outcome> {
        enqueue(self, (op, caller), ctx)
    }

    /// Wakes, in arrival order, the waiters of `queue` that a claimable task can satisfy,
    /// one waiter per task.
    fn wake(&mut self, queue: &str) {
        let Some(waiters) = self.waiters.get_mut(queue) else {
            return;
        };
        waiters.retain(|w| !w.wake.is_closed());
        if let Some(ready) = self.mem.ready.get(queue) {
            let now = now_micros();
            for key in ready {
                if waiters.is_empty() {
                    break;
                }
                let Some(t) = self.mem.live.get(&key.id).filter(|t| t.claimable(now)) else {
                    continue;
                };
                if let Some(i) = waiters
                    .iter()
                    .position(|w| covers(&w.capabilities, &t.requires))
                    && let Some(w) = waiters.remove(i)
                {
                    let _ = w.wake.send(());
                }
            }
        }
        if waiters.is_empty() {
            self.waiters.remove(queue);
        }
    }

    /// Arms the timer for the earliest `not_before` or lease expiry.
    fn rearm(&mut self, ctx: &mut Context<Self>) {
        let delayed = self.mem.delayed.first().map(|(at, _)| *at);
        let expiring = self.next_expiry().filter(|_| !self.expiry_pending);
        let next = match (delayed, expiring) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some((at, handle)) = self.timer {
            if Some(at) == next {
                return;
            }
            ctx.cancel_future(handle);
            self.timer = None;
        }
        let Some(at) = next else { return };
        let wait = (at - now_micros()).max(1_000) as u64;
        let handle = ctx.run_later(Duration::from_micros(wait), |act, ctx| {
            act.timer = None;
            act.on_timer(ctx);
        });
        self.timer = Some((at, handle));
    }

    /// The timer: claimable tasks wake their waiters; passed leases are expired.
    fn on_timer(&mut self, ctx: &mut Context<Self>) {
        let now = now_micros();
        for queue in self.mem.promote(now) {
            self.wake(&queue);
        }
        drop(self.expire_soon(now, ctx));
        self.rearm(ctx);
    }

    /// The earliest lease expiry that no prepared batch has covered yet.
    fn next_expiry(&self) -> Option<i64> {
        self.mem
            .expiring
            .range((self.prepared_at.saturating_add(1), String::new())..)
            .next()
            .map(|(at, _)| *at)
    }

    /// Queues an expiry unless one is queued, or no lease has passed since the last batch
    /// was prepared (that batch expires the others); the receiver of the queued expiry.
    fn expire_soon(
        &mut self,
        now: i64,
        ctx: &mut Context<Self>,
    ) -> Option<oneshot::Receiver<Outcome>> {
        if self.expiry_pending || self.next_expiry().is_none_or(|at| at > now) {
            return None;
        }
        self.expiry_pending = true;
        Some(self.enqueue(Op::Expire, Caller::anonymous(), ctx))
    }

    /// A group's counts as a reader sees them now.
    fn group_summary(&self, group: &str) -> Result<GroupSummary, TaskError> {
        let stored = self
            .mem
            .group_counts
            .get(group)
            .copied()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| TaskError::GroupNotFound(group.to_string()))?;
        let counts =
            self.mem
                .seen_counts(now_micros(), |t| t.group.as_deref() == Some(group), stored);
        Ok(GroupSummary {
            group: group.to_string(),
            counts,
        })
    }
}

impl GroupCommit for TaskQueue {
    type Op = (Op, Caller);
    type Out = Outcome;
    type Work = Work;
    type Done = Applied;

    fn write_path(&mut self) -> &mut WritePath<Self::Op, Outcome> {
        &mut self.path
    }

    fn prepare(&mut self, batch: Vec<(Op, Caller)>, now: i64) -> Work {
        // Index-only: moving a task whose `not_before` passed into its claim index
        // changes nothing stored.
        self.mem.promote(now);
        self.expiry_pending = false;
        self.prepared_at = now;
        let mut seq = self.last_seq;
        let fencing = self.fencing.clone();
        let mut o = Overlay::new(&self.mem, now);
        let expired = o.expire_passed();
        let mut results = Vec::with_capacity(batch.len());
        let mut waits = Vec::new();
        for (i, (op, caller)) in batch.iter().enumerate() {
            let outcome = match op {
                Op::Create(spec) => {
                    let (answer, used) = o.create(spec, seq + 1, caller);
                    if used {
                        seq += 1;
                    }
                    Ok(answer)
                }
                Op::Claim(claim) => {
                    let got = o.claim(claim, &fencing, caller);
                    if got.is_none() && claim.deadline.is_some_and(|d| d > Instant::now()) {
                        waits.push((i, claim.queue.clone(), claim.capabilities.clone()));
                    }
                    Ok(Answer::Claimed(got))
                }
                Op::Lease { id, token, act } => o.lease_op(id, *token, act, caller),
                Op::Cancel(id) => o.cancel(id, caller),
                Op::Retry(id, stored) => o.retry(id, stored.as_ref(), caller),
                Op::Expire => Ok(Answer::Expired(expired)),
                Op::HolderLost(ids) => {
                    o.holders_lost(ids);
                    Ok(Answer::Nothing)
                }
            };
            results.push(outcome);
        }
        self.last_seq = seq;
        let mut created = Vec::new();
        let mut changed = Vec::new();
        let mut touched = Vec::with_capacity(o.order.len());
        for id in &o.order {
            if let Some(t) = o.touched.remove(id) {
                if t.base.is_none() {
                    created.push(t.now.clone());
                } else {
                    changed.push(t.now.clone());
                }
                touched.push((t.base, t.now));
            }
        }
        Work {
            created,
            changed,
            max_token: o.max_token,
            records: o.records,
            applied: Applied {
                results,
                waits,
                touched,
                finished: o.finished,
            },
        }
    }

    async fn write(work: Work, txn: &DatabaseTransaction) -> Result<(Applied, Records), DbErr> {
        TaskRepository::persist(txn, &work.created, &work.changed).await?;
        if work.max_token > 0 {
            Fencing::persist_in(txn, work.max_token).await?;
        }
        Ok((work.applied, work.records))
    }

    /// Updates memory, registers the claims that wait, wakes the waiters that can now
    /// claim, and answers.
    fn finish(&mut self, applied: Applied, ctx: &mut Context<Self>) -> Vec<Outcome> {
        let now = now_micros();
        let mut queues: HashSet<String> = HashSet::new();
        for (base, next) in applied.touched {
            if let Some(old) = self.mem.live.remove(&next.id) {
                self.mem.unindex(&old);
            }
            match &base {
                Some(b) => self.mem.count(b, -1),
                None => {
                    if let Some(k) = &next.idempotency_key {
                        self.mem
                            .keys
                            .insert((next.queue.clone(), k.clone()), next.id.clone());
                    }
                }
            }
            self.mem.count(&next, 1);
            if !next.status.is_terminal() {
                self.mem.index(&next, now);
                self.mem.live.insert(next.id.clone(), next.clone());
            }
            queues.insert(next.queue.clone());
        }
        let mut results = applied.results;
        for (i, queue, capabilities) in applied.waits {
            let (wake, woken) = oneshot::channel();
            self.waiters
                .entry(queue.clone())
                .or_default()
                .push_back(ClaimWaiter { capabilities, wake });
            queues.insert(queue);
            if let Some(slot) = results.get_mut(i) {
                *slot = Ok(Answer::Waiting(woken));
            }
        }
        for queue in queues {
            self.wake(&queue);
        }
        for group in applied.finished {
            for w in self.group_waiters.remove(&group).unwrap_or_default() {
                let _ = w.send(());
            }
        }
        self.rearm(ctx);
        results
    }

    fn failed(error: &DbErr) -> Outcome {
        Err(TaskError::Storage(error.to_string()))
    }
}

impl Actor for TaskQueue {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
        if let Some(registry) = self.registry.take() {
            registry.do_send(WatchHolders(ctx.address().recipient()));
        }
        self.rearm(ctx);
    }
}

/// The answer of a write that names one task.
async fn task_answer(
    rx: oneshot::Receiver<Outcome>,
    repo: TaskRepository,
    on_absent: impl FnOnce(Task) -> TaskError,
) -> Result<Arc<Task>, TaskError> {
    match rx.await.map_err(|_| TaskError::Unavailable)?? {
        Answer::Task(t) => Ok(t),
        Answer::Stored(id) => repo
            .find(&id)
            .await?
            .map(Arc::new)
            .ok_or(TaskError::NotFound(id)),
        Answer::Absent(id) => match repo.find(&id).await? {
            Some(t) => Err(on_absent(t)),
            None => Err(TaskError::NotFound(id)),
        },
        other => Err(TaskError::Storage(format!("unexpected answer {other:?}"))),
    }
}

impl Handler<CreateTask> for TaskQueue {
    type Result = ResponseFuture<Result<Arc<Task>, TaskError>>;

    fn handle(&mut self, msg: CreateTask, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.enqueue(Op::Create(Box::new(msg.task)), msg.caller, ctx);
        Box::pin(task_answer(rx, self.repo.clone(), |t| {
            TaskError::NotFound(t.id)
        }))
    }
}

/// Claims again after a wake (the same claim, with what is left of its wait).
#[derive(Message)]
#[rtype(result = "Option<oneshot::Receiver<Outcome>>")]
struct Reclaim(ClaimOp, Caller);

impl Handler<Reclaim> for TaskQueue {
    type Result = Option<oneshot::Receiver<Outcome>>;

    fn handle(&mut self, msg: Reclaim, ctx: &mut Self::Context) -> Self::Result {
        Some(self.enqueue(Op::Claim(msg.0), msg.1, ctx))
    }
}

impl Handler<ClaimTask> for TaskQueue {
    type Result = ResponseFuture<Result<Option<Arc<Task>>, TaskError>>;

    fn handle(&mut self, msg: ClaimTask, ctx: &mut Self::Context) -> Self::Result {
        let deadline = (!msg.wait.is_zero()).then(|| Instant::now() + msg.wait);
        let op = ClaimOp {
            queue: msg.queue,
            holder: msg.holder,
            capabilities: msg.capabilities,
            lease_seconds: msg.lease_seconds,
            deadline,
        };
        let caller = msg.caller;
        let addr = ctx.address();
        let mut rx = self.enqueue(Op::Claim(op.clone()), caller.clone(), ctx);
        Box::pin(async move {
            loop {
                match rx.await.map_err(|_| TaskError::Unavailable)?? {
                    Answer::Claimed(t) => return Ok(t),
                    Answer::Waiting(woken) => {
                        let left = deadline
                            .map(|d| d.saturating_duration_since(Instant::now()))
                            .unwrap_or_default();
                        match tokio::time::timeout(left, woken).await {
                            Ok(Ok(())) => {
                                rx = addr
                                    .send(Reclaim(op.clone(), caller.clone()))
                                    .await?
                                    .ok_or(TaskError::Unavailable)?;
                            }
                            _ => return Ok(None),
                        }
                    }
                    other => {
                        return Err(TaskError::Storage(format!("unexpected answer {other:?}")));
                    }
                }
            }
        })
    }
}

macro_rules! lease_handler {
    ($msg:ty, |$m:ident| $act:expr) => {
        impl Handler<$msg> for TaskQueue {
            type Result = ResponseFuture<Result<Arc<Task>, TaskError>>;

            fn handle(&mut self, $m: $msg, ctx: &mut Self::Context) -> Self::Result {
                let token = $m.token;
                let op = Op::Lease {
                    id: $m.id.clone(),
                    token,
                    act: $act,
                };
                let rx = self.enqueue(op, $m.caller.clone(), ctx);
                // A finished task: its lease is not held.
                let not_held = move |t: Task| TaskError::NotHeld { id: t.id, token };
                Box::pin(task_answer(rx, self.repo.clone(), not_held))
            }
        }
    };
}

lease_handler!(RenewLease, |m| LeaseAct::Renew(m.lease_seconds));
lease_handler!(CompleteTask, |m| LeaseAct::Complete(m.result));
lease_handler!(FailTask, |m| LeaseAct::Fail(m.error, m.retry_after_seconds));
lease_handler!(ReleaseTask, |m| LeaseAct::Release);

impl Handler<CancelTask> for TaskQueue {
    type Result = ResponseFuture<Result<Arc<Task>, TaskError>>;

    fn handle(&mut self, msg: CancelTask, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.enqueue(Op::Cancel(msg.id), msg.caller, ctx);
        Box::pin(task_answer(rx, self.repo.clone(), |t| TaskError::State {
            id: t.id,
            status: t.status.as_str(),
            action: "cancelled",
        }))
    }
}

impl TaskQueue {
    /// Retries a task that is not in memory: reads it, then queues the retry with it.
    fn retry_stored(&mut self, id: String, caller: Caller) -> RetryFuture {
        let repo = self.repo.clone();
        let lookup = {
            let (repo, id) = (repo.clone(), id.clone());
            async move { repo.find(&id).await }
        };
        Box::pin(lookup.into_actor(self).then(move |found, act, ctx| {
            let next: RetryFuture = match found {
                Err(e) => Box::pin(actix::fut::ready(Err(TaskError::from(e)))),
                Ok(None) => Box::pin(actix::fut::ready(Err(TaskError::NotFound(id)))),
                Ok(Some(stored)) => {
                    let rx = act.enqueue(Op::Retry(id, Some(Arc::new(stored))), caller, ctx);
                    Box::pin(task_answer(rx, repo, |t| TaskError::NotFound(t.id)).into_actor(act))
                }
            };
            next
        }))
    }
}

type RetryFuture = ResponseActFuture<TaskQueue, Result<Arc<Task>, TaskError>>;

impl Handler<RetryTask> for TaskQueue {
    type Result = RetryFuture;

    fn handle(&mut self, msg: RetryTask, ctx: &mut Self::Context) -> Self::Result {
        if !self.mem.live.contains_key(&msg.id) {
            return self.retry_stored(msg.id, msg.caller);
        }
        // In memory: not finished, so a conflict, unless a batch finishes it before this
        // retry is prepared (then it is read from storage and retried).
        let rx = self.enqueue(Op::Retry(msg.id, None), msg.caller.clone(), ctx);
        let caller = msg.caller;
        Box::pin(
            async move { rx.await.map_err(|_| TaskError::Unavailable)? }
                .into_actor(self)
                .then(move |outcome, act, _| {
                    let next: RetryFuture = match outcome {
                        Ok(Answer::Absent(id)) => act.retry_stored(id, caller),
                        Ok(Answer::Task(t)) => Box::pin(actix::fut::ready(Ok(t))),
                        Ok(other) => Box::pin(actix::fut::ready(Err(TaskError::Storage(format!(
                            "unexpected answer {other:?}"
                        ))))),
                        Err(e) => Box::pin(actix::fut::ready(Err(e))),
                    };
                    next
                }),
        )
    }
}

impl Handler<GetTask> for TaskQueue {
    type Result = ResponseFuture<Result<Arc<Task>, TaskError>>;

    fn handle(&mut self, msg: GetTask, _: &mut Self::Context) -> Self::Result {
        if let Some(t) = self.mem.live.get(&msg.id) {
            let seen = t.view(now_micros());
            return Box::pin(async move { Ok(seen) });
        }
        let repo = self.repo.clone();
        Box::pin(async move {
            match repo.find(&msg.id).await? {
                Some(t) => Ok(Arc::new(t).view(now_micros())),
                None => Err(TaskError::NotFound(msg.id)),
            }
        })
    }
}

impl Handler<ListTasks> for TaskQueue {
    type Result = ResponseFuture<Result<Vec<Arc<Task>>, TaskError>>;

    fn handle(&mut self, msg: ListTasks, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        Box::pin(async move {
            let now = now_micros();
            let rows = repo.list(&msg.filter, msg.limit, now).await?;
            Ok(rows.into_iter().map(|t| Arc::new(t).view(now)).collect())
        })
    }
}

impl Handler<GetStats> for TaskQueue {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, msg: GetStats, _: &mut Self::Context) -> Self::Result {
        let now = now_micros();
        let of = |t: &Task| msg.queue.as_deref().is_none_or(|q| q == t.queue);
        let mut stored = Counts::default();
        match &msg.queue {
            Some(q) => stored = self.mem.queue_counts.get(q).copied().unwrap_or_default(),
            None => {
                for c in self.mem.queue_counts.values() {
                    stored.merge(c);
                }
            }
        }
        let counts = self.mem.seen_counts(now, of, stored);
        let oldest = self
            .mem
            .live
            .values()
            .filter(|t| of(t))
            .map(|t| t.view(now))
            .filter(|t| t.status == Status::Queued && t.claimable(now))
            .map(|t| now - t.created_at.max(t.not_before.unwrap_or(t.created_at)))
            .max();
        MessageResult(QueueStats {
            counts,
            oldest_queued_age_seconds: oldest.map(|us| us.max(0) as f64 / 1_000_000.0),
        })
    }
}

impl Handler<GetGroup> for TaskQueue {
    type Result = Result<GroupSummary, TaskError>;

    fn handle(&mut self, msg: GetGroup, _: &mut Self::Context) -> Self::Result {
        self.group_summary(&msg.group)
    }
}

impl Handler<WaitGroup> for TaskQueue {
    type Result = ResponseFuture<Result<GroupSummary, TaskError>>;

    fn handle(&mut self, msg: WaitGroup, ctx: &mut Self::Context) -> Self::Result {
        let summary = self.group_summary(&msg.group);
        let wait = match &summary {
            Ok(s) if !s.counts.finished() && !msg.timeout.is_zero() => {
                let (wake, woken) = oneshot::channel();
                let waiters = self.group_waiters.entry(msg.group.clone()).or_default();
                waiters.retain(|w| !w.is_closed());
                waiters.push(wake);
                Some(woken)
            }
            _ => None,
        };
        let addr = ctx.address();
        Box::pin(async move {
            let Some(woken) = wait else { return summary };
            let _ = tokio::time::timeout(msg.timeout, woken).await;
            addr.send(GetGroup { group: msg.group }).await?
        })
    }
}

impl Handler<ExpireLeases> for TaskQueue {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: ExpireLeases, ctx: &mut Self::Context) -> Self::Result {
        for waiters in self.waiters.values_mut() {
            waiters.retain(|w| !w.wake.is_closed());
        }
        self.waiters.retain(|_, w| !w.is_empty());
        for waiters in self.group_waiters.values_mut() {
            waiters.retain(|w| !w.is_closed());
        }
        self.group_waiters.retain(|_, w| !w.is_empty());
        let Some(rx) = self.expire_soon(now_micros(), ctx) else {
            return Box::pin(async { 0 });
        };
        Box::pin(async move {
            match rx.await {
                Ok(Ok(Answer::Expired(n))) => n,
                _ => 0,
            }
        })
    }
}

impl Handler<HolderLost> for TaskQueue {
    type Result = ();

    fn handle(&mut self, msg: HolderLost, ctx: &mut Self::Context) {
        if !msg.ids.is_empty() {
            drop(self.enqueue(Op::HolderLost(msg.ids), Caller::anonymous(), ctx));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(queue: &str, priority: i64) -> NewTask {
        NewTask {
            queue: queue.into(),
            payload: json!({"p": priority}),
            priority,
            max_attempts: 2,
            lease_seconds: 10.0,
            delay_seconds: 0.0,
            requires: vec![],
            group: Some("g".into()),
            idempotency_key: None,
        }
    }

    fn created((answer, used): (Answer, bool)) -> Arc<Task> {
        match answer {
            Answer::Task(t) if used => t,
            other => panic!("not created: {other:?}"),
        }
    }

    fn claim(queue: &str, holder: &str) -> ClaimOp {
        ClaimOp {
            queue: queue.into(),
            holder: holder.into(),
            capabilities: vec![],
            lease_seconds: None,
            deadline: None,
        }
    }

    #[test]
    fn claims_in_one_batch_never_take_the_same_task() {
        let mem = Memory::default();
        let fencing = Fencing::default();
        let caller = Caller::anonymous();
        let mut o = Overlay::new(&mem, 1_000);
        let low = created(o.create(&spec("q", 0), 1, &caller));
        let high = created(o.create(&spec("q", 5), 2, &caller));
        let a = o.claim(&claim("q", "a"), &fencing, &caller).unwrap();
        let b = o.claim(&claim("q", "b"), &fencing, &caller).unwrap();
        assert!(o.claim(&claim("q", "c"), &fencing, &caller).is_none());
        assert_eq!(
            (a.id.as_str(), b.id.as_str()),
            (high.id.as_str(), low.id.as_str())
        );
        let (ta, tb) = (
            a.lease.clone().unwrap().token,
            b.lease.clone().unwrap().token,
        );
        assert!(ta < tb && o.max_token == tb);
        assert_eq!(a.attempts, 1);
    }

    #[test]
    fn the_last_finishing_task_announces_its_group_once() {
        let mem = Memory::default();
        let fencing = Fencing::default();
        let caller = Caller::anonymous();
        let mut o = Overlay::new(&mem, 1_000);
        let t1 = created(o.create(&spec("q", 0), 1, &caller));
        o.create(&spec("q", 0), 2, &caller);
        let c1 = o.claim(&claim("q", "a"), &fencing, &caller).unwrap();
        let c2 = o.claim(&claim("q", "a"), &fencing, &caller).unwrap();
        assert_eq!(c1.id, t1.id);
        let tok = |t: &Task| t.lease.as_ref().unwrap().token;
        o.lease_op(&c1.id, tok(&c1), &LeaseAct::Complete(json!(1)), &caller)
            .unwrap();
        assert!(o.finished.is_empty());
        // A wrong token is refused and changes nothing.
        assert!(matches!(
            o.lease_op(&c2.id, tok(&c2) + 100, &LeaseAct::Release, &caller),
            Err(TaskError::NotHeld { .. })
        ));
        o.cancel(&c2.id, &caller).unwrap();
        assert_eq!(o.finished, ["g"]);
        let topics: Vec<&str> = o.records.events.iter().map(|e| e.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "task.created",
                "task.created",
                "task.leased",
                "task.leased",
                "task.completed",
                "task.cancelled",
                "task.group.finished"
            ]
        );
    }

    #[test]
    fn release_gives_the_attempt_back_and_fail_backs_off_then_dies() {
        let mem = Memory::default();
        let fencing = Fencing::default();
        let caller = Caller::anonymous();
        let mut o = Overlay::new(&mem, 1_000_000);
        let t = created(o.create(&spec("q", 0), 1, &caller));
        let c = o.claim(&claim("q", "a"), &fencing, &caller).unwrap();
        let tok = c.lease.as_ref().unwrap().token;
        let Ok(Answer::Task(r)) = o.lease_op(&t.id, tok, &LeaseAct::Release, &caller) else {
            panic!("release")
        };
        assert_eq!((r.status, r.attempts), (Status::Queued, 0));
        let c = o.claim(&claim("q", "a"), &fencing, &caller).unwrap();
        let tok = c.lease.as_ref().unwrap().token;
        let Ok(Answer::Task(f)) =
            o.lease_op(&t.id, tok, &LeaseAct::Fail("e".into(), None), &caller)
        else {
            panic!("fail")
        };
        assert_eq!(f.status, Status::Failed);
        assert_eq!(f.not_before, Some(1_000_000 + 2_000_000));
        assert!(
            o.claim(&claim("q", "a"), &fencing, &caller).is_none(),
            "backing off"
        );
    }
}
