//! The audit checkpoint: where a pruned audit log is verified from. One row (`id` = 1):
//! the id and hash of the last pruned entry, that entry's time and when it was pruned.
//!
//! Pruning is the one way to delete audit entries: the append-only trigger on `audit_log`
//! now lets a `DELETE` through only for entries at or below the checkpoint, and triggers on
//! the checkpoint let it only move forward, only onto a stored entry with its stored hash,
//! and never be deleted.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditCheckpoint {
    Table,
    Id,
    ThroughId,
    Hash,
    ThroughTimestamp,
    PrunedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditCheckpoint::Table)
                    .if_not_exists()
                    .col(integer(AuditCheckpoint::Id).primary_key())
                    .col(big_integer(AuditCheckpoint::ThroughId))
                    .col(string(AuditCheckpoint::Hash))
                    .col(big_integer(AuditCheckpoint::ThroughTimestamp))
                    .col(big_integer(AuditCheckpoint::PrunedAt))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            for sql in [
                "CREATE OR REPLACE FUNCTION audit_log_prune_only() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN \
                 IF OLD.id > COALESCE((SELECT through_id FROM audit_checkpoint WHERE id = 1), 0) \
                 THEN RAISE EXCEPTION 'audit_log is append-only'; END IF; \
                 RETURN OLD; END $$",
                "CREATE OR REPLACE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log \
                 FOR EACH ROW EXECUTE FUNCTION audit_log_prune_only()",
                "CREATE OR REPLACE FUNCTION audit_checkpoint_forward() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN \
                 IF TG_OP = 'DELETE' THEN \
                 RAISE EXCEPTION 'the audit checkpoint cannot be deleted'; END IF; \
                 IF TG_OP = 'UPDATE' AND NEW.through_id < OLD.through_id THEN \
                 RAISE EXCEPTION 'the audit checkpoint only moves forward'; END IF; \
                 IF NOT EXISTS (SELECT 1 FROM audit_log \
                 WHERE id = NEW.through_id AND hash = NEW.hash) THEN \
                 RAISE EXCEPTION 'the audit checkpoint names a stored entry and its hash'; \
                 END IF; \
                 RETURN NEW; END $$",
                "CREATE OR REPLACE TRIGGER audit_checkpoint_guard \
                 BEFORE INSERT OR UPDATE OR DELETE ON audit_checkpoint \
                 FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_forward()",
            ] {
                db.execute_unprepared(sql).await?;
            }
            return Ok(());
        }
        let sqlite = [
            "DROP TRIGGER IF EXISTS audit_log_no_delete",
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log \
             WHEN OLD.id > COALESCE((SELECT through_id FROM audit_checkpoint WHERE id = 1), 0) \
             BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
            "CREATE TRIGGER IF NOT EXISTS audit_checkpoint_no_delete \
             BEFORE DELETE ON audit_checkpoint \
             BEGIN SELECT RAISE(ABORT, 'the audit checkpoint cannot be deleted'); END",
            "CREATE TRIGGER IF NOT EXISTS audit_checkpoint_forward \
             BEFORE UPDATE ON audit_checkpoint WHEN NEW.through_id < OLD.through_id \
             BEGIN SELECT RAISE(ABORT, 'the audit checkpoint only moves forward'); END",
            "CREATE TRIGGER IF NOT EXISTS audit_checkpoint_insert_entry \
             BEFORE INSERT ON audit_checkpoint WHEN NOT EXISTS (SELECT 1 FROM audit_log \
             WHERE id = NEW.through_id AND hash = NEW.hash) \
             BEGIN SELECT RAISE(ABORT, 'the audit checkpoint names a stored entry and its hash'); END",
            "CREATE TRIGGER IF NOT EXISTS audit_checkpoint_update_entry \
             BEFORE UPDATE ON audit_checkpoint WHEN NOT EXISTS (SELECT 1 FROM audit_log \
             WHERE id = NEW.through_id AND hash = NEW.hash) \
             BEGIN SELECT RAISE(ABORT, 'the audit checkpoint names a stored entry and its hash'); END",
        ];
        // One execution, so one connection: a pooled connection whose schema cache still
        // holds the dropped trigger would refuse to create it again.
        db.execute_unprepared(&sqlite.join(";\n")).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            for sql in [
                "CREATE OR REPLACE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log \
                 FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
                "DROP TABLE IF EXISTS audit_checkpoint",
                "DROP FUNCTION IF EXISTS audit_checkpoint_forward()",
                "DROP FUNCTION IF EXISTS audit_log_prune_only()",
            ] {
                db.execute_unprepared(sql).await?;
            }
            return Ok(());
        }
        let sqlite = [
            "DROP TRIGGER IF EXISTS audit_log_no_delete",
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
            "DROP TABLE IF EXISTS audit_checkpoint",
        ];
        db.execute_unprepared(&sqlite.join(";\n")).await?;
        Ok(())
    }
}
