//! `agent_metrics`: per-agent counters in hourly buckets. One row per
//! (instance, metric, UTC hour `YYYY-MM-DDTHH`); increments add to `value`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_metrics")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub instance_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub metric_name: String,
    /// UTC hour, `YYYY-MM-DDTHH`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub period: String,
    pub value: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
