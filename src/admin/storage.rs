//! The database-specific half of the operations: everything here is SQLite (`VACUUM INTO`,
//! `PRAGMA integrity_check`, the `-wal` file). Another backend implements these same
//! functions in its own way; the actor and the routes do not change.

use std::path::Path;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

use super::messages::MigrationReport;

/// How many problems `PRAGMA integrity_check` reports at most.
const INTEGRITY_MAX_ERRORS: u32 = 100;

/// Writes a consistent copy of the whole database to `target`, which must not exist.
/// `VACUUM INTO` reads in one transaction, so the copy holds every write committed before
/// it started; writers go on meanwhile (WAL), and the copy is compact and has no `-wal`.
pub async fn copy_into(db: &DatabaseConnection, target: &Path) -> Result<(), DbErr> {
    let target = target
        .to_str()
        .ok_or_else(|| DbErr::Custom("the data directory's path is not UTF-8".into()))?;
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "VACUUM INTO ?",
        [target.into()],
    ))
    .await
    .map(|_| ())
}

/// `PRAGMA integrity_check`: `["ok"]`, or the problems found.
pub async fn integrity(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
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

/// The sizes of the database file and its write-ahead log (0 when absent).
pub fn sizes(database: &Path) -> (u64, u64) {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    (size(database), size(Path::new(&wal)))
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
