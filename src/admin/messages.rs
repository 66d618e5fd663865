//! The messages of the `Maintenance` actor.

use std::path::PathBuf;

use actix::Message;
use serde::Serialize;

use crate::error::{DomainError, ErrorKind};

/// Copies the whole database into a temporary file of the data directory.
#[derive(Debug, Message)]
#[rtype(result = "Result<Snapshot, AdminError>")]
pub struct TakeSnapshot;

/// Checks the database: integrity, migrations, sizes, free disk.
#[derive(Debug, Message)]
#[rtype(result = "Result<StorageReport, AdminError>")]
pub struct CheckStorage;

/// A finished snapshot: an open file, removed from disk when this value is dropped (on
/// Unix it is unlinked at once, so even a killed process leaves nothing behind).
#[derive(Debug)]
pub struct Snapshot {
    /// The snapshot, open for reading from its start.
    pub file: std::fs::File,
    /// Its length in bytes.
    pub len: u64,
    /// Removes the file (if still there) when the snapshot is dropped.
    pub(super) _removal: TempPath,
}

/// A path removed when dropped (a missing file is fine).
#[derive(Debug)]
pub(super) struct TempPath(pub(super) PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.0.display(), error = %e, "cannot remove a snapshot file")
            }
        }
    }
}

/// What `CheckStorage` found.
#[derive(Debug, Serialize)]
pub struct StorageReport {
    /// `["ok"]` when the database is sound, else the problems found (at most 100).
    pub integrity: Vec<String>,
    pub migrations: MigrationReport,
    /// The database file's size in bytes.
    pub database_bytes: u64,
    /// The write-ahead log's size in bytes (0 when there is none).
    pub wal_bytes: u64,
    /// Free space for an unprivileged user on the data directory's file system, when known.
    pub free_bytes: Option<u64>,
}

impl StorageReport {
    /// Whether `PRAGMA integrity_check` answered exactly `ok`.
    pub fn integrity_ok(&self) -> bool {
        self.integrity.len() == 1 && self.integrity[0] == "ok"
    }
}

/// Which schema migrations the binary knows and which the database has.
#[derive(Debug, Serialize)]
pub struct MigrationReport {
    /// Migrations this binary knows.
    pub known: usize,
    /// Migrations applied to the database.
    pub applied: usize,
    /// Names of known migrations not applied yet.
    pub pending: Vec<String>,
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("a snapshot is already being taken; try again when it has finished")]
    Busy,
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("storage error: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
}

impl DomainError for AdminError {
    fn kind(&self) -> ErrorKind {
        match self {
            AdminError::Busy | AdminError::Unsupported(_) => ErrorKind::Conflict,
            AdminError::Storage(_) | AdminError::Io(_) => ErrorKind::Internal,
        }
    }
}
