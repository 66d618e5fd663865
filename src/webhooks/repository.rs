//! SeaORM access to `webhooks` and `webhook_deliveries`. Private to the webhooks domain:
//! only `WebhookDispatcher` uses it.

use crate::batch::commit_with;
use crate::journal::{Records, Stamped};
use entities::webhook::{self, Entity as Hooks};
use entities::webhook_delivery::{self, Column as D, Entity as Deliveries};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::model::{Delivery, DeliveryState, Webhook};

/// Rows per multi-row insert of deliveries.
const CHUNK: usize = 500;

/// A delivery to create.
pub struct NewDelivery {
    pub webhook_id: String,
    pub event_id: i64,
    pub topic: String,
    pub message_id: String,
    pub body: String,
}

/// What one attempt changes: the delivery row and the webhook's counters.
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub state: DeliveryState,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: String,
    pub next_attempt_at: Option<i64>,
    pub webhook: Webhook,
}

/// Handle to the webhook tables (cheap to clone: a pool handle).
#[derive(Clone)]
pub struct WebhookRepository {
    db: DatabaseConnection,
}

fn hook_from(m: webhook::Model) -> Webhook {
    Webhook {
        patterns: serde_json::from_str(&m.patterns).unwrap_or_default(),
        id: m.id,
        url: m.url,
        secret: m.secret,
        active: m.active,
        fail_count: m.fail_count,
        last_fired: m.last_fired,
        created_at: m.created_at,
        cursor: m.cursor,
    }
}

fn hook_active(h: &Webhook) -> webhook::ActiveModel {
    webhook::ActiveModel {
        id: Set(h.id.clone()),
        url: Set(h.url.clone()),
        patterns: Set(serde_json::to_string(&h.patterns).unwrap_or_else(|_| "[]".into())),
        secret: Set(h.secret.clone()),
        active: Set(h.active),
        fail_count: Set(h.fail_count),
        last_fired: Set(h.last_fired),
        created_at: Set(h.created_at),
        cursor: Set(h.cursor),
    }
}

fn delivery_from(m: webhook_delivery::Model) -> Delivery {
    Delivery {
        state: DeliveryState::parse(&m.state),
        id: m.id,
        webhook_id: m.webhook_id,
        event_id: m.event_id,
        topic: m.topic,
        message_id: m.message_id,
        body: m.body,
        attempts: m.attempts,
        last_status: m.last_status,
        last_error: m.last_error,
        next_attempt_at: m.next_attempt_at,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

impl WebhookRepository {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Every webhook: the dispatcher's memory at start-up.
    pub async fn load_all(&self) -> Result<Vec<Webhook>, DbErr> {
        Ok(Hooks::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(hook_from)
            .collect())
    }

    /// Inserts a new webhook or replaces the stored state of one, in one transaction with
    /// `records`.
    pub async fn save(&self, h: &Webhook, records: Records, now: i64) -> Result<Stamped, DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        Hooks::insert(hook_active(h))
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(webhook::Column::Id)
                    .update_columns([
                        webhook::Column::Url,
                        webhook::Column::Patterns,
                        webhook::Column::Secret,
                        webhook::Column::Active,
                        webhook::Column::FailCount,
                        webhook::Column::LastFired,
                        webhook::Column::Cursor,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        commit_with(txn, records, now).await
    }

    /// Deletes a webhook and all its deliveries, in one transaction with `records`.
    pub async fn delete(&self, id: &str, records: Records, now: i64) -> Result<Stamped, DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        Deliveries::delete_many()
            .filter(D::WebhookId.eq(id))
            .exec(&txn)
            .await?;
        Hooks::delete_by_id(id.to_string()).exec(&txn).await?;
        commit_with(txn, records, now).await
    }

    /// In one transaction: records new deliveries (pending, due at `now`) and moves the
    /// cursors. Nothing is lost between the two: both commit or neither does.
    pub async fn enqueue(
        &self,
        new: Vec<NewDelivery>,
        cursors: &[(String, i64)],
        now: i64,
    ) -> Result<(), DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        let mut rows = new.into_iter().map(|d| webhook_delivery::ActiveModel {
            webhook_id: Set(d.webhook_id),
            event_id: Set(d.event_id),
            topic: Set(d.topic),
            message_id: Set(d.message_id),
            body: Set(d.body),
            state: Set(DeliveryState::Pending.as_str().into()),
            attempts: Set(0),
            last_status: Set(None),
            last_error: Set(String::new()),
            next_attempt_at: Set(Some(now)),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        });
        loop {
            let chunk: Vec<_> = rows.by_ref().take(CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            Deliveries::insert_many(chunk)
                .exec_without_returning(&txn)
                .await?;
        }
        for (id, cursor) in cursors {
            Hooks::update_many()
                .col_expr(webhook::Column::Cursor, Expr::value(*cursor))
                .filter(webhook::Column::Id.eq(id.as_str()))
                .exec(&txn)
                .await?;
        }
        txn.commit().await
    }

    /// Deliveries waiting to be attempted, across all webhooks.
    pub async fn pending_count(&self) -> Result<u64, DbErr> {
        Deliveries::find()
            .filter(D::State.eq(DeliveryState::Pending.as_str()))
            .count(&self.db)
            .await
    }

    /// The oldest pending delivery of a webhook (the head of its queue).
    pub async fn head(&self, webhook_id: &str) -> Result<Option<Delivery>, DbErr> {
        Ok(Deliveries::find()
            .filter(D::WebhookId.eq(webhook_id))
            .filter(D::State.eq(DeliveryState::Pending.as_str()))
            .order_by_asc(D::Id)
            .one(&self.db)
            .await?
            .map(delivery_from))
    }

    /// Stores the outcome of an attempt and the webhook's new counters, together.
    pub async fn record(&self, r: &AttemptRecord, now: i64) -> Result<(), DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        Deliveries::update_many()
            .col_expr(D::State, Expr::value(r.state.as_str()))
            .col_expr(D::Attempts, Expr::value(r.attempts))
            .col_expr(D::LastStatus, Expr::value(r.last_status))
            .col_expr(D::LastError, Expr::value(r.last_error.clone()))
            .col_expr(D::NextAttemptAt, Expr::value(r.next_attempt_at))
            .col_expr(D::UpdatedAt, Expr::value(now))
            .filter(D::Id.eq(r.delivery_id))
            .exec(&txn)
            .await?;
        // The webhook may have been deleted meanwhile: update_many then changes nothing.
        Hooks::update_many()
            .col_expr(webhook::Column::Active, Expr::value(r.webhook.active))
            .col_expr(
                webhook::Column::FailCount,
                Expr::value(r.webhook.fail_count),
            )
            .col_expr(
                webhook::Column::LastFired,
                Expr::value(r.webhook.last_fired),
            )
            .filter(webhook::Column::Id.eq(r.webhook.id.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await
    }

    /// Up to `limit` deliveries of a webhook, newest first.
    pub async fn list(&self, webhook_id: &str, limit: u64) -> Result<Vec<Delivery>, DbErr> {
        Ok(Deliveries::find()
            .filter(D::WebhookId.eq(webhook_id))
            .order_by_desc(D::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(delivery_from)
            .collect())
    }

    /// Makes a delivery pending again, due now, with its attempt count reset, in one
    /// transaction with `records`; `None` (and nothing written) when there is no such
    /// delivery.
    pub async fn retry(
        &self,
        webhook_id: &str,
        delivery_id: i64,
        records: Records,
        now: i64,
    ) -> Result<Option<(Delivery, Stamped)>, DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        let res = Deliveries::update_many()
            .col_expr(D::State, Expr::value(DeliveryState::Pending.as_str()))
            .col_expr(D::Attempts, Expr::value(0i64))
            .col_expr(D::NextAttemptAt, Expr::value(Some(now)))
            .col_expr(D::UpdatedAt, Expr::value(now))
            .filter(D::Id.eq(delivery_id))
            .filter(D::WebhookId.eq(webhook_id))
            .exec(&txn)
            .await?;
        if res.rows_affected == 0 {
            return Ok(None);
        }
        let Some(delivery) = Deliveries::find_by_id(delivery_id).one(&txn).await? else {
            return Ok(None);
        };
        let stamped = commit_with(txn, records, now).await?;
        Ok(Some((delivery_from(delivery), stamped)))
    }
}
