//! SeaORM entities: one module per table. Only the owning domain actor's repository uses them.

pub mod agent_metric;
pub mod event;
pub mod instance;
pub mod prelude;
pub mod state_version;
