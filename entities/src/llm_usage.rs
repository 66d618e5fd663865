//! `llm_usage`: one row per LLM request an agent reported. Ids come from SQLite
//! AUTOINCREMENT, so they strictly increase and are never reused.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "llm_usage")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The reporting agent's instance id (`""` when none).
    pub instance_id: String,
    pub project: String,
    pub provider: String,
    pub model: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// US dollars.
    pub cost_usd: f64,
    /// `completion` or `embedding`.
    pub request_type: String,
    pub session_tag: String,
    /// Unix time in microseconds (UTC).
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
