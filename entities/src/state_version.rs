//! `state_versions`: every version of every state key. The current value of a key is
//! its row with the highest version; deleting a key deletes all of its rows.
//! `spec_versions` has the same columns (key = `project/name`) and is read through this
//! model too.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "state_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    #[sea_orm(primary_key, auto_increment = false)]
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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
