//! Retention: what each pruner shares. Every domain prunes its own table (state and spec
//! history in the `VersionedStore`, LLM usage in the `LlmLedger`, audit entries in the
//! `AuditLog`, events in the `EventBus`), every `prune_interval`, in small batches: each
//! batch is one short write transaction ([`crate::db::begin_write`]) that deletes at most
//! [`PRUNE_BATCH`] rows, and the pruner pauses between batches so that waiting writers
//! take the write lock first ([`in_batches`]). A pruner never runs twice at once
//! ([`Running`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Most rows one prune transaction deletes.
pub const PRUNE_BATCH: u64 = 500;

/// Pause between two prune transactions.
pub const PRUNE_PAUSE: Duration = Duration::from_millis(10);

/// What one prune transaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Rows it deleted.
    pub deleted: u64,
    /// True when rows remain for another batch.
    pub more: bool,
}

/// Runs `batch` (one short write transaction each) until one reports that nothing remains,
/// pausing [`PRUNE_PAUSE`] between two batches so that writers waiting for the write lock
/// take it first; answers the rows deleted in all.
pub async fn in_batches<E, F, Fut>(mut batch: F) -> Result<u64, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Batch, E>>,
{
    let mut deleted = 0;
    loop {
        let done = batch().await?;
        deleted += done.deleted;
        if !done.more {
            return Ok(deleted);
        }
        tokio::time::sleep(PRUNE_PAUSE).await;
    }
}

/// How long versioned documents keep their history (state and specs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryRetention {
    /// Versions kept per key, the current one included.
    pub keep_versions: Option<u64>,
    /// Versions older than this are pruned (never a key's current version).
    pub max_age: Option<Duration>,
}

impl HistoryRetention {
    /// True when nothing is ever pruned.
    pub fn keeps_all(&self) -> bool {
        self.keep_versions.is_none() && self.max_age.is_none()
    }
}

/// The instant (unix microseconds) before which rows older than `age` lie, at `now`.
pub fn cutoff(now: i64, age: Duration) -> i64 {
    let age = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
    now.saturating_sub(age)
}

/// Marks a pruner as running, so that a tick arriving while a long prune still runs is
/// skipped instead of starting a second one.
#[derive(Clone, Debug, Default)]
pub struct Running(Arc<AtomicBool>);

/// Held while a prune runs; dropping it lets the next one start.
pub struct RunGuard(Arc<AtomicBool>);

impl Running {
    /// The guard of a new run, or `None` while one is running.
    pub fn start(&self) -> Option<RunGuard> {
        self.0
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| RunGuard(self.0.clone()))
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_at_a_time() {
        let running = Running::default();
        let first = running.start();
        assert!(first.is_some());
        assert!(running.start().is_none());
        drop(first);
        assert!(running.start().is_some());
    }

    #[tokio::test]
    async fn batches_run_until_one_reports_nothing_left() {
        let mut left = 1_234_u64;
        let mut calls = 0;
        let deleted = in_batches(|| {
            calls += 1;
            let n = left.min(PRUNE_BATCH);
            left -= n;
            let more = left > 0;
            async move { Ok::<_, ()>(Batch { deleted: n, more }) }
        })
        .await;
        assert_eq!(deleted, Ok(1_234));
        assert_eq!(calls, 3);
        let failed = in_batches(|| async { Err::<Batch, _>("db down") }).await;
        assert_eq!(failed, Err("db down"));
    }

    #[test]
    fn cutoff_never_overflows() {
        assert_eq!(cutoff(10_000_000, Duration::from_secs(1)), 9_000_000);
        assert_eq!(cutoff(0, Duration::MAX), -i64::MAX);
    }
}
