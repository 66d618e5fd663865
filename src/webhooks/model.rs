//! Webhook domain types.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ErrorKind};
use crate::events::pattern::TopicPattern;
use crate::time::format_micros;

/// A registered webhook (with its secret: never serialised).
#[derive(Clone, Debug)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub patterns: Vec<String>,
    pub secret: String,
    pub active: bool,
    pub fail_count: i64,
    /// Unix microseconds of the last successful delivery.
    pub last_fired: Option<i64>,
    /// Unix microseconds.
    pub created_at: i64,
    /// Id of the last event turned into deliveries.
    pub cursor: i64,
}

/// The wire shape of a webhook: everything but the secret and the cursor.
#[derive(Serialize)]
pub struct WebhookOut<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub patterns: &'a [String],
    pub active: bool,
    pub created_at: String,
    pub last_fired: Option<String>,
    pub fail_count: i64,
}

impl Webhook {
    /// The wire shape.
    pub fn out(&self) -> WebhookOut<'_> {
        WebhookOut {
            id: &self.id,
            url: &self.url,
            patterns: &self.patterns,
            active: self.active,
            created_at: format_micros(self.created_at),
            last_fired: self.last_fired.map(format_micros),
            fail_count: self.fail_count,
        }
    }

    /// The compiled patterns (an event matches when any of them does).
    pub fn topic_patterns(&self) -> Vec<TopicPattern> {
        self.patterns.iter().map(|p| TopicPattern::new(p)).collect()
    }
}

/// Body of `POST /api/webhooks`.
#[derive(Debug, Deserialize)]
pub struct WebhookIn {
    pub id: Option<String>,
    pub url: Option<String>,
    pub patterns: Option<Vec<String>>,
    pub secret: Option<String>,
}

/// Where a delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> DeliveryState {
        match s {
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => DeliveryState::Pending,
        }
    }
}

/// One event's delivery to one webhook.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: String,
    pub event_id: i64,
    pub topic: String,
    pub message_id: String,
    pub body: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: String,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The wire shape of a delivery (without the body).
#[derive(Serialize)]
pub struct DeliveryOut<'a> {
    pub id: i64,
    pub webhook_id: &'a str,
    pub event_id: i64,
    pub topic: &'a str,
    pub message_id: &'a str,
    pub state: &'static str,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: &'a str,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Delivery {
    pub fn out(&self) -> DeliveryOut<'_> {
        DeliveryOut {
            id: self.id,
            webhook_id: &self.webhook_id,
            event_id: self.event_id,
            topic: &self.topic,
            message_id: &self.message_id,
            state: self.state.as_str(),
            attempts: self.attempts,
            last_status: self.last_status,
            last_error: &self.last_error,
            next_attempt_at: self.next_attempt_at.map(format_micros),
            created_at: format_micros(self.created_at),
            updated_at: format_micros(self.updated_at),
        }
    }
}

/// What went wrong in the webhooks domain.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("webhook not found: {0}")]
    NotFound(String),
    #[error("delivery {1} of webhook {0} not found")]
    DeliveryNotFound(String, i64),
    #[error("webhook {0} already exists")]
    Exists(String),
    #[error("test delivery failed: {0}")]
    TestFailed(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the webhook dispatcher failed: {0}")]
    Failed(String),
    #[error("a domain webhooks need is not running")]
    Unavailable,
}

impl DomainError for WebhookError {
    fn kind(&self) -> ErrorKind {
        match self {
            WebhookError::Invalid(_) | WebhookError::TestFailed(_) => ErrorKind::BadRequest,
            WebhookError::NotFound(_) | WebhookError::DeliveryNotFound(..) => ErrorKind::NotFound,
            WebhookError::Exists(_) => ErrorKind::Conflict,
            WebhookError::Storage(_) | WebhookError::Failed(_) => ErrorKind::Internal,
            WebhookError::Unavailable => ErrorKind::Unavailable,
        }
    }
}

impl From<sea_orm::DbErr> for WebhookError {
    fn from(e: sea_orm::DbErr) -> Self {
        WebhookError::Storage(e.to_string())
    }
}

impl From<crate::supervise::WorkerFailed> for WebhookError {
    fn from(e: crate::supervise::WorkerFailed) -> Self {
        WebhookError::Failed(e.message)
    }
}
