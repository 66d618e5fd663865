//! Messages of the tasks domain: its whole API. Inputs are already validated (the REST
//! adapter checks every field and range before sending).

use std::sync::Arc;
use std::time::Duration;

use actix::Message;
use serde_json::Value;

use super::model::{GroupSummary, QueueStats, Task, TaskError, TaskFilter};
use crate::http::Caller;

/// A task to create (API §23 `POST /api/tasks`).
#[derive(Debug, Clone)]
pub struct NewTask {
    pub queue: String,
    pub payload: Value,
    pub priority: i64,
    pub max_attempts: u32,
    pub lease_seconds: f64,
    /// Not claimable for this long after creation.
    pub delay_seconds: f64,
    pub requires: Vec<String>,
    pub group: Option<String>,
    pub idempotency_key: Option<String>,
}

/// Creates a task; with an idempotency key already used in the queue, answers that task.
#[derive(Message, Debug)]
#[rtype(result = "Result<Arc<Task>, TaskError>")]
pub struct CreateTask {
    pub task: NewTask,
    pub caller: Caller,
}

/// Leases the first claimable task of `queue` for `holder`, waiting up to `wait` for one;
/// answered with `None` when nothing became claimable in time.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Option<Arc<Task>>, TaskError>")]
pub struct ClaimTask {
    pub queue: String,
    /// A registered instance id.
    pub holder: String,
    /// The holder's capabilities: a task's `requires` must all be among them.
    pub capabilities: Vec<String>,
    /// Lease length; the task's own `lease_seconds` when `None`.
    pub lease_seconds: Option<f64>,
    pub wait: Duration,
    pub caller: Caller,
}

/// Extends a held lease to now + its length (or `lease_seconds`), keeping its token.
#[derive(Message, Debug)]
#[rtype(result = "Result<Arc<Task>, TaskError>")]
pub struct RenewLease {
    pub id: String,
    pub token: i64,
    pub lease_seconds: Option<f64>,
    pub caller: Caller,
}

/// Finishes a leased task as `done` with its result.
#[derive(Message, Debug)]
#[rtype(result = "Result<Arc<Task>, TaskError>")]
pub struct CompleteTask {
    pub id: String,
    pub token: i64,
    pub result: Value,
    pub caller: Caller,
}

/// Records a failed attempt: `failed` until its retry time, or `dead` at `max_attempts`.
#[derive(Message, Debug)]
#[rtype(result = "Result<Arc<Task>, TaskError>")]
pub struct FailTask {
    pub id: String,
    pub token: i64,
    pub error: String,
    pub retry_after_seconds: Option<f64>,
    pub caller: Caller,
}

/// Gives a lease back: the task is claimable at once and the attempt is not counted.
#[derive(Message, Debug)]
#[rtype(result = "Result<Arc<Task>, TaskError>")]
pub struct ReleaseTask {
    pub id: String,
    pub token: i64,
    pub caller: Caller,
}

/// Cancels a `queued`, `failed` or `leased` task.
#[derive(Message, Debug)]
#[rtype(result = "Result<Arc<Task>, TaskError>")]
pub struct CancelTask {
    pub id: String,
    pub caller: Caller,
}

/// Puts a `dead` or `cancelled` task back in its queue with `attempts` 0.
#[derive(Message, Debug)]
#[rtype(result = "Result<Arc<Task>, TaskError>")]
pub struct RetryTask {
    pub id: String,
    pub caller: Caller,
}

/// One task by id, as a reader sees it now.
#[derive(Message, Debug)]
#[rtype(result = "Result<Arc<Task>, TaskError>")]
pub struct GetTask {
    pub id: String,
}

/// Up to `limit` tasks passing `filter`, newest created first.
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<Arc<Task>>, TaskError>")]
pub struct ListTasks {
    pub filter: TaskFilter,
    pub limit: u64,
}

/// Counts per status of one queue (or of all), and the age of the oldest queued task.
#[derive(Message, Debug)]
#[rtype(result = "QueueStats")]
pub struct GetStats {
    pub queue: Option<String>,
}

/// A group's counts; `GroupNotFound` when no task has that group.
#[derive(Message, Debug)]
#[rtype(result = "Result<GroupSummary, TaskError>")]
pub struct GetGroup {
    pub group: String,
}

/// A group's counts as soon as it is finished, or at `timeout` whatever they are.
#[derive(Message, Debug)]
#[rtype(result = "Result<GroupSummary, TaskError>")]
pub struct WaitGroup {
    pub group: String,
    pub timeout: Duration,
}
