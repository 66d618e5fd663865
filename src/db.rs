//! The storage boundary: everything that differs between the two backends lives here.
//!
//! - **SQLite** (the default): one file `{data_dir}/data.db`, WAL, `synchronous=FULL` (an
//!   acknowledged write survives `kill -9` and power loss), foreign keys on, a busy
//!   timeout, and an explicit pool size. A write transaction starts with `BEGIN IMMEDIATE`,
//!   which takes SQLite's one write lock.
//! - **PostgreSQL** (`postgres://…`): a pool on the server's database. A write transaction
//!   takes a transaction-level advisory lock first ([`WRITE_LOCK`]), so write transactions
//!   run one at a time across every connection and every process on the database, exactly
//!   as under SQLite's write lock: the journal's heads read inside a write transaction are
//!   the heads it extends, event ids stay dense and in commit order, and the audit chain
//!   stays one chain. PostgreSQL's `synchronous_commit` (on by default) makes a commit
//!   durable before it is acknowledged.
//!
//! The domains write portable SQL through sea-query; the few raw statements go through
//! [`statement`] (which numbers `?` placeholders for PostgreSQL) and the dialect helpers
//! below.

use std::path::{Path, PathBuf};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, Select, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait, Value,
};

/// Where the data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its `postgres://` URL.
    Postgres(String),
}

impl Target {
    /// Parses a `--database-url`: `sqlite://PATH` (a relative path is taken from
    /// `data_dir`) or `postgres://…` / `postgresql://…`.
    pub fn parse(url: &str, data_dir: &Path) -> Result<Target, String> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("a sqlite:// URL with a file path".into());
            }
            let path = Path::new(path);
            return Ok(Target::Sqlite(if path.is_absolute() {
                path.to_path_buf()
            } else {
                data_dir.join(path)
            }));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_string()));
        }
        Err("a sqlite:// or postgres:// URL".into())
    }

    /// A description for messages that never shows a password.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite(path) => path.display().to_string(),
            Target::Postgres(url) => redact(url),
        }
    }
}

/// `url` without its password.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Opens the database of `target` with a pool of `pool_size` connections.
pub async fn open(target: &Target, pool_size: u32) -> Result<DatabaseConnection, DbErr> {
    match target {
        Target::Sqlite(path) => connect(path, pool_size).await,
        Target::Postgres(url) => {
            let mut options = ConnectOptions::new(url.clone());
            options
                .max_connections(pool_size)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .sqlx_logging(false);
            Database::connect(options).await
        }
    }
}

/// Bytes a SQLite WAL file is truncated to whenever a checkpoint has emptied it.
pub const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// Opens (creating if needed) the SQLite database at `path` with a pool of `pool_size`
/// connections.
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
                // A checkpoint that empties the WAL truncates its file back to 64 MiB, so a
                // burst of writes does not leave a large WAL file on disk for good.
                .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
        });
    Database::connect(options).await
}

/// The advisory lock key every PostgreSQL write transaction takes (`koor` in ASCII).
pub const WRITE_LOCK: i64 = 0x6b6f_6f72;

/// The session advisory lock key the leader of a PostgreSQL cluster holds on a session of
/// its own for as long as it leads (see [`crate::cluster::election`]).
pub const SERVER_LOCK: i64 = 0x6b6f_6f72_7376;

/// The advisory lock key held while migrations run, so members starting together migrate
/// one at a time.
pub const MIGRATE_LOCK: i64 = 0x6b6f_6f72_6d69;

/// Which migrations to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Migrate {
    /// Apply the pending ones (`None`: all of them).
    Up(Option<u32>),
    /// Revert the newest applied ones (`None`: all of them).
    Down(Option<u32>),
}

/// Applies every pending migration (see [`run_migrations`]).
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    run_migrations(db, Migrate::Up(None)).await
}

/// Runs migrations in one transaction on one connection: a failed migration leaves the
/// schema and the data as they were, and each statement sees the schema the ones before it
/// left (a second pooled SQLite connection may still hold the old schema and refuse, say,
/// a `RENAME` to a name a `DROP TABLE` just freed). On SQLite the transaction takes the
/// write lock up front, so a writer in another process makes it wait instead of fail; on
/// PostgreSQL it holds [`MIGRATE_LOCK`], so members starting at once never race on the
/// schema.
pub async fn run_migrations(db: &DatabaseConnection, which: Migrate) -> Result<(), DbErr> {
    let txn = begin_locked(db, MIGRATE_LOCK).await?;
    if let Migrate::Up(_) = which {
        // A migration that rewrites a table (as the one to history chains does) takes
        // time in proportion to the data: say what is running before it starts.
        let pending = Migrator::get_pending_migrations(&txn).await?;
        if !pending.is_empty() {
            let names: Vec<String> = pending.iter().map(|m| m.name().to_string()).collect();
            tracing::info!(count = names.len(), names = %names.join(", "), "applying migrations");
        }
    }
    let result = match which {
        Migrate::Up(steps) => Migrator::up(&txn, steps).await,
        Migrate::Down(steps) => Migrator::down(&txn, steps).await,
    };
    match result {
        Ok(()) => txn.commit().await,
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
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

/// Starts a write transaction.
///
/// SQLite: `BEGIN IMMEDIATE`. Several actors write to the one database file; a deferred
/// transaction that reads first and writes later can fail with `SQLITE_BUSY` (its snapshot
/// went stale when another actor committed), which the busy timeout does not retry. Taking
/// the write lock up front makes the busy timeout apply.
///
/// PostgreSQL: `BEGIN`, then the transaction-level advisory lock [`WRITE_LOCK`], held until
/// the commit. Every later statement of the transaction sees every write committed before
/// it (READ COMMITTED takes a snapshot per statement), as under SQLite's lock.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = begin_locked(db, WRITE_LOCK).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        let fence =
            Statement::from_string(DbBackend::Postgres, crate::cluster::election::FENCE_SQL);
        if txn.query_one_raw(fence).await?.is_none() {
            let _ = txn.rollback().await;
            return Err(DbErr::Custom(
                crate::cluster::election::NOT_LEADER.to_string(),
            ));
        }
    }
    Ok(txn)
}

/// A transaction that holds the database's write lock from its start: SQLite's
/// `BEGIN IMMEDIATE`, or on PostgreSQL `BEGIN` and the transaction-level advisory lock
/// `lock` (released at the commit or rollback).
async fn begin_locked(db: &DatabaseConnection, lock: i64) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [lock.into()],
            ))
            .await?;
            Ok(txn)
        }
        _ => {
            db.begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
        }
    }
}

/// How much disk the data takes, for `/metrics` and `koor status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskUse {
    /// The database: SQLite's main file, or PostgreSQL's `pg_database_size`.
    pub database_bytes: i64,
    /// SQLite's write-ahead log file (`None` on PostgreSQL, whose WAL is the cluster's).
    pub wal_bytes: Option<i64>,
    /// Rows per table, by table name.
    pub rows: Vec<(String, i64)>,
    /// Bytes per table with its indexes and TOAST (`pg_total_relation_size`; PostgreSQL
    /// only).
    pub table_bytes: Vec<(String, i64)>,
}

/// Measures the disk use of the database of `target` through `db`.
pub async fn disk_use(db: &DatabaseConnection, target: &Target) -> Result<DiskUse, DbErr> {
    let backend = db.get_database_backend();
    let tables_sql = match backend {
        DbBackend::Postgres => {
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name <> 'seaql_migrations' ORDER BY 1"
        }
        _ => {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations' ORDER BY 1"
        }
    };
    let tables: Vec<String> = db
        .query_all_raw(Statement::from_string(backend, tables_sql))
        .await?
        .iter()
        .map(|r| r.try_get_by_index(0))
        .collect::<Result<_, _>>()?;
    let mut out = DiskUse::default();
    for table in &tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let sql = match backend {
            DbBackend::Postgres => format!(
                "SELECT COUNT(*), pg_total_relation_size('{}') FROM {quoted}",
                quoted.replace('\'', "''")
            ),
            _ => format!("SELECT COUNT(*), 0 FROM {quoted}"),
        };
        if let Some(row) = db
            .query_one_raw(Statement::from_string(backend, sql))
            .await?
        {
            out.rows.push((table.clone(), row.try_get_by_index(0)?));
            if backend == DbBackend::Postgres {
                out.table_bytes
                    .push((table.clone(), row.try_get_by_index(1)?));
            }
        }
    }
    (out.database_bytes, out.wal_bytes) = database_sizes(db, target).await?;
    Ok(out)
}

/// The size of the database of `target` and, on SQLite, of its write-ahead log (0 for a
/// file that is absent): the file and its `-wal`, or `pg_database_size`.
pub async fn database_sizes(
    db: &DatabaseConnection,
    target: &Target,
) -> Result<(i64, Option<i64>), DbErr> {
    match target {
        Target::Postgres(_) => {
            let row = db
                .query_one_raw(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT pg_database_size(current_database())",
                ))
                .await?;
            let size = match row {
                Some(row) => row.try_get_by_index(0)?,
                None => 0,
            };
            Ok((size, None))
        }
        Target::Sqlite(path) => {
            let size = |p: &Path| {
                std::fs::metadata(p).map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX))
            };
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            Ok((size(path), Some(size(Path::new(&wal)))))
        }
    }
}

/// A raw statement for `backend`, written with `?` placeholders (numbered `$1, $2, …` for
/// PostgreSQL). The SQL must hold no `?` other than placeholders.
pub fn statement(backend: DbBackend, sql: impl Into<String>, values: Vec<Value>) -> Statement {
    let sql = sql.into();
    let sql = if backend == DbBackend::Postgres {
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    } else {
        sql
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The larger of two SQL expressions (`MAX(a, b)` in SQLite, `GREATEST(a, b)` in
/// PostgreSQL).
pub fn greatest(backend: DbBackend, a: &str, b: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("GREATEST({a}, {b})"),
        _ => format!("MAX({a}, {b})"),
    }
}

/// SQL for the highest id ever assigned in `table` (0 when none). SQLite remembers the ids
/// of pruned rows of an AUTOINCREMENT table in `sqlite_sequence`. On PostgreSQL the ids
/// are assigned by koor itself under [`WRITE_LOCK`] and the highest row is never deleted
/// (event pruning keeps at least one event; LLM usage pruning keeps the newest record), so the
/// largest stored id is the highest ever assigned.
pub fn highest_id_sql(backend: DbBackend, table: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("SELECT COALESCE(MAX(id), 0) FROM {table}"),
        _ => format!(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), \
             COALESCE((SELECT MAX(id) FROM {table}), 0))"
        ),
    }
}

/// Runs `statements` in order. SQLite gets them as one multi-statement execution (its
/// driver binds each statement's parameters in turn from the concatenated values: one
/// round trip to the connection's thread); PostgreSQL, whose extended protocol takes one
/// statement per execution, gets them one by one.
pub async fn execute_all<C: ConnectionTrait>(
    conn: &C,
    statements: Vec<Statement>,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    if statements.len() <= 1 || backend == DbBackend::Postgres {
        for statement in statements {
            conn.execute_raw(statement).await?;
        }
        return Ok(());
    }
    let mut sql = String::new();
    let mut values = Vec::new();
    for statement in statements {
        sql.push_str(&statement.sql);
        sql.push_str(";\n");
        if let Some(v) = statement.values {
            values.extend(v.0);
        }
    }
    conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_backend() {
        let dir = Path::new("/data");
        assert_eq!(
            Target::parse("sqlite://koor.db", dir),
            Ok(Target::Sqlite(PathBuf::from("/data/koor.db")))
        );
        assert_eq!(
            Target::parse("sqlite:///var/k.db?mode=rwc", dir),
            Ok(Target::Sqlite(PathBuf::from("/var/k.db")))
        );
        assert!(matches!(
            Target::parse("postgres://u@h/db", dir),
            Ok(Target::Postgres(_))
        ));
        assert!(Target::parse("sqlite://", dir).is_err());
        assert!(Target::parse("mysql://h/db", dir).is_err());
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u@h:5432/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        let t = Target::Postgres("postgresql://a:b@c/d".into());
        assert_eq!(t.describe(), "postgresql://a@c/d");
    }

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        let s = statement(
            DbBackend::Postgres,
            "SELECT ? + ?",
            vec![1.into(), 2.into()],
        );
        assert_eq!(s.sql, "SELECT $1 + $2");
        let s = statement(DbBackend::Sqlite, "SELECT ?", vec![1.into()]);
        assert_eq!(s.sql, "SELECT ?");
    }

    #[tokio::test]
    async fn every_sqlite_connection_bounds_its_cache_and_wal_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = connect(&dir.path().join("data.db"), 2).await.unwrap();
        let pragma = |name: &str| {
            let db = db.clone();
            let sql = format!("PRAGMA {name}");
            async move {
                db.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
                    .await
                    .unwrap()
                    .unwrap()
                    .try_get_by_index::<i64>(0)
                    .unwrap()
            }
        };
        assert_eq!(pragma("cache_size").await, -65536);
        assert_eq!(pragma("journal_size_limit").await, WAL_SIZE_LIMIT as i64);
    }
}
