//! Messages of the topology domain.

use actix::Message;

use super::graph::Graph;

/// Something an identified agent was seen doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Published an event on `topic`.
    Published { agent: String, topic: String },
    /// Subscribed to `pattern` (WebSocket or long-poll).
    Subscribed { agent: String, pattern: String },
    /// Created task `task` in `queue`.
    TaskCreated {
        agent: String,
        task: String,
        queue: String,
    },
    /// Completed task `task` (as its lease holder).
    TaskCompleted { holder: String, task: String },
    /// Was refused a lock on `resource` because `holder` held a conflicting one.
    LockWaited {
        waiter: String,
        holder: String,
        resource: String,
    },
}

/// Records an observation (adapters send it after the action succeeded; never answered).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Observe(pub Seen);

/// The current graph.
#[derive(Message, Debug)]
#[rtype(result = "Result<Graph, TopologyError>")]
pub struct GetTopology;

/// What went wrong building the graph.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("the instance registry is not running")]
    Unavailable,
}

impl crate::error::DomainError for TopologyError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Unavailable
    }
}
