//! SeaORM access to `compliance_runs`. Private to the compliance domain: only
//! `ComplianceMonitor` uses it.

use entities::compliance_run::{self, Column, Entity};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::model::ComplianceRun;
use crate::batch::commit_with;
use crate::journal::{Records, Stamped};
use crate::metrics::RecordMetrics;

/// Handle to the compliance runs table (cheap to clone: a pool handle).
#[derive(Clone)]
pub struct RunRepository {
    db: DatabaseConnection,
}

impl RunRepository {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Stores the runs of one pass, their agent metrics and `records` (the violation
    /// events) in one transaction, and sets the runs' ids.
    pub async fn insert(
        &self,
        runs: &mut [ComplianceRun],
        counted: &[RecordMetrics],
        records: Records,
        now: i64,
    ) -> Result<Stamped, DbErr> {
        let txn = crate::db::begin_write(&self.db).await?;
        for run in runs.iter_mut() {
            let row = compliance_run::ActiveModel {
                instance_id: Set(run.instance_id.clone()),
                project: Set(run.project.clone()),
                contract: Set(run.contract.clone()),
                pass: Set(run.pass),
                violations: Set(
                    serde_json::to_string(&run.violations).unwrap_or_else(|_| "[]".into())
                ),
                run_at: Set(run.run_at),
                ..Default::default()
            };
            run.id = Entity::insert(row).exec(&txn).await?.last_insert_id;
        }
        crate::metrics::record_in(&txn, counted).await?;
        commit_with(txn, records, now).await
    }

    /// Up to `limit` runs, newest first, optionally of one instance.
    pub async fn history(
        &self,
        instance_id: Option<&str>,
        limit: u64,
    ) -> Result<Vec<ComplianceRun>, DbErr> {
        let mut q = Entity::find().order_by_desc(Column::Id).limit(limit);
        if let Some(id) = instance_id {
            q = q.filter(Column::InstanceId.eq(id));
        }
        Ok(q.all(&self.db)
            .await?
            .into_iter()
            .map(|m| ComplianceRun {
                id: m.id,
                violations: serde_json::from_str(&m.violations).unwrap_or_default(),
                instance_id: m.instance_id,
                project: m.project,
                contract: m.contract,
                pass: m.pass,
                run_at: m.run_at,
            })
            .collect())
    }
}
