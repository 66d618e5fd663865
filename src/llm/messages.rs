//! Messages of the LLM usage domain.

use crate::http::Caller;
use actix::Message;

use super::model::{
    BudgetIn, BudgetStatus, GroupBy, LlmError, NewUsage, Recorded, Scope, Usage, UsageFilter,
    UsageSummary,
};

/// Stores a usage record and checks the budgets it counts against; answered after the
/// commit, once `llm.usage.recorded` and any budget announcements are published.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Recorded, LlmError>")]
pub struct RecordUsage {
    pub usage: NewUsage,
    /// Who records (the audit entry's actor).
    pub caller: Caller,
}

/// Up to `limit` matching records, newest first.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<Usage>, LlmError>")]
pub struct ListUsage {
    pub filter: UsageFilter,
    pub limit: u64,
}

/// Sums per value of `group_by` and in total over the records in a time range.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<UsageSummary, LlmError>")]
pub struct SummarizeUsage {
    pub group_by: GroupBy,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Sets (or replaces, forgetting past announcements) the budget of `scope`; answered
/// with its status.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<BudgetStatus, LlmError>")]
pub struct PutBudget {
    pub scope: Scope,
    pub budget: BudgetIn,
    /// Who sets it (the audit entry's actor).
    pub caller: Caller,
}

/// Deletes the budget of `scope` (`NotFound` when there is none).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), LlmError>")]
pub struct DeleteBudget {
    pub scope: Scope,
    /// Who deletes it (the audit entry's actor).
    pub caller: Caller,
}

/// Every budget with its current status, by scope.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<BudgetStatus>, LlmError>")]
pub struct ListBudgets;

/// The status of the budget of `scope`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<BudgetStatus, LlmError>")]
pub struct GetBudget {
    pub scope: Scope,
}

/// Prunes the usage records older than `llm_usage_retention` now (the pruner's run-once
/// step), never those of the current calendar month (UTC), which budgets count; answers
/// how many were deleted (0 when no retention is set).
#[derive(Message, Debug)]
#[rtype(result = "Result<u64, LlmError>")]
pub struct PruneUsage;
