//! SeaORM access to `instances`. Private to the instances domain: only
//! `InstanceRegistry` uses it.

use std::sync::Arc;

use entities::instance::{self, Column, Entity};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
};

use super::model::{Instance, Status};
use crate::metrics::RecordMetrics;

/// Rows per multi-row upsert (11 bound values each, far under SQLite's variable limit).
const UPSERT_CHUNK: usize = 500;

/// Handle to the instances table (cheap to clone: a pool handle).
#[derive(Clone)]
pub struct InstanceRepository {
    db: DatabaseConnection,
}

fn from_model(m: instance::Model) -> Instance {
    Instance {
        profile: serde_json::from_str(&m.profile).unwrap_or_default(),
        capabilities: serde_json::from_str(&m.capabilities).unwrap_or_default(),
        status: Status::parse(&m.status),
        id: m.id,
        name: m.name,
        workspace: m.workspace,
        intent: m.intent,
        stack: m.stack,
        token_hash: m.token_hash,
        registered_at: m.registered_at,
        last_seen: m.last_seen,
    }
}

fn to_active(i: &Instance) -> instance::ActiveModel {
    instance::ActiveModel {
        id: Set(i.id.clone()),
        name: Set(i.name.clone()),
        workspace: Set(i.workspace.clone()),
        intent: Set(i.intent.clone()),
        stack: Set(i.stack.clone()),
        capabilities: Set(serde_json::to_string(&i.capabilities).unwrap_or_else(|_| "[]".into())),
        status: Set(i.status.as_str().to_string()),
        token_hash: Set(i.token_hash.clone()),
        registered_at: Set(i.registered_at),
        last_seen: Set(i.last_seen),
        profile: Set(serde_json::to_string(&i.profile).unwrap_or_else(|_| "{}".into())),
    }
}

impl InstanceRepository {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Every instance: the registry's memory at start-up.
    pub async fn load_all(&self) -> Result<Vec<Instance>, DbErr> {
        Ok(Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(from_model)
            .collect())
    }

    /// Stores the final state of every instance a batch touched through `txn` (which the
    /// caller commits): `Some` rows are inserted or replaced, `None` ids are deleted, and
    /// the batch's `heartbeats` increments are added in the same transaction.
    pub async fn persist<C: ConnectionTrait>(
        txn: &C,
        changed: &[(String, Option<Arc<Instance>>)],
        counted: &[RecordMetrics],
    ) -> Result<(), DbErr> {
        let upserts: Vec<instance::ActiveModel> = changed
            .iter()
            .filter_map(|(_, i)| i.as_deref().map(to_active))
            .collect();
        let deletes: Vec<&str> = changed
            .iter()
            .filter(|(_, i)| i.is_none())
            .map(|(id, _)| id.as_str())
            .collect();
        let mut rest = upserts;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(UPSERT_CHUNK));
            let chunk = std::mem::replace(&mut rest, tail);
            Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::column(Column::Id)
                        .update_columns([
                            Column::Name,
                            Column::Workspace,
                            Column::Intent,
                            Column::Stack,
                            Column::Capabilities,
                            Column::Status,
                            Column::TokenHash,
                            Column::RegisteredAt,
                            Column::LastSeen,
                            Column::Profile,
                        ])
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
        crate::metrics::record_in(txn, counted).await
    }
}
