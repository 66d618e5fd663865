//! Event domain types.

use serde::Serialize;
use serde_json::Value;

use crate::error::{DomainError, ErrorKind};
use crate::time::format_micros;

/// A stored event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: i64,
    pub topic: String,
    pub data: Value,
    /// `""` for events published over REST; the emitting component for system events.
    pub source: String,
    /// Unix microseconds.
    pub created_at: i64,
}

/// The wire shape of an event (identical in publish responses, history and frames).
#[derive(Serialize)]
pub struct EventOut<'a> {
    pub id: i64,
    pub topic: &'a str,
    pub data: &'a Value,
    pub source: &'a str,
    pub created_at: String,
}

impl Event {
    /// The wire shape of this event.
    pub fn out(&self) -> EventOut<'_> {
        EventOut {
            id: self.id,
            topic: &self.topic,
            data: &self.data,
            source: &self.source,
            created_at: format_micros(self.created_at),
        }
    }

    /// The event as one JSON text (a WebSocket frame).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.out()).unwrap_or_else(|_| "{}".to_string())
    }
}

/// Filters of a history query. All combine with AND.
#[derive(Clone, Debug, Default)]
pub struct HistoryFilter {
    /// Topic pattern (§1.9); `None` = all.
    pub topic: Option<String>,
    /// Inclusive bounds on `created_at` (unix microseconds).
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Exact `source`.
    pub source: Option<String>,
    /// Only events with an id up to this one.
    pub until_id: Option<i64>,
}

/// What went wrong in the events domain.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EventError {
    #[error("{0}")]
    Invalid(String),
    #[error("cursor {after} is older than retention: the oldest available event id is {oldest}; resume with after={}", .oldest - 1)]
    Expired { after: i64, oldest: i64 },
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the event bus is not running")]
    Unavailable,
}

impl DomainError for EventError {
    fn kind(&self) -> ErrorKind {
        match self {
            EventError::Invalid(_) => ErrorKind::BadRequest,
            EventError::Expired { .. } => ErrorKind::Gone,
            EventError::Storage(_) => ErrorKind::Internal,
            EventError::Unavailable => ErrorKind::Unavailable,
        }
    }

    fn details(&self) -> Option<serde_json::Map<String, Value>> {
        match self {
            EventError::Expired { oldest, .. } => {
                let mut m = serde_json::Map::new();
                m.insert("oldest_id".into(), Value::from(*oldest));
                Some(m)
            }
            _ => None,
        }
    }
}

impl From<sea_orm::DbErr> for EventError {
    fn from(e: sea_orm::DbErr) -> Self {
        EventError::Storage(e.to_string())
    }
}
