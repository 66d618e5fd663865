//! Validation rules (API §9) and their lifecycle (API §10).
//!
//! Owns: the `rules` table, through `RuleBook` only. Messages in: `ReplaceRules`,
//! `ProposeRule`, `DecideRule`, `ImportRules` (writes, one transaction each, in order) and
//! `ListRules`, `SelectRules`, `ExportRules` (reads, from memory). Events out:
//! `rule.proposed` (project, rule_id, proposed_by). Invariants: only `accepted` rules fire;
//! `proposed` → `accepted`/`rejected` are the only transitions; every rule's regex and
//! globs are compiled once, when it is stored or loaded; imports are all or nothing.

mod actor;
pub mod engine;
mod messages;
mod model;
mod repository;
mod routes;

pub use actor::RuleBook;
pub use engine::{CompiledRule, Violation};
pub use messages::*;
pub use model::*;
pub use routes::routes;
