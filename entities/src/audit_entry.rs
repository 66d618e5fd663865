//! `audit_log`: the append-only, hash-chained record of successful mutations.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    /// Dense from 1, assigned by the audit log in commit order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    /// Unix time in microseconds (UTC).
    pub timestamp: i64,
    pub actor: String,
    pub action: String,
    pub resource: String,
    /// A JSON object as text.
    pub detail: String,
    pub outcome: String,
    /// Hex SHA-256 over this entry's content and the previous entry's hash.
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
