//! `rules`: validation rules, keyed by (project, rule_id); `_global` applies everywhere.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub rule_id: String,
    /// `error` or `warning`.
    pub severity: String,
    /// `regex`, `missing` or `custom` (others are stored and never fire).
    pub match_type: String,
    pub pattern: String,
    pub message: String,
    /// Filename globs as a JSON array of strings.
    pub applies_to: String,
    pub stack: String,
    /// `local`, `learned` or `external`.
    pub source: String,
    /// `accepted`, `proposed` or `rejected`.
    pub status: String,
    pub proposed_by: String,
    pub context: String,
    /// Unix time in microseconds (UTC).
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
