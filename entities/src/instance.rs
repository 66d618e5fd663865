//! `instances`: the agent registry. Tokens are stored only as their SHA-256 digest; the
//! plain token is returned once, at registration.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "instances")]
pub struct Model {
    /// UUID v4, lowercase, hyphenated.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub workspace: String,
    pub intent: String,
    pub stack: String,
    /// The capabilities as a JSON array of strings.
    pub capabilities: String,
    /// `pending`, `active` or `stale`.
    pub status: String,
    /// Lowercase hex SHA-256 of the instance token.
    pub token_hash: String,
    /// Unix time in microseconds (UTC).
    pub registered_at: i64,
    /// Unix time in microseconds (UTC).
    pub last_seen: i64,
    /// Parent, labels, build, endpoints, health and progress as one JSON object
    /// (`{}` when none was given).
    pub profile: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
