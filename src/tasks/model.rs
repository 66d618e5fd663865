//! Task domain types: the task, its lease, the status counts, and the error enum.

use std::cmp::Reverse;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::{DomainError, ErrorKind};
use crate::time::format_micros;

/// Longest queue, group, holder id or capability name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Longest idempotency key, in bytes.
pub const MAX_KEY_LEN: usize = 200;
/// Most capabilities a task may require.
pub const MAX_REQUIRES: usize = 64;
/// Longest `error` of a failure, in bytes.
pub const MAX_ERROR_LEN: usize = 64 * 1024;

/// `max_attempts` range and default.
pub const MAX_ATTEMPTS: (i64, i64) = (1, 100);
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// `lease_seconds` range and default.
pub const LEASE_SECONDS: (f64, f64) = (1.0, 3600.0);
pub const DEFAULT_LEASE_SECONDS: f64 = 60.0;
/// `delay_seconds` and `retry_after_seconds` range.
pub const DELAY_SECONDS: (f64, f64) = (0.0, 86_400.0);
/// `wait_seconds` range of a long-poll claim.
pub const WAIT_SECONDS: (f64, f64) = (0.0, 60.0);
/// `timeout` range of a group wait, and its default.
pub const GROUP_WAIT_SECONDS: (f64, f64) = (0.0, 60.0);
pub const DEFAULT_GROUP_WAIT: f64 = 30.0;
/// Longest backoff after a failure without `retry_after_seconds`.
pub const MAX_BACKOFF_SECONDS: f64 = 300.0;
/// The queue of a task created without one.
pub const DEFAULT_QUEUE: &str = "default";

/// Where a task is in its life (API §23).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Queued,
    Leased,
    /// Failed, waiting for its retry time (`not_before`), then claimable.
    Failed,
    Done,
    Dead,
    Cancelled,
}

impl Status {
    /// Every status, in the order of the counts.
    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::Leased,
        Status::Failed,
        Status::Done,
        Status::Dead,
        Status::Cancelled,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Leased => "leased",
            Status::Failed => "failed",
            Status::Done => "done",
            Status::Dead => "dead",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// `done`, `dead` and `cancelled` never change again (except by a retry).
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Done | Status::Dead | Status::Cancelled)
    }
}

/// The right to work on a task, held by one holder until `expires_at`.
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    /// A registered instance id.
    pub holder: String,
    /// The fencing token drawn when the task was claimed (kept by renewals).
    pub token: i64,
    /// Unix microseconds.
    pub expires_at: i64,
    /// The lease length in seconds: what a renewal without `lease_seconds` extends by.
    pub length: f64,
}

/// A task. Shared as `Arc<Task>`; a transition makes a new one.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// UUID v4.
    pub id: String,
    /// Creation order (unique): the last tie-breaker of claims and of the list order.
    pub seq: i64,
    pub queue: String,
    pub payload: Arc<Value>,
    pub priority: i64,
    pub status: Status,
    pub attempts: u32,
    pub max_attempts: u32,
    pub lease_seconds: f64,
    /// Unix microseconds.
    pub not_before: Option<i64>,
    pub requires: Vec<String>,
    pub group: Option<String>,
    pub idempotency_key: Option<String>,
    /// `Some` exactly while `leased`.
    pub lease: Option<Lease>,
    pub result: Option<Arc<Value>>,
    pub error: Option<String>,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix microseconds.
    pub updated_at: i64,
}

/// Position of a claimable task in its queue: highest priority first, then the earliest
/// created, then creation order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClaimKey {
    pub priority: Reverse<i64>,
    pub created_at: i64,
    pub seq: i64,
    pub id: String,
}

/// Seconds (with fractions) as microseconds.
pub fn micros(seconds: f64) -> i64 {
    (seconds * 1_000_000.0).round() as i64
}

/// The wait after the `attempts`-th failed attempt when the failure names none: 2^attempts
/// seconds, at most [`MAX_BACKOFF_SECONDS`].
pub fn backoff_seconds(attempts: u32) -> f64 {
    2f64.powi(attempts.min(16) as i32).min(MAX_BACKOFF_SECONDS)
}

/// True when `have` contains every capability of `required`.
pub fn covers(have: &[String], required: &[String]) -> bool {
    required.iter().all(|r| have.iter().any(|h| h == r))
}

/// A number of seconds on the wire: an integer when it is whole, else a fraction.
fn seconds_value(s: f64) -> Value {
    if s.fract() == 0.0 && s.abs() < 9.0e15 {
        json!(s as i64)
    } else {
        json!(s)
    }
}

impl Task {
    /// True when the lease has passed at `now` (the task is then not held, whatever the
    /// stored status says until the expiry is written).
    pub fn lease_expired(&self, now: i64) -> bool {
        self.status == Status::Leased && self.lease.as_ref().is_none_or(|l| l.expires_at <= now)
    }

    /// True when a claim may take this task at `now` (capabilities aside).
    pub fn claimable(&self, now: i64) -> bool {
        matches!(self.status, Status::Queued | Status::Failed)
            && self.not_before.is_none_or(|nb| nb <= now)
    }

    /// The task's position in its queue's claim order.
    pub fn claim_key(&self) -> ClaimKey {
        ClaimKey {
            priority: Reverse(self.priority),
            created_at: self.created_at,
            seq: self.seq,
            id: self.id.clone(),
        }
    }

    /// The task after its lease expired (or its holder was lost) at `now`: claimable again
    /// at once, or `dead` when it has used all its attempts.
    pub fn expired(&self, now: i64) -> Task {
        let mut next = self.clone();
        next.status = if self.attempts >= self.max_attempts {
            Status::Dead
        } else {
            Status::Queued
        };
        next.lease = None;
        next.not_before = None;
        next.updated_at = now;
        next
    }

    /// The task as a reader sees it at `now`: a passed lease is shown as expired.
    pub fn view(self: &Arc<Self>, now: i64) -> Arc<Task> {
        if self.lease_expired(now) {
            let mut seen = self.expired(now);
            seen.updated_at = self.updated_at;
            Arc::new(seen)
        } else {
            self.clone()
        }
    }

    /// The holder of the lease, if any.
    pub fn holder(&self) -> Option<&str> {
        self.lease.as_ref().map(|l| l.holder.as_str())
    }

    /// The wire shape (API §23).
    pub fn out(&self) -> Value {
        let lease = self.lease.as_ref().map(|l| {
            json!({
                "holder": l.holder,
                "token": l.token,
                "expires_at": format_micros(l.expires_at),
            })
        });
        let mut o = Map::new();
        o.insert("id".into(), json!(self.id));
        o.insert("queue".into(), json!(self.queue));
        o.insert("payload".into(), (*self.payload).clone());
        o.insert("priority".into(), json!(self.priority));
        o.insert("status".into(), json!(self.status.as_str()));
        o.insert("attempts".into(), json!(self.attempts));
        o.insert("max_attempts".into(), json!(self.max_attempts));
        o.insert("lease_seconds".into(), seconds_value(self.lease_seconds));
        o.insert(
            "not_before".into(),
            json!(self.not_before.map(format_micros)),
        );
        o.insert("requires".into(), json!(self.requires));
        o.insert("group".into(), json!(self.group));
        o.insert("idempotency_key".into(), json!(self.idempotency_key));
        o.insert("lease".into(), lease.unwrap_or(Value::Null));
        o.insert(
            "result".into(),
            self.result.as_deref().cloned().unwrap_or(Value::Null),
        );
        o.insert("error".into(), json!(self.error));
        o.insert("created_at".into(), json!(format_micros(self.created_at)));
        o.insert("updated_at".into(), json!(format_micros(self.updated_at)));
        Value::Object(o)
    }

    /// The data of a task event (API §23.2): never the payload or the result.
    pub fn event_data(&self, holder: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "queue": self.queue,
            "status": self.status.as_str(),
            "attempts": self.attempts,
            "holder": holder,
            "group": self.group,
        })
    }
}

/// How many tasks are in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub queued: i64,
    pub leased: i64,
    pub failed: i64,
    pub done: i64,
    pub dead: i64,
    pub cancelled: i64,
}

impl Counts {
    /// Adds `delta` to the count of `status`.
    pub fn add(&mut self, status: Status, delta: i64) {
        let slot = match status {
            Status::Queued => &mut self.queued,
            Status::Leased => &mut self.leased,
            Status::Failed => &mut self.failed,
            Status::Done => &mut self.done,
            Status::Dead => &mut self.dead,
            Status::Cancelled => &mut self.cancelled,
        };
        *slot += delta;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Counts) {
        for (status, n) in other.each() {
            self.add(status, n);
        }
    }

    /// Every (status, count).
    pub fn each(&self) -> [(Status, i64); 6] {
        [
            (Status::Queued, self.queued),
            (Status::Leased, self.leased),
            (Status::Failed, self.failed),
            (Status::Done, self.done),
            (Status::Dead, self.dead),
            (Status::Cancelled, self.cancelled),
        ]
    }

    /// Tasks in any status.
    pub fn total(&self) -> i64 {
        self.each().iter().map(|(_, n)| n).sum()
    }

    /// True when there is a task and every task is `done`, `dead` or `cancelled`.
    pub fn finished(&self) -> bool {
        self.total() > 0 && self.queued + self.leased + self.failed == 0
    }

    /// True when no task is counted.
    pub fn is_empty(&self) -> bool {
        self.each().iter().all(|(_, n)| *n == 0)
    }
}

/// `GET /api/tasks/groups/{group}` (API §23.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    pub group: String,
    pub counts: Counts,
}

impl GroupSummary {
    /// The wire shape, also the data of `task.group.finished`.
    pub fn out(&self) -> Value {
        let c = &self.counts;
        json!({
            "group": self.group,
            "total": c.total(),
            "queued": c.queued,
            "leased": c.leased,
            "failed": c.failed,
            "done": c.done,
            "dead": c.dead,
            "cancelled": c.cancelled,
            "finished": c.finished(),
        })
    }
}

/// `GET /api/tasks/stats`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueStats {
    pub counts: Counts,
    /// Seconds the longest-waiting claimable `queued` task has been claimable, if any.
    pub oldest_queued_age_seconds: Option<f64>,
}

impl QueueStats {
    /// The wire shape.
    pub fn out(&self) -> Value {
        let c = &self.counts;
        json!({
            "queued": c.queued,
            "leased": c.leased,
            "failed": c.failed,
            "done": c.done,
            "dead": c.dead,
            "cancelled": c.cancelled,
            "oldest_queued_age_seconds": self.oldest_queued_age_seconds,
        })
    }
}

/// Filters of `GET /api/tasks` (exact, AND-combined); `None` = any.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub queue: Option<String>,
    pub status: Option<Status>,
    pub group: Option<String>,
    /// The holder of a lease that is held.
    pub holder: Option<String>,
}

/// What went wrong in the task queue.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0}")]
    Invalid(String),
    #[error("task not found: {0}")]
    NotFound(String),
    #[error("holder not found: {0} (a holder is a registered instance id)")]
    UnknownHolder(String),
    #[error("group not found: {0}")]
    GroupNotFound(String),
    #[error("the lease of task {id} is not held with token {token}")]
    NotHeld { id: String, token: i64 },
    #[error("task {id} is {status}: it cannot be {action}")]
    State {
        id: String,
        status: &'static str,
        action: &'static str,
    },
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the task queue is not running")]
    Unavailable,
}

impl DomainError for TaskError {
    fn kind(&self) -> ErrorKind {
        match self {
            TaskError::Invalid(_) => ErrorKind::BadRequest,
            TaskError::NotFound(_) | TaskError::UnknownHolder(_) | TaskError::GroupNotFound(_) => {
                ErrorKind::NotFound
            }
            TaskError::NotHeld { .. } | TaskError::State { .. } => ErrorKind::Conflict,
            TaskError::Storage(_) => ErrorKind::Internal,
            TaskError::Unavailable => ErrorKind::Unavailable,
        }
    }

    fn details(&self) -> Option<Map<String, Value>> {
        match self {
            TaskError::State { status, .. } => {
                let mut m = Map::new();
                m.insert("status".into(), json!(status));
                Some(m)
            }
            _ => None,
        }
    }
}

impl From<sea_orm::DbErr> for TaskError {
    fn from(e: sea_orm::DbErr) -> Self {
        TaskError::Storage(e.to_string())
    }
}

impl From<actix::MailboxError> for TaskError {
    fn from(_: actix::MailboxError) -> Self {
        TaskError::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn task(id: &str, status: Status) -> Task {
        Task {
            id: id.into(),
            seq: 1,
            queue: "q".into(),
            payload: Arc::new(json!({"secret": 1})),
            priority: 0,
            status,
            attempts: 1,
            max_attempts: 3,
            lease_seconds: 60.0,
            not_before: None,
            requires: vec![],
            group: None,
            idempotency_key: None,
            lease: None,
            result: None,
            error: None,
            created_at: 10,
            updated_at: 10,
        }
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let got: Vec<f64> = [1, 2, 3, 8, 9, 40].map(backoff_seconds).to_vec();
        assert_eq!(got, [2.0, 4.0, 8.0, 256.0, 300.0, 300.0]);
    }

    #[test]
    fn claim_order_is_priority_then_age_then_creation() {
        let mut a = task("a", Status::Queued);
        a.priority = 1;
        a.created_at = 5;
        let mut b = task("b", Status::Queued);
        b.priority = 5;
        b.created_at = 9;
        let mut c = b.clone();
        c.id = "c".into();
        c.seq = 2;
        let mut keys = [a.claim_key(), c.claim_key(), b.claim_key()];
        keys.sort();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }

    #[test]
    fn an_expired_lease_reads_as_released_or_dead() {
        let mut t = task("t", Status::Leased);
        t.lease = Some(Lease {
            holder: "h".into(),
            token: 7,
            expires_at: 100,
            length: 1.0,
        });
        let t = Arc::new(t);
        assert_eq!(t.view(99).status, Status::Leased);
        let seen = t.view(100);
        assert_eq!((seen.status, seen.lease.is_none()), (Status::Queued, true));
        let mut last = (*t).clone();
        last.attempts = 3;
        assert_eq!(Arc::new(last).view(200).status, Status::Dead);
    }

    #[test]
    fn counts_know_when_a_group_is_finished() {
        let mut c = Counts::default();
        assert!(!c.finished(), "an empty group is not finished");
        c.add(Status::Done, 2);
        c.add(Status::Leased, 1);
        assert!(!c.finished());
        c.add(Status::Leased, -1);
        c.add(Status::Cancelled, 1);
        assert!(c.finished());
        assert_eq!(c.total(), 3);
    }

    #[test]
    fn wire_shape_shows_whole_seconds_as_integers_and_events_hide_the_payload() {
        let mut t = task("t", Status::Queued);
        assert_eq!(t.out()["lease_seconds"], json!(60));
        t.lease_seconds = 1.5;
        assert_eq!(t.out()["lease_seconds"], json!(1.5));
        let data = t.event_data(None);
        assert!(data.get("payload").is_none() && data.get("result").is_none());
        assert_eq!(data["holder"], Value::Null);
        assert!(covers(&["a".into(), "b".into()], &["b".into()]));
        assert!(!covers(&[], &["b".into()]));
    }
}
