//! `llm_budgets`: spending limits per project or instance, with the period in which each
//! crossing (80 % warning, 100 % exceeded) was last announced.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "llm_budgets")]
pub struct Model {
    /// `project:NAME` or `instance:ID`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    /// `day` or `month` (UTC).
    pub period: String,
    pub max_tokens: Option<i64>,
    pub max_cost_usd: Option<f64>,
    /// Key of the period (`2026-11-21` / `2026-11`) whose warning was announced; `""` if none.
    pub warned_period: String,
    /// Key of the period whose exceeded announcement was made; `""` if none.
    pub exceeded_period: String,
    /// Unix time in microseconds (UTC).
    pub created_at: i64,
    /// Unix time in microseconds (UTC).
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
