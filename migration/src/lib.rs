//! Schema migrations, applied in order at server start-up (`koor migrate` exposes them).

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_state_versions;
mod m20261121_000002_create_events;
mod m20261121_000003_create_instances;
mod m20261121_000004_create_agent_metrics;
mod m20261121_000005_create_spec_versions;
mod m20261121_000006_create_rules;
mod m20261121_000007_create_compliance_runs;
mod m20261121_000008_create_templates;
mod m20261121_000009_create_webhooks;
mod m20261121_000010_create_audit_log;
mod m20261121_000011_create_llm;
mod m20261206_000012_create_fencing;
mod m20261206_000013_create_tasks;
mod m20261206_000014_create_locks;
mod m20261206_000015_create_keys;
mod m20261206_000016_create_audit_checkpoint;
mod m20261206_000017_add_instance_profile;
mod m20261206_000018_create_cluster;
mod m20261206_000019_version_chains;

/// Column definitions that differ between the backends, so that one set of migrations
/// builds the same schema on SQLite and PostgreSQL.
pub(crate) mod portable {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::{big_integer, pk_auto};

    /// An auto-increment 64-bit primary key: SQLite's `INTEGER PRIMARY KEY AUTOINCREMENT`
    /// (already 64-bit), PostgreSQL's `bigint` identity column.
    pub fn id_auto<T: IntoIden>(manager: &SchemaManager, name: T) -> ColumnDef {
        match manager.get_database_backend() {
            sea_orm_migration::sea_orm::DbBackend::Postgres => {
                big_integer(name).auto_increment().primary_key().take()
            }
            _ => pk_auto(name),
        }
    }
}

/// All of koor's migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_state_versions::Migration),
            Box::new(m20261121_000002_create_events::Migration),
            Box::new(m20261121_000003_create_instances::Migration),
            Box::new(m20261121_000004_create_agent_metrics::Migration),
            Box::new(m20261121_000005_create_spec_versions::Migration),
            Box::new(m20261121_000006_create_rules::Migration),
            Box::new(m20261121_000007_create_compliance_runs::Migration),
            Box::new(m20261121_000008_create_templates::Migration),
            Box::new(m20261121_000009_create_webhooks::Migration),
            Box::new(m20261121_000010_create_audit_log::Migration),
            Box::new(m20261121_000011_create_llm::Migration),
            Box::new(m20261206_000012_create_fencing::Migration),
            Box::new(m20261206_000013_create_tasks::Migration),
            Box::new(m20261206_000014_create_locks::Migration),
            Box::new(m20261206_000015_create_keys::Migration),
            Box::new(m20261206_000016_create_audit_checkpoint::Migration),
            Box::new(m20261206_000017_add_instance_profile::Migration),
            Box::new(m20261206_000018_create_cluster::Migration),
            Box::new(m20261206_000019_version_chains::Migration),
        ]
    }
}
