//! Templates (API §14): reusable rule sets and contract bundles.
//!
//! Owns: the `templates` table, through `TemplateLibrary` only. Messages in:
//! `CreateTemplate`, `DeleteTemplate` (writes), `ListTemplates`, `GetTemplate` (reads,
//! from memory), `ApplyTemplate` (sends `ImportRules` to the `RuleBook` or `PutValue` to
//! the `SpecRegistry`). Invariants: `data` is kept as the JSON value supplied; a rules
//! template applies all or nothing, always to the target project.

mod actor;
mod messages;
mod model;
mod repository;
mod routes;

pub use actor::TemplateLibrary;
pub use messages::*;
pub use model::*;
pub use routes::routes;
