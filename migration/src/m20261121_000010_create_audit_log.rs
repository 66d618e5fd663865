use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    Timestamp,
    Actor,
    Action,
    Resource,
    Detail,
    Outcome,
    Hash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    .col(big_integer(AuditLog::Id).primary_key())
                    .col(big_integer(AuditLog::Timestamp))
                    .col(string(AuditLog::Actor))
                    .col(string(AuditLog::Action))
                    .col(string(AuditLog::Resource))
                    .col(text(AuditLog::Detail))
                    .col(string(AuditLog::Outcome))
                    .col(string(AuditLog::Hash))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_audit_log_timestamp", AuditLog::Timestamp),
            ("idx_audit_log_action", AuditLog::Action),
            ("idx_audit_log_actor", AuditLog::Actor),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuditLog::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        // Append-only in the database too: an accidental UPDATE or DELETE is refused.
        // (A deliberate edit that drops these triggers is what the hash chain reveals.)
        let db = manager.get_connection();
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::Postgres {
            db.execute_unprepared(
                "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
            )
            .await?;
            for (name, op) in [
                ("audit_log_no_update", "UPDATE"),
                ("audit_log_no_delete", "DELETE"),
            ] {
                db.execute_unprepared(&format!(
                    "CREATE OR REPLACE TRIGGER {name} BEFORE {op} ON audit_log \
                     FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
                ))
                .await?;
            }
            return Ok(());
        }
        db.execute_unprepared(
            "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await
    }
}
