//! Messages of the webhooks domain: its whole API.

use crate::http::Caller;
use actix::Message;

use super::model::{Delivery, Webhook, WebhookError, WebhookIn};

/// Turns new events into deliveries and starts due attempts.
#[derive(Message)]
#[rtype(result = "Result<(), WebhookError>")]
pub struct Pump;

/// Registers a webhook.
#[derive(Message)]
#[rtype(result = "Result<Webhook, WebhookError>")]
pub struct CreateWebhook {
    pub input: WebhookIn,
    /// Who does it (the audit entry's actor).
    pub caller: Caller,
}

/// Every webhook, newest first.
#[derive(Message)]
#[rtype(result = "Vec<Webhook>")]
pub struct ListWebhooks;

/// Deletes a webhook and its pending deliveries.
#[derive(Message)]
#[rtype(result = "Result<(), WebhookError>")]
pub struct DeleteWebhook {
    pub id: String,
    /// Who does it (the audit entry's actor).
    pub caller: Caller,
}

/// Re-activates a webhook and clears its failure count.
#[derive(Message)]
#[rtype(result = "Result<Webhook, WebhookError>")]
pub struct EnableWebhook {
    pub id: String,
    /// Who does it (the audit entry's actor).
    pub caller: Caller,
}

/// Delivers a `webhook.test` payload now and reports whether it succeeded.
#[derive(Message)]
#[rtype(result = "Result<(), WebhookError>")]
pub struct TestWebhook {
    pub id: String,
}

/// Up to `limit` deliveries of a webhook, newest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<Delivery>, WebhookError>")]
pub struct ListDeliveries {
    pub id: String,
    pub limit: u64,
}

/// Makes a delivery pending again, due now.
#[derive(Message)]
#[rtype(result = "Result<Delivery, WebhookError>")]
pub struct RetryDelivery {
    pub id: String,
    pub delivery_id: i64,
    /// Who does it (the audit entry's actor).
    pub caller: Caller,
}

/// Attempts finished since this process started, by outcome, and the deliveries waiting.
#[derive(Message)]
#[rtype(result = "Result<DispatchStats, WebhookError>")]
pub struct GetDispatchStats;

/// The answer to [`GetDispatchStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchStats {
    /// Attempts that delivered.
    pub delivered: u64,
    /// Failed attempts that will be retried.
    pub retrying: u64,
    /// Failed attempts that gave up (last attempt, or a status that is not retried).
    pub failed: u64,
    /// Deliveries pending now.
    pub queue_depth: u64,
}
