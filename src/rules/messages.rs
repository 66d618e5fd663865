//! Messages of the rules domain: its whole API.

use std::sync::Arc;

use actix::Message;

use super::engine::CompiledRule;
use super::model::{Rule, RuleError, RuleIn};
use crate::audit::Audit;
use crate::http::Caller;

/// Replaces the whole rule set of `project` (source `local` by default, status
/// `accepted`); answered with the number of rules stored.
#[derive(Message)]
#[rtype(result = "Result<usize, RuleError>")]
pub struct ReplaceRules {
    pub project: String,
    pub rules: Vec<RuleIn>,
}

/// Every rule of `project` (all statuses), rule_id ascending; with `stack`, only rules
/// whose stack is that or empty.
#[derive(Message)]
#[rtype(result = "Vec<Rule>")]
pub struct ListRules {
    pub project: String,
    pub stack: Option<String>,
}

/// The compiled rules a validation of `project` runs, in order: the project's, then
/// `_global`'s, each by rule_id, filtered by status, stack and filename.
#[derive(Message)]
#[rtype(result = "Vec<Arc<CompiledRule>>")]
pub struct SelectRules {
    pub project: String,
    pub stack: Option<String>,
    pub filename: Option<String>,
}

/// Stores a proposal (source `learned`, status `proposed`); `Exists` when the id is taken.
#[derive(Message)]
#[rtype(result = "Result<Rule, RuleError>")]
pub struct ProposeRule {
    pub rule: RuleIn,
    /// Who proposes (named in the audit entry besides `proposed_by`).
    pub caller: Caller,
}

/// Accepts or rejects a rule that is currently `proposed`.
#[derive(Message)]
#[rtype(result = "Result<Rule, RuleError>")]
pub struct DecideRule {
    pub project: String,
    pub rule_id: String,
    pub accept: bool,
    /// Who decides (the audit entry's actor).
    pub caller: Caller,
}

/// Accepted rules of the listed sources, by project then rule_id.
#[derive(Message)]
#[rtype(result = "Vec<Rule>")]
pub struct ExportRules {
    pub sources: Vec<String>,
}

/// Upserts every rule as `accepted`, all or nothing (source `external` by default); with
/// `project`, every rule goes to that project. Answered with the count.
#[derive(Message)]
#[rtype(result = "Result<usize, RuleError>")]
pub struct ImportRules {
    pub rules: Vec<RuleIn>,
    pub project: Option<String>,
    /// Who imports (the audit entry's actor).
    pub caller: Caller,
    /// The audit entry to record instead of `rules.import` (a template's application
    /// records `template.apply`), already attributed.
    pub audit_as: Option<Audit>,
}

/// Every rule of every project (all sources), by project then rule_id; with `status` or
/// `project`, only those with exactly that status or project.
#[derive(Message)]
#[rtype(result = "Vec<Rule>")]
pub struct AllRules {
    pub status: Option<String>,
    pub project: Option<String>,
}

/// Deletes one rule of any source and status; answered with the rule as it was.
#[derive(Message)]
#[rtype(result = "Result<Rule, RuleError>")]
pub struct DeleteRule {
    pub project: String,
    pub rule_id: String,
    /// Who deletes (the audit entry's actor).
    pub caller: Caller,
}
