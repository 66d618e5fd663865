//! SeaORM entities: one module per table. Only the owning domain actor's repository uses them.

pub mod access_key;
pub mod agent_metric;
pub mod audit_entry;
pub mod compliance_run;
pub mod event;
pub mod instance;
pub mod llm_budget;
pub mod llm_usage;
pub mod lock;
pub mod prelude;
pub mod rule;
pub mod state_version;
pub mod task;
pub mod template;
pub mod webhook;
pub mod webhook_delivery;
