//! LLM usage (API §17) and budgets (extension): what agents spend on model calls.
//!
//! Owns: the `llm_usage` and `llm_budgets` tables, through `LlmLedger` only. Messages in:
//! `RecordUsage`, `PutBudget`, `DeleteBudget` (writes, group-committed in order),
//! `ListUsage`, `SummarizeUsage`, `ListBudgets`, `GetBudget` (reads through the pool).
//! Events out (source `llmcost`): `llm.usage.recorded` per record; `budget.warning` (80 %)
//! and `budget.exceeded` (100 %) when a record crosses a budget. Invariants: record ids
//! strictly increase and are never reused; a record is answered only after its commit and
//! its events; each crossing is announced at most once per UTC day or month, and the
//! announced period is stored with the budget, so a restart does not announce it again.

mod actor;
mod messages;
mod model;
mod repository;
mod routes;

pub use actor::LlmLedger;
pub use messages::*;
pub use model::*;
pub use routes::routes;
