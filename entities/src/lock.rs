//! `locks`: held reservations of files and other resources (API §24). A row exists while the
//! lock is held or until the lock table notices it expired; released locks are deleted.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "locks")]
pub struct Model {
    /// UUID v4, lowercase, hyphenated.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The normalised resource pattern.
    pub resource: String,
    /// `exclusive` or `shared`.
    pub mode: String,
    /// The holding instance's id.
    pub holder: String,
    /// The fencing token drawn when the lock was acquired.
    pub token: i64,
    pub reason: String,
    /// The last ttl asked for, in microseconds.
    pub ttl_micros: i64,
    /// Unix time in microseconds (UTC).
    pub acquired_at: i64,
    /// Unix time in microseconds (UTC).
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
