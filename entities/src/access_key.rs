//! `access_keys`: every access key ever created (API §25). Revoked keys keep their row
//! with `revoked_at` set; the secret itself is never stored, only its SHA-256 digest.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "access_keys")]
pub struct Model {
    /// UUID v4, lowercase, hyphenated.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Unique among keys not revoked.
    pub name: String,
    /// Lowercase hex SHA-256 of the secret.
    pub digest: String,
    /// JSON array of `read`, `write`, `admin`.
    pub scopes: String,
    /// JSON array of project names, or NULL for every project.
    pub projects: Option<String>,
    /// Unix time in microseconds (UTC).
    pub expires_at: Option<i64>,
    /// Requests per second.
    pub rate_limit: Option<f64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
