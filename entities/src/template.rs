//! `templates`: reusable bundles of rules or contracts, applied to projects.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "templates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub description: String,
    /// `rules`, `contracts` or `bundle`.
    pub kind: String,
    /// The template's data as JSON text, exactly the value supplied.
    pub data: String,
    /// JSON array of strings.
    pub tags: String,
    pub version: i64,
    /// Unix time in microseconds (UTC).
    pub created_at: i64,
    /// Unix time in microseconds (UTC).
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
