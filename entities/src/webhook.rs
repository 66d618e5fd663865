//! `webhooks`: registered receivers. `cursor` is the id of the last event the dispatcher
//! has turned into deliveries for this webhook, so no committed event is ever skipped.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub url: String,
    /// Topic patterns as a JSON array of strings.
    pub patterns: String,
    /// Signing secret ("" = unsigned). Never returned by the API.
    pub secret: String,
    pub active: bool,
    pub fail_count: i64,
    /// Unix time in microseconds of the last successful delivery.
    pub last_fired: Option<i64>,
    /// Unix time in microseconds (UTC).
    pub created_at: i64,
    pub cursor: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
