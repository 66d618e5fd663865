//! SeaORM access to `llm_usage` and `llm_budgets`. Private to the LLM domain: only
//! `LlmLedger` uses it.

use std::collections::{BTreeMap, BTreeSet};

use entities::llm_budget;
use entities::llm_usage::{self, Column, Entity};
use sea_orm::sea_query::{Expr, OnConflict, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};

use super::model::{
    Budget, BudgetStatus, GroupBy, Level, LlmError, Period, Recorded, Scope, Selector, Spend,
    Totals, Usage, UsageFilter, UsageSummary,
};

/// Rows per multi-row INSERT (11 bound values each).
const INSERT_CHUNK: usize = 500;

/// One write of a batch, ready to commit (ids and times assigned).
#[derive(Debug)]
pub enum Write {
    Record(Usage),
    Put(Budget),
    Delete(Scope),
}

/// What a committed write did.
#[derive(Clone, Debug)]
pub enum Done {
    Recorded(Box<Recorded>),
    Budget(Box<BudgetStatus>),
    /// The budget of this scope was deleted.
    Deleted(Scope),
}

/// The answer to one write.
pub type Outcome = Result<Done, LlmError>;

/// A budget touched by a batch's records, with its running spend.
struct Tracked {
    budget: Budget,
    spend: Spend,
    announced: bool,
}

/// Handle to the LLM tables (cheap to clone: a pool handle).
#[derive(Clone)]
pub struct LlmRepository {
    db: DatabaseConnection,
}

fn usage_of(m: llm_usage::Model) -> Usage {
    Usage {
        id: m.id,
        instance_id: m.instance_id,
        project: m.project,
        provider: m.provider,
        model: m.model,
        tokens_in: m.tokens_in,
        tokens_out: m.tokens_out,
        cost_usd: m.cost_usd,
        request_type: m.request_type,
        session_tag: m.session_tag,
        created_at: m.created_at,
    }
}

fn usage_row(u: &Usage) -> llm_usage::ActiveModel {
    llm_usage::ActiveModel {
        id: Set(u.id),
        instance_id: Set(u.instance_id.clone()),
        project: Set(u.project.clone()),
        provider: Set(u.provider.clone()),
        model: Set(u.model.clone()),
        tokens_in: Set(u.tokens_in),
        tokens_out: Set(u.tokens_out),
        cost_usd: Set(u.cost_usd),
        request_type: Set(u.request_type.clone()),
        session_tag: Set(u.session_tag.clone()),
        created_at: Set(u.created_at),
    }
}

/// A stored budget; `None` (logged) for a row whose scope no longer parses.
fn budget_of(m: llm_budget::Model) -> Option<Budget> {
    let Ok(scope) = Scope::parse(&m.scope) else {
        tracing::warn!(scope = %m.scope, "ignoring a budget with an unreadable scope");
        return None;
    };
    Some(Budget {
        scope,
        period: Period::parse(&m.period).unwrap_or(Period::Day),
        max_tokens: m.max_tokens,
        max_cost_usd: m.max_cost_usd,
        warned_period: m.warned_period,
        exceeded_period: m.exceeded_period,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// The records a scope's budget counts.
fn scope_condition(scope: &Scope) -> SimpleExpr {
    match scope {
        Scope::Project(p) => Column::Project.eq(p.as_str()),
        Scope::Instance(i) => Column::InstanceId.eq(i.as_str()),
    }
}

/// What `scope` spent from `since` on, counting only ids below `before_id` when given.
async fn spend<C: ConnectionTrait>(
    conn: &C,
    scope: &Scope,
    since: i64,
    before_id: Option<i64>,
) -> Result<Spend, DbErr> {
    let mut q = Entity::find()
        .select_only()
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(tokens_in + tokens_out), 0) AS BIGINT)"),
            "tokens",
        )
        .column_as(Expr::cust("COALESCE(SUM(cost_usd), 0.0)"), "cost")
        .filter(scope_condition(scope))
        .filter(Column::CreatedAt.gte(since));
    if let Some(id) = before_id {
        q = q.filter(Column::Id.lt(id));
    }
    let row: Option<(i64, f64)> = q.into_tuple().one(conn).await?;
    let (tokens, cost_usd) = row.unwrap_or((0, 0.0));
    Ok(Spend { tokens, cost_usd })
}

async fn upsert_budget(txn: &DatabaseTransaction, b: &Budget) -> Result<(), DbErr> {
    use llm_budget::Column as B;
    llm_budget::Entity::insert(llm_budget::ActiveModel {
        scope: Set(b.scope.to_string()),
        period: Set(b.period.as_str().to_string()),
        max_tokens: Set(b.max_tokens),
        max_cost_usd: Set(b.max_cost_usd),
        warned_period: Set(b.warned_period.clone()),
        exceeded_period: Set(b.exceeded_period.clone()),
        created_at: Set(b.created_at),
        updated_at: Set(b.updated_at),
    })
    .on_conflict(
        OnConflict::column(B::Scope)
            .update_columns([
                B::Period,
                B::MaxTokens,
                B::MaxCostUsd,
                B::WarnedPeriod,
                B::ExceededPeriod,
                B::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

async fn delete_budget(txn: &DatabaseTransaction, scope: &Scope) -> Result<bool, DbErr> {
    let result = llm_budget::Entity::delete_by_id(scope.to_string())
        .exec(txn)
        .await?;
    Ok(result.rows_affected > 0)
}

async fn save_markers(txn: &DatabaseTransaction, b: &Budget) -> Result<(), DbErr> {
    use llm_budget::Column as B;
    llm_budget::Entity::update_many()
        .col_expr(B::WarnedPeriod, Expr::value(b.warned_period.clone()))
        .col_expr(B::ExceededPeriod, Expr::value(b.exceeded_period.clone()))
        .filter(B::Scope.eq(b.scope.to_string()))
        .exec(txn)
        .await?;
    Ok(())
}

impl LlmRepository {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The ids of up to `limit` records older than `before` (unix microseconds), oldest
    /// first; never the newest record (on PostgreSQL its id is where the id sequence
    /// continues after a restart).
    pub async fn prunable(&self, before: i64, limit: u64) -> Result<Vec<i64>, DbErr> {
        let newest: Option<i64> = Entity::find()
            .select_only()
            .column(Column::Id)
            .order_by_desc(Column::Id)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?;
        let Some(newest) = newest else {
            return Ok(Vec::new());
        };
        Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::CreatedAt.lt(before))
            .filter(Column::Id.lt(newest))
            .order_by_asc(Column::CreatedAt)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await
    }

    /// Deletes the records `ids` in one short write transaction; returns how many.
    pub async fn prune(&self, ids: &[i64]) -> Result<u64, DbErr> {
        if ids.is_empty() {
            return Ok(0);
        }
        let txn = crate::db::begin_write(&self.db).await?;
        let deleted = Entity::delete_many()
            .filter(Column::Id.is_in(ids.iter().copied()))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(deleted)
    }

    /// The highest record id ever assigned (0 if none).
    pub async fn last_id(&self) -> Result<i64, DbErr> {
        let backend = self.db.get_database_backend();
        let sql = crate::db::highest_id_sql(backend, "llm_usage");
        let row = self
            .db
            .query_one_raw(Statement::from_string(backend, sql))
            .await?;
        Ok(match row {
            Some(r) => r.try_get_by_index::<i64>(0)?,
            None => 0,
        })
    }

    /// Writes one batch through `txn` (which the caller commits) and returns each write's
    /// outcome, in order. Records are inserted first, then budget puts and deletes are applied in
    /// order; then every budget the records count against is checked record by record
    /// (spend before the batch plus the batch's records so far), and the crossings not yet
    /// announced in the current period are marked, so each is announced exactly once.
    pub async fn write_in(
        txn: &DatabaseTransaction,
        writes: &[Write],
        now: i64,
    ) -> Result<Vec<Outcome>, DbErr> {
        let records: Vec<&Usage> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Record(u) => Some(u),
                _ => None,
            })
            .collect();
        for chunk in records.chunks(INSERT_CHUNK) {
            Entity::insert_many(chunk.iter().map(|u| usage_row(u)))
                .exec_without_returning(txn)
                .await?;
        }

        let mut deleted = vec![false; writes.len()];
        for (i, w) in writes.iter().enumerate() {
            match w {
                Write::Put(b) => upsert_budget(txn, b).await?,
                Write::Delete(scope) => deleted[i] = delete_budget(txn, scope).await?,
                Write::Record(_) => {}
            }
        }

        let mut tracked: BTreeMap<Scope, Tracked> = BTreeMap::new();
        let scopes: BTreeSet<String> = records
            .iter()
            .flat_map(|u| u.scopes())
            .map(|s| s.to_string())
            .collect();
        if let (Some(first), false) = (records.first(), scopes.is_empty()) {
            let rows = llm_budget::Entity::find()
                .filter(llm_budget::Column::Scope.is_in(scopes))
                .all(txn)
                .await?;
            for budget in rows.into_iter().filter_map(budget_of) {
                let before =
                    spend(txn, &budget.scope, budget.period.start(now), Some(first.id)).await?;
                tracked.insert(
                    budget.scope.clone(),
                    Tracked {
                        budget,
                        spend: before,
                        announced: false,
                    },
                );
            }
        }
        let mut recorded = Vec::with_capacity(records.len());
        for u in &records {
            let mut r = Recorded {
                usage: (*u).clone(),
                exceeded: Vec::new(),
                announced: Vec::new(),
            };
            for scope in u.scopes() {
                let Some(t) = tracked.get_mut(&scope) else {
                    continue;
                };
                t.spend.add(u);
                let status = t.budget.status(t.spend, now);
                for topic in t.budget.announce(&status, now) {
                    t.announced = true;
                    r.announced.push((topic, status.clone()));
                }
                if status.status == Level::Exceeded {
                    r.exceeded.push(status.scope.clone());
                }
            }
            recorded.push(r);
        }
        for t in tracked.values().filter(|t| t.announced) {
            save_markers(txn, &t.budget).await?;
        }

        let mut outcomes = Vec::with_capacity(writes.len());
        let mut recorded = recorded.into_iter();
        for (i, w) in writes.iter().enumerate() {
            outcomes.push(match w {
                Write::Record(_) => match recorded.next() {
                    Some(r) => Ok(Done::Recorded(Box::new(r))),
                    None => Err(LlmError::Storage(
                        "a record went missing in its batch".into(),
                    )),
                },
                Write::Put(b) => {
                    let spent = spend(txn, &b.scope, b.period.start(now), None).await?;
                    Ok(Done::Budget(Box::new(b.status(spent, now))))
                }
                Write::Delete(scope) if deleted[i] => Ok(Done::Deleted(scope.clone())),
                Write::Delete(scope) => Err(LlmError::NotFound(scope.to_string())),
            });
        }
        Ok(outcomes)
    }

    /// Up to `limit` matching records, newest first.
    pub async fn list(&self, filter: &UsageFilter, limit: u64) -> Result<Vec<Usage>, DbErr> {
        let q = crate::db::within(Entity::find(), Column::CreatedAt, filter.from, filter.to);
        let q = match &filter.selector {
            Selector::All => q,
            Selector::Instance(i) => q.filter(Column::InstanceId.eq(i.as_str())),
            Selector::Project(p) => q.filter(Column::Project.eq(p.as_str())),
            Selector::SessionTag(t) => q.filter(Column::SessionTag.eq(t.as_str())),
        };
        let rows = q
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(usage_of).collect())
    }

    /// Sums per value of the grouping column, and their total, over a time range.
    pub async fn summary(
        &self,
        group_by: GroupBy,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<UsageSummary, DbErr> {
        let column = match group_by {
            GroupBy::Project => Column::Project,
            GroupBy::Instance => Column::InstanceId,
            GroupBy::Model => Column::Model,
            GroupBy::SessionTag => Column::SessionTag,
        };
        let rows: Vec<(String, i64, i64, f64, i64)> =
            crate::db::within(Entity::find(), Column::CreatedAt, from, to)
                .select_only()
                .column(column)
                .column_as(Expr::cust("CAST(SUM(tokens_in) AS BIGINT)"), "sum_in")
                .column_as(Expr::cust("CAST(SUM(tokens_out) AS BIGINT)"), "sum_out")
                .column_as(Expr::cust("COALESCE(SUM(cost_usd), 0.0)"), "sum_cost")
                .column_as(Column::Id.count(), "requests")
                .group_by(column)
                .into_tuple()
                .all(&self.db)
                .await?;
        let mut out = UsageSummary::default();
        for (key, tokens_in, tokens_out, cost_usd, requests) in rows {
            let totals = Totals {
                total_tokens_in: tokens_in,
                total_tokens_out: tokens_out,
                total_cost_usd: cost_usd,
                request_count: requests,
            };
            out.total.add(&totals);
            out.groups.insert(key, totals);
        }
        Ok(out)
    }

    /// The budgets (all, or the one of `scope`) with their status at `now`, by scope.
    pub async fn budgets(
        &self,
        scope: Option<&Scope>,
        now: i64,
    ) -> Result<Vec<BudgetStatus>, DbErr> {
        let mut q = llm_budget::Entity::find().order_by_asc(llm_budget::Column::Scope);
        if let Some(s) = scope {
            q = q.filter(llm_budget::Column::Scope.eq(s.to_string()));
        }
        let rows = q.all(&self.db).await?;
        let mut out = Vec::with_capacity(rows.len());
        for budget in rows.into_iter().filter_map(budget_of) {
            let spent = spend(&self.db, &budget.scope, budget.period.start(now), None).await?;
            out.push(budget.status(spent, now));
        }
        Ok(out)
    }
}
