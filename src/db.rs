//! The SQLite connection: one file `{data_dir}/data.db`, WAL, `synchronous=FULL` (an
//! acknowledged write survives `kill -9` and power loss), foreign keys on, a busy
//! timeout, and an explicit pool size.

use std::path::Path;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ColumnTrait, ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, QueryFilter, Select, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// Opens (creating if needed) the database at `path` with a pool of `pool_size` connections.
pub async fn connect(path: &Path, pool_size: u32) -> Result<DatabaseConnection, DbErr> {
    // The real path is set through the sqlx options, not the URL, so any file name works;
    // the URL only selects the SQLite driver (an on-disk database, never `:memory:`).
    let file = path.to_path_buf();
    let mut options = ConnectOptions::new("sqlite://data.db");
    options
        .max_connections(pool_size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o| {
            o.filename(&file)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
                // 64 MiB of page cache per connection (SQLite's default is 2 MiB): the
                // indexes of a growing history stay in memory instead of being re-read
                // through the kernel on every batch.
                .pragma("cache_size", "-65536")
        });
    Database::connect(options).await
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Restricts `q` to rows whose `column` (unix microseconds) lies in `from..=to`; `None`
/// leaves that side open. The `from`/`to` filters of every time-ranged listing.
pub fn within<E: EntityTrait>(
    q: Select<E>,
    column: E::Column,
    from: Option<i64>,
    to: Option<i64>,
) -> Select<E> {
    let q = match from {
        Some(from) => q.filter(column.gte(from)),
        None => q,
    };
    match to {
        Some(to) => q.filter(column.lte(to)),
        None => q,
    }
}

/// Starts a write transaction with `BEGIN IMMEDIATE`. Several actors write to the one
/// database file; a deferred transaction that reads first and writes later can fail with
/// `SQLITE_BUSY` (its snapshot went stale when another actor committed), which the busy
/// timeout does not retry. Taking the write lock up front makes the busy timeout apply.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}
