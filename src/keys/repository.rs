//! SeaORM access to `access_keys`. Private to the keys domain: only `KeyStore` uses it.

use entities::access_key::{self, Column, Entity};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Set,
};

use super::model::{KeyRecord, Scope};

fn from_model(m: access_key::Model) -> KeyRecord {
    let scopes: Vec<String> = serde_json::from_str(&m.scopes).unwrap_or_default();
    KeyRecord {
        scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        projects: m
            .projects
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok()),
        id: m.id,
        name: m.name,
        digest: m.digest,
        expires_at: m.expires_at,
        rate_limit: m.rate_limit,
        created_at: m.created_at,
        last_used_at: m.last_used_at,
        revoked_at: m.revoked_at,
    }
}

fn to_active(k: &KeyRecord) -> access_key::ActiveModel {
    let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
    access_key::ActiveModel {
        id: Set(k.id.clone()),
        name: Set(k.name.clone()),
        digest: Set(k.digest.clone()),
        scopes: Set(serde_json::to_string(&scopes).unwrap_or_else(|_| "[]".into())),
        projects: Set(k
            .projects
            .as_ref()
            .and_then(|p| serde_json::to_string(p).ok())),
        expires_at: Set(k.expires_at),
        rate_limit: Set(k.rate_limit),
        created_at: Set(k.created_at),
        last_used_at: Set(k.last_used_at),
        revoked_at: Set(k.revoked_at),
    }
}

/// Every stored key, revoked ones included.
pub async fn load_all(db: &DatabaseConnection) -> Result<Vec<KeyRecord>, DbErr> {
    Ok(Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(from_model)
        .collect())
}

/// Inserts a new key.
pub async fn insert<C: ConnectionTrait>(txn: &C, key: &KeyRecord) -> Result<(), DbErr> {
    to_active(key).insert(txn).await.map(|_| ())
}

/// Marks key `id` revoked at `at`.
pub async fn revoke<C: ConnectionTrait>(txn: &C, id: &str, at: i64) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::RevokedAt, sea_orm::sea_query::Expr::value(at))
        .filter(Column::Id.eq(id))
        .exec(txn)
        .await
        .map(|_| ())
}

/// Replaces key `id`'s digest.
pub async fn rotate<C: ConnectionTrait>(txn: &C, id: &str, digest: &str) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Digest, sea_orm::sea_query::Expr::value(digest))
        .filter(Column::Id.eq(id))
        .exec(txn)
        .await
        .map(|_| ())
}
