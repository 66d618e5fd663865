//! Messages of the events domain.

use std::sync::Arc;

use actix::Message;
use serde_json::Value;

use super::model::{Event, EventError, HistoryFilter};

/// Stores an event and fans it out; answered with the stored event after the commit.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Arc<Event>, EventError>")]
pub struct Publish {
    pub topic: String,
    pub data: Value,
    pub source: String,
}

impl Publish {
    /// A system event emitted by `source` (e.g. `state`, `liveness-monitor`).
    pub fn system(topic: &str, source: &str, data: Value) -> Self {
        Self {
            topic: topic.to_string(),
            data,
            source: source.to_string(),
        }
    }
}

/// Up to `last` matching events, newest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<Event>, EventError>")]
pub struct History {
    pub filter: HistoryFilter,
    pub last: u64,
}

/// The highest event id ever assigned (0 if none).
#[derive(Message)]
#[rtype(result = "i64")]
pub struct LastEventId;
