//! Messages of the events domain.

use bytestring::ByteString;
use std::sync::Arc;
use std::time::Duration;

use actix::{Message, Recipient};
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

/// Events another domain committed (in its own transaction, through the journal), to be
/// fanned out. The bus delivers them in id order, whatever order commits report in.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Committed(pub Vec<Arc<Event>>);

/// Up to `last` matching events, newest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<Event>, EventError>")]
pub struct History {
    pub filter: HistoryFilter,
    pub last: u64,
}

/// Up to `limit` matching events with id > `after`, oldest first; `Expired` (410) when
/// events after the cursor have already been pruned.
#[derive(Message)]
#[rtype(result = "Result<Vec<Event>, EventError>")]
pub struct HistoryAfter {
    pub after: i64,
    pub filter: HistoryFilter,
    pub limit: u64,
}

/// Long-poll: matching events with id > `after` (oldest first) as soon as there is one,
/// or none when `timeout` passes. `after: None` waits for events newer than now.
#[derive(Message)]
#[rtype(result = "Result<Vec<Event>, EventError>")]
pub struct Wait {
    pub after: Option<i64>,
    pub topic: Option<String>,
    pub timeout: Duration,
    pub limit: u64,
}

/// What the bus sends to a subscriber.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum BusFrame {
    /// A committed event matching the subscriber's pattern, with its JSON text (rendered
    /// once per event, however many subscribers get it).
    Event(Arc<Event>, ByteString),
    /// The subscriber's buffer overflowed; it has been unsubscribed and gets nothing more.
    Lagged,
}

/// Registers `recipient` for live events matching `pattern`. The reply's `live_after` is
/// the id after which live delivery starts: every matching event with a higher id is sent,
/// none with a lower one, so a resuming subscriber replays `(after, live_after]` from
/// storage and misses nothing.
#[derive(Message)]
#[rtype(result = "Subscribed")]
pub struct Subscribe {
    pub pattern: String,
    pub recipient: Recipient<BusFrame>,
    /// A client connection (a WebSocket session), as opposed to a consumer inside the
    /// server; only clients are counted as subscribers in the metrics.
    pub client: bool,
}

/// The answer to [`Subscribe`].
#[derive(Debug, Clone, Copy, actix::MessageResponse)]
pub struct Subscribed {
    pub id: u64,
    pub live_after: i64,
}

/// Removes a subscriber.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub id: u64,
}

/// Deletes all but the newest `event_retention` events now (the pruner's run-once step);
/// answers how many were deleted.
#[derive(Message)]
#[rtype(result = "Result<u64, EventError>")]
pub struct PruneEvents;

/// Counters of the bus: the highest id ever assigned and the live subscriber count.
#[derive(Message)]
#[rtype(result = "BusStats")]
pub struct GetBusStats;

/// The answer to [`GetBusStats`].
#[derive(Debug, Clone, Copy, actix::MessageResponse)]
pub struct BusStats {
    pub last_event_id: i64,
    /// Client subscriptions (WebSocket sessions).
    pub subscribers: usize,
    /// Events committed since this process started.
    pub published: u64,
}
