//! `tasks`: the work queue (API §23). The lease columns are non-null exactly while the
//! task is `leased`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    /// UUID v4, lowercase, hyphenated.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Creation order, unique.
    pub seq: i64,
    pub queue: String,
    /// The payload as JSON text.
    pub payload: String,
    pub priority: i64,
    /// `queued`, `leased`, `failed`, `done`, `dead` or `cancelled`.
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    /// Default lease length in seconds.
    pub lease_seconds: f64,
    /// Unix time in microseconds (UTC).
    pub not_before: Option<i64>,
    /// The required capabilities as a JSON array of strings.
    pub requires: String,
    pub task_group: Option<String>,
    pub idempotency_key: Option<String>,
    pub lease_holder: Option<String>,
    pub lease_token: Option<i64>,
    /// Unix time in microseconds (UTC).
    pub lease_expires_at: Option<i64>,
    /// The current lease's length in seconds (what a renewal extends by by default).
    pub lease_length: Option<f64>,
    /// The result as JSON text (NULL for null).
    pub result: Option<String>,
    pub error: Option<String>,
    /// Unix time in microseconds (UTC).
    pub created_at: i64,
    /// Unix time in microseconds (UTC).
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
