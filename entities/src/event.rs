//! `events`: the durable event log. Ids come from SQLite AUTOINCREMENT, so they are
//! strictly increasing and never reused, even after pruning.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub topic: String,
    /// The event's `data` as JSON text (`null` when none was given).
    pub data: String,
    pub source: String,
    /// Unix time in microseconds (UTC).
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
