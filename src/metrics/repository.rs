//! SeaORM access to `agent_metrics`. Private to the metrics domain: `AgentMetrics` uses
//! it, and [`super::record_in`] lends its upsert to another domain's transaction.

use std::collections::BTreeMap;

use entities::agent_metric::{Column, Entity};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, Set,
};

use super::model::{AgentTotals, MetricRow};

/// Rows per multi-row upsert (4 bound values each).
const UPSERT_CHUNK: usize = 1000;

/// One merged increment: (instance, metric, period) += value.
pub type Increment = ((String, String, String), i64);

/// Handle to the agent metrics table (cheap to clone: a pool handle).
#[derive(Clone)]
pub struct MetricsRepository {
    db: DatabaseConnection,
}

/// Restricts `q` to periods starting with `prefix` (a range, so no LIKE escaping):
/// every period is ASCII, so it sorts below `prefix` followed by U+10FFFF.
fn in_period(q: Select<Entity>, prefix: Option<&str>) -> Select<Entity> {
    match prefix.filter(|p| !p.is_empty()) {
        Some(p) => q
            .filter(Column::Period.gte(p))
            .filter(Column::Period.lt(format!("{p}\u{10FFFF}"))),
        None => q,
    }
}

impl MetricsRepository {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// One agent's rows, period descending then metric name.
    pub async fn detail(
        &self,
        instance_id: &str,
        period: Option<&str>,
    ) -> Result<Vec<MetricRow>, DbErr> {
        let q = Entity::find().filter(Column::InstanceId.eq(instance_id));
        let rows = in_period(q, period)
            .order_by_desc(Column::Period)
            .order_by_asc(Column::MetricName)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|m| MetricRow {
                instance_id: m.instance_id,
                metric_name: m.metric_name,
                metric_value: m.value,
                period: m.period,
            })
            .collect())
    }

    /// Every agent's counters summed over the matching periods, instance ascending.
    pub async fn summary(&self, period: Option<&str>) -> Result<Vec<AgentTotals>, DbErr> {
        let rows: Vec<(String, String, i64)> = in_period(Entity::find(), period)
            .select_only()
            .column(Column::InstanceId)
            .column(Column::MetricName)
            .column_as(Expr::cust("CAST(SUM(value) AS BIGINT)"), "total")
            .group_by(Column::InstanceId)
            .group_by(Column::MetricName)
            .order_by_asc(Column::InstanceId)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut out: Vec<AgentTotals> = Vec::new();
        for (instance_id, metric, total) in rows {
            match out.last_mut() {
                Some(last) if last.instance_id == instance_id => {
                    last.metrics.insert(metric, total);
                }
                _ => out.push(AgentTotals {
                    instance_id,
                    metrics: BTreeMap::from([(metric, total)]),
                }),
            }
        }
        Ok(out)
    }
}

/// Adds `increments` through `conn` (a transaction the caller commits): insert, or add to
/// the stored value.
pub async fn add_in<C: ConnectionTrait>(conn: &C, increments: Vec<Increment>) -> Result<(), DbErr> {
    let mut rest = increments;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(UPSERT_CHUNK));
        let chunk = std::mem::replace(&mut rest, tail);
        let rows = chunk
            .into_iter()
            .map(|((instance_id, metric_name, period), value)| {
                entities::agent_metric::ActiveModel {
                    instance_id: Set(instance_id),
                    metric_name: Set(metric_name),
                    period: Set(period),
                    value: Set(value),
                }
            });
        Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([Column::InstanceId, Column::MetricName, Column::Period])
                    .value(
                        Column::Value,
                        Expr::col((Entity, Column::Value)).add(Expr::cust("excluded.value")),
                    )
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}
