//! `compliance_runs`: one row per contract checked for an instance in a compliance pass.
//! Ids are assigned in order by the compliance worker and never reused.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "compliance_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub instance_id: String,
    pub project: String,
    pub contract: String,
    pub pass: bool,
    /// The violations as a JSON array of `{"path", "message"}`.
    pub violations: String,
    /// Unix time in microseconds (UTC).
    pub run_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
