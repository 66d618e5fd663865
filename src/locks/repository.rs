//! SeaORM access to `locks`. Private to the locks domain: only `LockTable` uses it.

use std::sync::Arc;

use entities::lock::{self, Column, Entity};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
};

use super::glob::Pattern;
use super::model::{Lock, Mode};

/// Rows per multi-row upsert (9 bound values each, far under SQLite's variable limit).
const UPSERT_CHUNK: usize = 500;

fn from_model(m: lock::Model) -> Option<Lock> {
    let resource = match Pattern::parse(&m.resource) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(id = %m.id, resource = %m.resource, error = %e, "stored lock skipped");
            return None;
        }
    };
    Some(Lock {
        resource,
        mode: Mode::parse(&m.mode).unwrap_or(Mode::Exclusive),
        id: m.id,
        holder: m.holder,
        token: m.token,
        reason: m.reason,
        ttl_micros: m.ttl_micros,
        acquired_at: m.acquired_at,
        expires_at: m.expires_at,
    })
}

fn to_active(l: &Lock) -> lock::ActiveModel {
    lock::ActiveModel {
        id: Set(l.id.clone()),
        resource: Set(l.resource.as_str().to_string()),
        mode: Set(l.mode.as_str().to_string()),
        holder: Set(l.holder.clone()),
        token: Set(l.token),
        reason: Set(l.reason.clone()),
        ttl_micros: Set(l.ttl_micros),
        acquired_at: Set(l.acquired_at),
        expires_at: Set(l.expires_at),
    }
}

/// Every stored lock (the lock table's memory at start-up; expired ones included, the
/// first sweep ends them).
pub async fn load_all(db: &DatabaseConnection) -> Result<Vec<Lock>, DbErr> {
    Ok(Entity::find()
        .all(db)
        .await?
        .into_iter()
        .filter_map(from_model)
        .collect())
}

/// Stores the final state of every lock a batch touched through `txn` (which the caller
/// commits): `Some` rows are inserted or replaced (a renewal), `None` ids are deleted.
pub async fn persist<C: ConnectionTrait>(
    txn: &C,
    changed: &[(String, Option<Arc<Lock>>)],
) -> Result<(), DbErr> {
    let upserts: Vec<lock::ActiveModel> = changed
        .iter()
        .filter_map(|(_, l)| l.as_deref().map(to_active))
        .collect();
    let deletes: Vec<&str> = changed
        .iter()
        .filter(|(_, l)| l.is_none())
        .map(|(id, _)| id.as_str())
        .collect();
    for chunk in upserts.chunks(UPSERT_CHUNK) {
        Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(Column::Id)
                    .update_columns([Column::TtlMicros, Column::ExpiresAt])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    for chunk in deletes.chunks(UPSERT_CHUNK) {
        Entity::delete_many()
            .filter(Column::Id.is_in(chunk.iter().copied()))
            .exec(txn)
            .await?;
    }
    Ok(())
}
