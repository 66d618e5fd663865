//! SeaORM access to `templates`. Private to the templates domain.

use crate::batch::commit_with;
use crate::journal::{Records, Stamped};
use entities::template::{self, Entity};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, Set};

use super::model::Template;

/// Handle to the templates table (cheap to clone: a pool handle).
#[derive(Clone)]
pub struct TemplateRepository {
    db: DatabaseConnection,
}

impl TemplateRepository {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Every template: the library's memory at start-up.
    pub async fn load_all(&self) -> Result<Vec<Template>, DbErr> {
        Ok(Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| Template {
                data: serde_json::from_str(&m.data).unwrap_or_default(),
                tags: serde_json::from_str(&m.tags).unwrap_or_default(),
                id: m.id,
                name: m.name,
                description: m.description,
                kind: m.kind,
                version: m.version,
                created_at: m.created_at,
                updated_at: m.updated_at,
            })
            .collect())
    }

    /// Inserts a new template, in one transaction with `records`.
    pub async fn insert(&self, t: &Template, records: Records, now: i64) -> Result<Stamped, DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        Entity::insert(template::ActiveModel {
            id: Set(t.id.clone()),
            name: Set(t.name.clone()),
            description: Set(t.description.clone()),
            kind: Set(t.kind.clone()),
            data: Set(t.data.to_string()),
            tags: Set(serde_json::to_string(&t.tags).unwrap_or_else(|_| "[]".into())),
            version: Set(t.version),
            created_at: Set(t.created_at),
            updated_at: Set(t.updated_at),
        })
        .exec_without_returning(&txn)
        .await?;
        commit_with(txn, records, now).await
    }

    /// Deletes a template, in one transaction with `records`.
    pub async fn delete(&self, id: &str, records: Records, now: i64) -> Result<Stamped, DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        Entity::delete_by_id(id.to_string()).exec(&txn).await?;
        commit_with(txn, records, now).await
    }

    /// Commits `records` alone: the audit entry of an application that changed nothing.
    pub async fn record(&self, records: Records, now: i64) -> Result<Stamped, DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        commit_with(txn, records, now).await
    }
}
