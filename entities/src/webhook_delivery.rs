//! `webhook_deliveries`: the durable outbox. One row per (webhook, matching event), with
//! the exact body sent on every attempt and the stable `message_id` (`webhook-id`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub webhook_id: String,
    pub event_id: i64,
    pub topic: String,
    /// The `webhook-id` header: the same on every attempt of this delivery.
    pub message_id: String,
    /// The exact request body.
    pub body: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: String,
    /// Unix time in microseconds when the next attempt is due (pending only).
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
