//! `state_versions`: every version of every state key, appended under an increasing `id`.
//! Each version links to its key's previous one (`prev_id`), and `state_heads` names each
//! key's current version; a key's history is the chain that starts at its head. Deleting a
//! key deletes its chain and its head. `spec_versions` (with `spec_heads`, key =
//! `project/name`) has the same columns and is read through this model too.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "state_versions")]
pub struct Model {
    /// Assigned by the store, increasing with every version written.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    pub key: String,
    pub version: i64,
    #[sea_orm(column_type = "Blob")]
    pub value: Vec<u8>,
    /// Lowercase hex SHA-256 of `value`.
    pub hash: String,
    pub content_type: String,
    /// Unix time in microseconds (UTC).
    pub updated_at: i64,
    /// The `Koor-Fencing-Token` the version was written with (API §22), if any.
    pub fencing_token: Option<i64>,
    /// The `id` of the key's previous version; `None` for the first one (or once the
    /// previous ones have been pruned, the link may name a row that no longer exists).
    pub prev_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
