//! SeaORM access to `rules`. Private to the rules domain: only `RuleBook` uses it.

use entities::rule::{self, Column, Entity};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};

use super::model::Rule;
use crate::batch::commit_with;
use crate::journal::{Records, Stamped};

/// Rows per multi-row insert (13 bound values each).
const CHUNK: usize = 500;

/// Handle to the rules table (cheap to clone: a pool handle).
#[derive(Clone)]
pub struct RuleRepository {
    db: DatabaseConnection,
}

fn from_model(m: rule::Model) -> Rule {
    Rule {
        applies_to: serde_json::from_str(&m.applies_to).unwrap_or_default(),
        project: m.project,
        rule_id: m.rule_id,
        severity: m.severity,
        match_type: m.match_type,
        pattern: m.pattern,
        message: m.message,
        stack: m.stack,
        source: m.source,
        status: m.status,
        proposed_by: m.proposed_by,
        context: m.context,
        created_at: m.created_at,
    }
}

fn to_active(r: &Rule) -> rule::ActiveModel {
    rule::ActiveModel {
        project: Set(r.project.clone()),
        rule_id: Set(r.rule_id.clone()),
        severity: Set(r.severity.clone()),
        match_type: Set(r.match_type.clone()),
        pattern: Set(r.pattern.clone()),
        message: Set(r.message.clone()),
        applies_to: Set(serde_json::to_string(&r.applies_to).unwrap_or_else(|_| "[]".into())),
        stack: Set(r.stack.clone()),
        source: Set(r.source.clone()),
        status: Set(r.status.clone()),
        proposed_by: Set(r.proposed_by.clone()),
        context: Set(r.context.clone()),
        created_at: Set(r.created_at),
    }
}

impl RuleRepository {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Every rule: the rule book's memory at start-up.
    pub async fn load_all(&self) -> Result<Vec<Rule>, DbErr> {
        Ok(Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(from_model)
            .collect())
    }

    /// In one transaction with `records`: deletes every rule of `clear_project` (when
    /// given), then inserts or replaces `rules`.
    pub async fn write(
        &self,
        clear_project: Option<&str>,
        rules: &[Rule],
        records: Records,
        now: i64,
    ) -> Result<Stamped, DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        if let Some(project) = clear_project {
            Entity::delete_many()
                .filter(Column::Project.eq(project))
                .exec(&txn)
                .await?;
        }
        for chunk in rules.chunks(CHUNK) {
            Entity::insert_many(chunk.iter().map(to_active))
                .on_conflict(
                    OnConflict::columns([Column::Project, Column::RuleId])
                        .update_columns([
                            Column::Severity,
                            Column::MatchType,
                            Column::Pattern,
                            Column::Message,
                            Column::AppliesTo,
                            Column::Stack,
                            Column::Source,
                            Column::Status,
                            Column::ProposedBy,
                            Column::Context,
                            Column::CreatedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        commit_with(txn, records, now).await
    }

    /// Deletes one rule, in one transaction with `records`.
    pub async fn delete(
        &self,
        project: &str,
        rule_id: &str,
        records: Records,
        now: i64,
    ) -> Result<Stamped, DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        Entity::delete_many()
            .filter(Column::Project.eq(project))
            .filter(Column::RuleId.eq(rule_id))
            .exec(&txn)
            .await?;
        commit_with(txn, records, now).await
    }
}
