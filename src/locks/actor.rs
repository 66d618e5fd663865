//! `LockTable`: the single owner and single writer of the `locks` table.
//!
//! Writes (acquire, renew, release, a holder's loss, the expiry sweep) are group-committed
//! ([`GroupCommit`]). Agents take and drop locks around every edit, so acquisitions are
//! frequent and come in bursts from many agents at once; batching them costs one
//! transaction (and one fsync) per batch instead of one per lock, and is still exact:
//! `prepare` applies a batch in order on top of memory, so a later acquisition in the batch
//! sees the locks granted (and released) before it, and the next batch is prepared only
//! after the previous one is committed and in memory. Of any number of conflicting
//! acquisitions exactly one is granted, whatever batches they land in. Every batch first
//! ends the locks whose `expires_at` has passed (`lock.expired`), so a conflict is never
//! reported against an expired lock. Fencing tokens are drawn from the shared
//! [`Fencing`] counter in `prepare` and raised durably in the batch's transaction, before
//! any caller sees them.
//!
//! Reads (`ListLocks`, `CheckPaths`) are answered from memory inside the actor and skip
//! locks whose `expires_at` has passed even before the sweep has ended them, and locks of
//! holders whose loss (`HolderLost`) is queued but not yet committed: a deregistration
//! answered to its caller has already taken its holder's locks out of every answer. Both
//! look only at the locks the [`PrefixIndex`] names as candidates.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use tokio::sync::watch;

use super::index::PrefixIndex;
use super::messages::*;
use super::model::{Cause, Lock, LockError, NewLock};
use super::repository;
use crate::audit::Audit;
use crate::batch::{GroupCommit, Outbox, WritePath, enqueue};
use crate::events::Publish;
use crate::http::Caller;
use crate::journal::Records;
use crate::leases::{ExpireLeases, Fencing, HolderLost};
use crate::time::now_micros;

/// The `source` of lock events.
const SOURCE: &str = "locks";

/// How many ended lock ids are remembered, so that renewing or releasing one is a `409`
/// (not held) rather than a `404` (unknown).
const ENDED_KEPT: usize = 65_536;

/// A queued write.
#[derive(Debug)]
pub enum Op {
    Acquire(Box<NewLock>),
    Renew {
        id: String,
        token: i64,
        ttl_micros: Option<i64>,
    },
    Release {
        id: String,
        token: Option<i64>,
    },
    HolderLost(Vec<String>),
    /// Answered with how many locks the batch expired.
    Sweep,
}

/// What a write did.
#[derive(Debug, Clone)]
pub enum Done {
    Lock(Arc<Lock>),
    Count(usize),
}

type Outcome = Result<Done, LockError>;

/// The held locks, indexed by id, by literal prefix and by expiry.
#[derive(Default)]
struct Held {
    locks: HashMap<String, Arc<Lock>>,
    index: PrefixIndex,
    by_expiry: BTreeSet<(i64, String)>,
}

impl Held {
    fn upsert(&mut self, lock: Arc<Lock>) {
        match self.locks.insert(lock.id.clone(), lock.clone()) {
            Some(old) => {
                self.by_expiry.remove(&(old.expires_at, old.id.clone()));
            }
            None => self.index.insert(&lock.id, &lock.resource),
        }
        self.by_expiry.insert((lock.expires_at, lock.id.clone()));
    }

    fn remove(&mut self, id: &str) -> Option<Arc<Lock>> {
        let lock = self.locks.remove(id)?;
        self.index.remove(id, &lock.resource);
        self.by_expiry.remove(&(lock.expires_at, lock.id.clone()));
        Some(lock)
    }

    /// The locks whose `expires_at` is at or before `now`.
    fn due(&self, now: i64) -> Vec<Arc<Lock>> {
        self.by_expiry
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, id)| self.locks.get(id).cloned())
            .collect()
    }

    fn next_expiry(&self) -> Option<i64> {
        self.by_expiry.first().map(|(at, _)| *at)
    }
}

/// The most recently ended lock ids, oldest forgotten first.
#[derive(Default)]
struct Ended {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Ended {
    fn push(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > ENDED_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

/// A batch applied on top of memory, without changing it.
struct View<'a> {
    held: &'a Held,
    ended: &'a Ended,
    changed: HashMap<String, Option<Arc<Lock>>>,
    /// Touched ids in first-touch order.
    order: Vec<String>,
    /// Ids acquired in this batch (not in `held`).
    added: Vec<String>,
}

impl<'a> View<'a> {
    fn new(held: &'a Held, ended: &'a Ended) -> View<'a> {
        View {
            held,
            ended,
            changed: HashMap::new(),
            order: Vec::new(),
            added: Vec::new(),
        }
    }

    fn get(&self, id: &str) -> Option<Arc<Lock>> {
        match self.changed.get(id) {
            Some(v) => v.clone(),
            None => self.held.locks.get(id).cloned(),
        }
    }

    fn set(&mut self, id: &str, lock: Option<Arc<Lock>>) {
        if self.changed.insert(id.to_string(), lock).is_none() {
            self.order.push(id.to_string());
        }
    }

    fn add(&mut self, lock: Arc<Lock>) {
        self.added.push(lock.id.clone());
        self.set(&lock.id.clone(), Some(lock));
    }

    /// The held lock `id`: unknown is `404`, ended (here or recently) is `409`.
    fn held_lock(&self, id: &str) -> Result<Arc<Lock>, LockError> {
        match self.get(id) {
            Some(lock) => Ok(lock),
            None if self.changed.contains_key(id) || self.ended.contains(id) => {
                Err(LockError::NotHeld(id.to_string()))
            }
            None => Err(LockError::NotFound(id.to_string())),
        }
    }

    /// The held locks that exclude `want`, in token order.
    fn conflicts(&self, want: &NewLock) -> Vec<Arc<Lock>> {
        let mut out = Vec::new();
        let mut consider = |id: &str| {
            if let Some(lock) = self.get(id)
                && lock.conflicts_with(&want.holder, want.mode, &want.resource)
            {
                out.push(lock);
            }
        };
        self.held.index.overlapping(&want.resource, &mut consider);
        self.added.iter().for_each(|id| consider(id));
        out.sort_by_key(|l| l.token);
        out
    }

    /// The held locks of any of `holders`.
    fn held_by(&self, holders: &HashSet<&str>) -> Vec<Arc<Lock>> {
        let mut out: Vec<Arc<Lock>> = self
            .held
            .locks
            .keys()
            .chain(&self.added)
            .filter_map(|id| self.get(id))
            .filter(|l| holders.contains(l.holder.as_str()))
            .collect();
        out.sort_by_key(|l| l.token);
        out.dedup_by(|a, b| a.id == b.id);
        out
    }

    fn into_changes(mut self) -> Vec<(String, Option<Arc<Lock>>)> {
        self.order
            .into_iter()
            .map(|id| {
                let lock = self.changed.remove(&id).flatten();
                (id, lock)
            })
            .collect()
    }
}

/// What a batch does, worked out in memory before its transaction.
pub struct Work {
    applied: Applied,
    records: Records,
    /// The highest fencing token the batch grants, raised durably in its transaction.
    highest_token: Option<i64>,
}

/// What the transaction hands back.
pub struct Applied {
    results: Vec<Outcome>,
    /// Final state of every touched lock (`None` = ended), in first-touch order.
    changed: Vec<(String, Option<Arc<Lock>>)>,
}

fn event(topic: &str, lock: &Lock, cause: Option<Cause>) -> Publish {
    Publish::system(topic, SOURCE, lock.event_data(cause))
}

fn seconds(micros: i64) -> f64 {
    micros as f64 / 1e6
}

/// Applies `batch` in order on top of `held` at `now`: first every lock whose time is up
/// ends, then each write sees the ones before it. `draw` hands out fencing tokens and
/// `new_id` lock ids. Memory is not touched.
fn apply(
    held: &Held,
    ended: &Ended,
    batch: Vec<(Op, Caller)>,
    now: i64,
    draw: &mut impl FnMut() -> i64,
    new_id: &mut impl FnMut() -> String,
) -> Work {
    let mut view = View::new(held, ended);
    let mut records = Records::new();
    let mut highest_token = None;
    let due = held.due(now);
    let expired = due.len();
    for lock in due {
        view.set(&lock.id, None);
        records.event(event("lock.expired", &lock, Some(Cause::Expired)));
    }
    let mut results = Vec::with_capacity(batch.len());
    for (op, caller) in batch {
        let result = match op {
            Op::Acquire(want) => {
                let conflicts = view.conflicts(&want);
                if conflicts.is_empty() {
                    let token = draw();
                    highest_token = Some(token);
                    let NewLock {
                        resource,
                        mode,
                        holder,
                        ttl_micros,
                        reason,
                    } = *want;
                    let lock = Arc::new(Lock {
                        id: new_id(),
                        resource,
                        mode,
                        holder,
                        token,
                        reason,
                        ttl_micros,
                        acquired_at: now,
                        expires_at: now.saturating_add(ttl_micros),
                    });
                    view.add(lock.clone());
                    records.event(event("lock.acquired", &lock, None));
                    records.audit(
                        Audit::new("lock.acquire", lock.resource.as_str())
                            .with("id", lock.id.as_str())
                            .with("mode", lock.mode.as_str())
                            .with("holder", lock.holder.as_str())
                            .with("token", lock.token)
                            .with("ttl_seconds", seconds(lock.ttl_micros))
                            .by(&caller),
                    );
                    Ok(Done::Lock(lock))
                } else {
                    Err(LockError::Conflict(conflicts))
                }
            }
            Op::Renew {
                id,
                token,
                ttl_micros,
            } => match view.held_lock(&id) {
                Ok(lock) if lock.token == token => {
                    let mut next = (*lock).clone();
                    next.ttl_micros = ttl_micros.unwrap_or(lock.ttl_micros);
                    next.expires_at = now.saturating_add(next.ttl_micros);
                    let next = Arc::new(next);
                    view.set(&id, Some(next.clone()));
                    records.audit(
                        Audit::new("lock.renew", next.resource.as_str())
                            .with("id", next.id.as_str())
                            .with("token", next.token)
                            .with("ttl_seconds", seconds(next.ttl_micros))
                            .by(&caller),
                    );
                    Ok(Done::Lock(next))
                }
                Ok(_) => Err(LockError::NotHeld(id)),
                Err(e) => Err(e),
            },
            Op::Release { id, token } => match view.held_lock(&id) {
                Ok(lock) if token.is_none_or(|t| t == lock.token) => {
                    let (cause, action) = match token {
                        Some(_) => (Cause::Released, "lock.release"),
                        None => (Cause::Forced, "lock.force_release"),
                    };
                    view.set(&id, None);
                    records.event(event("lock.released", &lock, Some(cause)));
                    records.audit(
                        Audit::new(action, lock.resource.as_str())
                            .with("id", lock.id.as_str())
                            .with("holder", lock.holder.as_str())
                            .with("token", lock.token)
                            .by(&caller),
                    );
                    Ok(Done::Lock(lock))
                }
                Ok(_) => Err(LockError::NotHeld(id)),
                Err(e) => Err(e),
            },
            Op::HolderLost(ids) => {
                let holders: HashSet<&str> = ids.iter().map(String::as_str).collect();
                let lost = view.held_by(&holders);
                for lock in &lost {
                    view.set(&lock.id, None);
                    records.event(event("lock.released", lock, Some(Cause::HolderLost)));
                }
                Ok(Done::Count(lost.len()))
            }
            Op::Sweep => Ok(Done::Count(expired)),
        };
        results.push(result);
    }
    Work {
        applied: Applied {
            results,
            changed: view.into_changes(),
        },
        records,
        highest_token,
    }
}

/// The locks domain actor.
pub struct LockTable {
    held: Held,
    ended: Ended,
    fencing: Fencing,
    /// Bumped after every commit that ended a lock; waiting acquisitions watch it.
    freed: watch::Sender<u64>,
    /// Holders whose loss is queued or being committed (with how many `HolderLost` name
    /// them): their locks are already not shown as held.
    losing: HashMap<String, usize>,
    path: WritePath<(Op, Caller), Outcome>,
}

impl LockTable {
    /// Loads every stored lock and returns the actor, not yet started. Tokens come from
    /// `fencing`, the server's one counter; `batch_max` bounds how many writes share one
    /// transaction.
    pub async fn load(
        db: DatabaseConnection,
        outbox: Outbox,
        fencing: Fencing,
        batch_max: usize,
    ) -> Result<Self, DbErr> {
        let mut held = Held::default();
        for lock in repository::load_all(&db).await? {
            held.upsert(Arc::new(lock));
        }
        Ok(Self {
            held,
            ended: Ended::default(),
            fencing,
            freed: watch::Sender::new(0),
            losing: HashMap::new(),
            path: WritePath::new(db, outbox, batch_max),
        })
    }

    fn enqueue(&mut self, op: Op, caller: Caller, ctx: &mut Context<Self>) -> Reply {
        Reply(enqueue(self, (op, caller), ctx))
    }

    /// True when `lock` counts as held at `now` for a read.
    fn shows(&self, lock: &Lock, now: i64) -> bool {
        lock.held_at(now) && !self.losing.contains_key(&lock.holder)
    }
}

/// The answer of one queued write.
struct Reply(tokio::sync::oneshot::Receiver<Outcome>);

impl Reply {
    async fn lock(self) -> Result<Arc<Lock>, LockError> {
        match self.0.await.unwrap_or(Err(LockError::Unavailable))? {
            Done::Lock(lock) => Ok(lock),
            Done::Count(_) => Err(LockError::Storage("unexpected batch result".into())),
        }
    }

    async fn count(self) -> usize {
        match self.0.await {
            Ok(Ok(Done::Count(n))) => n,
            _ => 0,
        }
    }
}

impl GroupCommit for LockTable {
    type Op = (Op, Caller);
    type Out = Outcome;
    type Work = Work;
    type Done = Applied;

    fn write_path(&mut self) -> &mut WritePath<Self::Op, Outcome> {
        &mut self.path
    }

    fn prepare(&mut self, batch: Vec<(Op, Caller)>, now: i64) -> Work {
        let fencing = self.fencing.clone();
        apply(
            &self.held,
            &self.ended,
            batch,
            now,
            &mut || fencing.draw(),
            &mut || uuid::Uuid::new_v4().to_string(),
        )
    }

    async fn write(work: Work, txn: &DatabaseTransaction) -> Result<(Applied, Records), DbErr> {
        repository::persist(txn, &work.applied.changed).await?;
        if let Some(token) = work.highest_token {
            Fencing::persist_in(txn, token).await?;
        }
        Ok((work.applied, work.records))
    }

    /// Updates memory and wakes the waiting acquisitions when a lock ended.
    fn finish(&mut self, applied: Applied, _: &mut Context<Self>) -> Vec<Outcome> {
        let mut freed = false;
        for (id, lock) in applied.changed {
            match lock {
                Some(lock) => self.held.upsert(lock),
                None => {
                    self.held.remove(&id);
                    self.ended.push(id);
                    freed = true;
                }
            }
        }
        if freed {
            self.freed.send_modify(|n| *n = n.wrapping_add(1));
        }
        applied.results
    }

    fn failed(error: &DbErr) -> Outcome {
        Err(LockError::Storage(error.to_string()))
    }
}

impl Actor for LockTable {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
    }
}

impl Handler<AcquireLock> for LockTable {
    type Result = ResponseFuture<Result<Arc<Lock>, LockError>>;

    fn handle(&mut self, msg: AcquireLock, ctx: &mut Self::Context) -> Self::Result {
        let reply = self.enqueue(Op::Acquire(Box::new(msg.lock)), msg.caller, ctx);
        Box::pin(reply.lock())
    }
}

impl Handler<RenewLock> for LockTable {
    type Result = ResponseFuture<Result<Arc<Lock>, LockError>>;

    fn handle(&mut self, msg: RenewLock, ctx: &mut Self::Context) -> Self::Result {
        let op = Op::Renew {
            id: msg.id,
            token: msg.token,
            ttl_micros: msg.ttl_micros,
        };
        Box::pin(self.enqueue(op, msg.caller, ctx).lock())
    }
}

impl Handler<ReleaseLock> for LockTable {
    type Result = ResponseFuture<Result<Arc<Lock>, LockError>>;

    fn handle(&mut self, msg: ReleaseLock, ctx: &mut Self::Context) -> Self::Result {
        let op = Op::Release {
            id: msg.id,
            token: msg.token,
        };
        Box::pin(self.enqueue(op, msg.caller, ctx).lock())
    }
}

impl Handler<GetLock> for LockTable {
    type Result = Option<Arc<Lock>>;

    fn handle(&mut self, msg: GetLock, _: &mut Self::Context) -> Self::Result {
        let lock = self.held.locks.get(&msg.id)?;
        self.shows(lock, now_micros()).then(|| lock.clone())
    }
}

impl Handler<ListLocks> for LockTable {
    type Result = MessageResult<ListLocks>;

    fn handle(&mut self, msg: ListLocks, _: &mut Self::Context) -> Self::Result {
        let now = now_micros();
        let keep = |lock: &Arc<Lock>| {
            self.shows(lock, now) && msg.holder.as_deref().is_none_or(|h| lock.holder == h)
        };
        let mut out: Vec<Arc<Lock>> = match &msg.resource {
            None => self
                .held
                .locks
                .values()
                .filter(|l| keep(l))
                .cloned()
                .collect(),
            Some(resource) => {
                let mut out = Vec::new();
                self.held.index.overlapping(resource, |id| {
                    if let Some(lock) = self.held.locks.get(id)
                        && keep(lock)
                        && lock.resource.overlaps(resource)
                    {
                        out.push(lock.clone());
                    }
                });
                out
            }
        };
        // Tokens grow with every acquisition: the newest lock has the largest.
        out.sort_by_key(|l| std::cmp::Reverse(l.token));
        out.truncate(msg.limit);
        MessageResult(out)
    }
}

impl Handler<CheckPaths> for LockTable {
    type Result = MessageResult<CheckPaths>;

    fn handle(&mut self, msg: CheckPaths, _: &mut Self::Context) -> Self::Result {
        let now = now_micros();
        let mut out = Vec::new();
        for (i, path) in msg.paths.iter().enumerate() {
            let mut hits: Vec<Arc<Lock>> = Vec::new();
            self.held.index.for_path(path, |id| {
                if let Some(lock) = self.held.locks.get(id)
                    && self.shows(lock, now)
                    && msg.holder.as_deref().is_none_or(|h| lock.holder != h)
                    && lock.resource.matches(path)
                {
                    hits.push(lock.clone());
                }
            });
            hits.sort_by_key(|l| l.token);
            out.extend(hits.into_iter().map(|lock| (i, lock)));
        }
        MessageResult(out)
    }
}

impl Handler<WatchReleases> for LockTable {
    type Result = MessageResult<WatchReleases>;

    fn handle(&mut self, _: WatchReleases, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.freed.subscribe())
    }
}

impl Handler<ExpireLeases> for LockTable {
    type Result = ResponseFuture<usize>;

    /// Ends the expired locks in one batch (`lock.expired`); nothing is written when no
    /// lock is due.
    fn handle(&mut self, _: ExpireLeases, ctx: &mut Self::Context) -> Self::Result {
        if self.held.next_expiry().is_none_or(|at| at > now_micros()) {
            return Box::pin(std::future::ready(0));
        }
        Box::pin(self.enqueue(Op::Sweep, Caller::anonymous(), ctx).count())
    }
}

impl Handler<HolderLost> for LockTable {
    type Result = ();

    /// Releases every lock of the lost holders (`lock.released`, cause `holder_lost`),
    /// including locks granted in a batch still being committed. From now until that
    /// commit, reads already leave their locks out.
    fn handle(&mut self, msg: HolderLost, ctx: &mut Self::Context) {
        if msg.ids.is_empty() {
            return;
        }
        for id in &msg.ids {
            *self.losing.entry(id.clone()).or_default() += 1;
        }
        let ids = msg.ids.clone();
        let reply = self.enqueue(Op::HolderLost(msg.ids), Caller::anonymous(), ctx);
        ctx.spawn(reply.count().into_actor(self).map(move |_, act, _| {
            for id in ids {
                if let Some(n) = act.losing.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        act.losing.remove(&id);
                    }
                }
            }
        }));
    }
}

/// Acquires `lock`, waiting up to `wait` for the conflicting locks to go away (API §24
/// `wait_seconds`): it tries again after every commit that ended a lock and when the
/// first conflicting lock's time is up, and refuses with the conflicts still held at the
/// deadline. The long-poll every adapter uses.
pub async fn acquire(
    table: &Addr<LockTable>,
    lock: NewLock,
    wait: Duration,
    caller: Caller,
) -> Result<Arc<Lock>, LockError> {
    let attempt = |lock: NewLock| AcquireLock {
        lock,
        caller: caller.clone(),
    };
    if wait.is_zero() {
        return table.send(attempt(lock)).await?;
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut freed = table.send(WatchReleases).await?;
    loop {
        // Seen before the attempt: a lock ended after it wakes the wait below at once.
        freed.borrow_and_update();
        let conflicts = match table.send(attempt(lock.clone())).await? {
            Err(LockError::Conflict(conflicts)) => conflicts,
            other => return other,
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(LockError::Conflict(conflicts));
        }
        let mut wake = deadline;
        if let Some(at) = conflicts.iter().map(|l| l.expires_at).min() {
            // A millisecond past the expiry, so the next attempt sees it gone.
            let left = u64::try_from(at - now_micros()).unwrap_or(0) + 1000;
            wake = wake.min(now + Duration::from_micros(left));
        }
        tokio::select! {
            changed = freed.changed() => {
                if changed.is_err() {
                    return Err(LockError::Unavailable);
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::glob::Pattern;
    use crate::locks::model::Mode;

    fn want(holder: &str, mode: Mode, resource: &str) -> Op {
        Op::Acquire(Box::new(NewLock {
            resource: Pattern::parse(resource).unwrap(),
            mode,
            holder: holder.into(),
            ttl_micros: 100,
            reason: String::new(),
        }))
    }

    struct Table {
        held: Held,
        ended: Ended,
        token: i64,
        ids: u32,
    }

    impl Table {
        fn new() -> Table {
            Table {
                held: Held::default(),
                ended: Ended::default(),
                token: 0,
                ids: 0,
            }
        }

        /// Runs one batch and keeps its changes, as a commit would.
        fn batch(&mut self, ops: Vec<Op>, now: i64) -> (Vec<String>, Vec<String>) {
            let batch = ops
                .into_iter()
                .map(|op| (op, Caller::anonymous()))
                .collect();
            let (mut token, mut ids) = (self.token, self.ids);
            let work = apply(
                &self.held,
                &self.ended,
                batch,
                now,
                &mut || {
                    token += 1;
                    token
                },
                &mut || {
                    ids += 1;
                    format!("L{ids}")
                },
            );
            (self.token, self.ids) = (token, ids);
            let events = work
                .records
                .events
                .iter()
                .map(|e| {
                    format!(
                        "{} {} {}",
                        e.topic,
                        e.data["id"].as_str().unwrap(),
                        e.data["cause"]
                    )
                })
                .collect();
            for (id, lock) in work.applied.changed {
                match lock {
                    Some(lock) => self.held.upsert(lock),
                    None => {
                        self.held.remove(&id);
                        self.ended.push(id);
                    }
                }
            }
            let results = work
                .applied
                .results
                .into_iter()
                .map(|r| match r {
                    Ok(Done::Lock(l)) => format!("{} t{} until {}", l.id, l.token, l.expires_at),
                    Ok(Done::Count(n)) => format!("count {n}"),
                    Err(LockError::Conflict(c)) => format!(
                        "409 [{}]",
                        c.iter()
                            .map(|l| l.id.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    Err(e) => format!("err {e}"),
                })
                .collect();
            (results, events)
        }
    }

    #[test]
    fn of_eight_conflicting_acquisitions_in_one_batch_exactly_one_wins() {
        let mut t = Table::new();
        let ops = (0..8)
            .map(|i| want(&format!("h{i}"), Mode::Exclusive, "src/a.rs"))
            .collect();
        let (results, events) = t.batch(ops, 10);
        assert_eq!(results[0], "L1 t1 until 110");
        assert!(results[1..].iter().all(|r| r == "409 [L1]"), "{results:?}");
        assert_eq!(events, ["lock.acquired L1 null"]);
    }

    #[test]
    fn a_batch_sees_its_own_releases_and_expiry_comes_first() {
        let mut t = Table::new();
        t.batch(vec![want("a", Mode::Exclusive, "src/**")], 0);
        t.batch(vec![want("a", Mode::Shared, "docs/x.md")], 50);
        let (results, events) = t.batch(
            vec![
                want("b", Mode::Exclusive, "src/x.rs"),
                Op::Release {
                    id: "L1".into(),
                    token: Some(1),
                },
                want("b", Mode::Exclusive, "src/x.rs"),
                want("c", Mode::Shared, "docs/*.md"),
            ],
            60,
        );
        assert_eq!(
            results,
            [
                "409 [L1]",
                "L1 t1 until 100",
                "L3 t3 until 160",
                "L4 t4 until 160"
            ]
        );
        assert_eq!(
            events,
            [
                "lock.released L1 \"released\"",
                "lock.acquired L3 null",
                "lock.acquired L4 null"
            ]
        );
        // At 160 every lock left is due: they expire before anything else in the batch.
        let (results, events) = t.batch(vec![Op::Sweep], 160);
        assert_eq!(results, ["count 3"]);
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.starts_with("lock.expired")));
        assert!(t.held.locks.is_empty() && t.held.index.is_empty());
    }

    #[test]
    fn renew_and_release_need_the_token_and_ended_ids_are_409() {
        let mut t = Table::new();
        t.batch(vec![want("a", Mode::Exclusive, "f.rs")], 0);
        let (results, _) = t.batch(
            vec![
                Op::Renew {
                    id: "L1".into(),
                    token: 2,
                    ttl_micros: None,
                },
                Op::Renew {
                    id: "L1".into(),
                    token: 1,
                    ttl_micros: Some(500),
                },
                Op::Renew {
                    id: "L1".into(),
                    token: 1,
                    ttl_micros: None,
                },
                Op::Release {
                    id: "L1".into(),
                    token: Some(9),
                },
                Op::Release {
                    id: "nope".into(),
                    token: Some(1),
                },
            ],
            10,
        );
        assert_eq!(
            results,
            [
                "err lock L1 is not held with that token",
                "L1 t1 until 510",
                "L1 t1 until 510",
                "err lock L1 is not held with that token",
                "err lock not found: nope",
            ]
        );
        let (results, events) = t.batch(
            vec![
                Op::Release {
                    id: "L1".into(),
                    token: None,
                },
                Op::Renew {
                    id: "L1".into(),
                    token: 1,
                    ttl_micros: None,
                },
            ],
            20,
        );
        assert_eq!(results[1], "err lock L1 is not held with that token");
        assert_eq!(events, ["lock.released L1 \"forced\""]);
        let (results, _) = t.batch(
            vec![Op::Release {
                id: "L1".into(),
                token: Some(1),
            }],
            30,
        );
        assert_eq!(results, ["err lock L1 is not held with that token"]);
    }

    #[test]
    fn a_lost_holder_loses_every_lock_also_one_granted_in_the_same_batch() {
        let mut t = Table::new();
        t.batch(
            vec![
                want("a", Mode::Exclusive, "src/**"),
                want("b", Mode::Exclusive, "docs/**"),
            ],
            0,
        );
        let (results, events) = t.batch(
            vec![
                want("a", Mode::Shared, "x"),
                Op::HolderLost(vec!["a".into(), "z".into()]),
                want("c", Mode::Exclusive, "src/a.rs"),
            ],
            10,
        );
        assert_eq!(results[1], "count 2");
        assert_eq!(results[2], "L4 t4 until 110");
        assert_eq!(
            events,
            [
                "lock.acquired L3 null",
                "lock.released L1 \"holder_lost\"",
                "lock.released L3 \"holder_lost\"",
                "lock.acquired L4 null"
            ]
        );
        let mut holders: Vec<&str> = t.held.locks.values().map(|l| l.holder.as_str()).collect();
        holders.sort_unstable();
        assert_eq!(holders, ["b", "c"]);
    }

    #[test]
    fn ended_ids_are_forgotten_oldest_first() {
        let mut ended = Ended::default();
        for i in 0..ENDED_KEPT + 2 {
            ended.push(format!("L{i}"));
        }
        assert!(!ended.contains("L0") && !ended.contains("L1"));
        assert!(ended.contains("L2") && ended.contains(&format!("L{}", ENDED_KEPT + 1)));
    }
}
