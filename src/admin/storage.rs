//! The database-specific half of the operations: on SQLite `VACUUM INTO`,
//! `PRAGMA integrity_check` and the `-wal` file; on PostgreSQL the checksum failures it
//! recorded, and no snapshot (PostgreSQL's own tools back it up).
//! The actor and the routes do not change with the backend.

use std::path::Path;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use super::messages::{AdminError, MigrationReport};

/// How many problems `PRAGMA integrity_check` reports at most.
const INTEGRITY_MAX_ERRORS: u32 = 100;

/// Writes a consistent copy of the whole database to `target`, which must not exist.
/// `VACUUM INTO` reads in one transaction, so the copy holds every write committed before
/// it started; writers go on meanwhile (WAL), and the copy is compact and has no `-wal`.
pub async fn copy_into(db: &DatabaseConnection, target: &Path) -> Result<(), AdminError> {
    if db.get_database_backend() == DbBackend::Postgres {
        return Err(AdminError::Unsupported(
            "snapshots copy a SQLite database; on PostgreSQL back up with pg_dump or the \
             database's own backups",
        ));
    }
    let target = target
        .to_str()
        .ok_or_else(|| DbErr::Custom("the data directory's path is not UTF-8".into()))?;
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "VACUUM INTO ?",
        [target.into()],
    ))
    .await?;
    Ok(())
}

/// `PRAGMA integrity_check`: `["ok"]`, or the problems found. On PostgreSQL: the data
/// checksum failures the server recorded for this database (none when checksums are off).
pub async fn integrity(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT COALESCE(checksum_failures, 0)::BIGINT FROM pg_stat_database \
                 WHERE datname = current_database()",
            ))
            .await?;
        let failures = match row {
            Some(row) => row.try_get_by_index::<i64>(0)?,
            None => 0,
        };
        return Ok(if failures == 0 {
            vec!["ok".to_string()]
        } else {
            vec![format!(
                "{failures} data checksum failures recorded by PostgreSQL"
            )]
        });
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!("PRAGMA integrity_check({INTEGRITY_MAX_ERRORS})"),
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect()
}

/// The migrations this binary knows against those the database has.
pub async fn migrations(db: &DatabaseConnection) -> Result<MigrationReport, DbErr> {
    let applied = Migrator::get_applied_migrations(db).await?.len();
    let pending = Migrator::get_pending_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    Ok(MigrationReport {
        known: Migrator::migrations().len(),
        applied,
        pending,
    })
}

/// Free space for an unprivileged user on the file system holding `dir`, when known.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let stat = rustix::fs::statvfs(dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}
