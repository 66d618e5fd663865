//! `Maintenance`: runs the whole-database operations. Every message is a
//! `ResponseFuture` over a cloned pool handle, so a long snapshot or integrity check never
//! blocks the others; a second snapshot while one runs is refused (`AdminError::Busy`)
//! rather than queued, so snapshots cannot pile up on the pool.

use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, Context, Handler, ResponseFuture};
use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;

use super::messages::*;
use super::storage;
use crate::db::Target;

/// Takes snapshots and checks the database under `data_dir`.
pub struct Maintenance {
    db: DatabaseConnection,
    data_dir: PathBuf,
    database: Target,
    /// One snapshot at a time.
    snapshots: Arc<Semaphore>,
}

impl Maintenance {
    /// The operations on `db`, the database of `database`, served from `data_dir`.
    pub fn new(db: DatabaseConnection, data_dir: PathBuf, database: Target) -> Maintenance {
        Maintenance {
            db,
            data_dir,
            database,
            snapshots: Arc::new(Semaphore::new(1)),
        }
    }
}

impl Actor for Maintenance {
    type Context = Context<Self>;
}

impl Handler<TakeSnapshot> for Maintenance {
    type Result = ResponseFuture<Result<Snapshot, AdminError>>;

    fn handle(&mut self, _: TakeSnapshot, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        let dir = self.data_dir.clone();
        let permits = self.snapshots.clone();
        Box::pin(async move {
            let _permit = permits.try_acquire_owned().map_err(|_| AdminError::Busy)?;
            // In the data directory: on the same file system (mode 0700), so the copy is
            // private and never crosses a disk.
            let path = TempPath(dir.join(format!(".snapshot-{}.db", uuid::Uuid::new_v4())));
            storage::copy_into(&db, &path.0).await?;
            let file = std::fs::File::open(&path.0)?;
            let len = file.metadata()?.len();
            // The open handle keeps the data; the name can go now (Unix only: elsewhere
            // an open file cannot be removed, and the guard removes it when dropped).
            #[cfg(unix)]
            std::fs::remove_file(&path.0)?;
            Ok(Snapshot {
                file,
                len,
                _removal: path,
            })
        })
    }
}

impl Handler<CheckStorage> for Maintenance {
    type Result = ResponseFuture<Result<StorageReport, AdminError>>;

    fn handle(&mut self, _: CheckStorage, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        let dir = self.data_dir.clone();
        let database = self.database.clone();
        Box::pin(async move {
            let integrity = storage::integrity(&db).await?;
            let migrations = storage::migrations(&db).await?;
            let (database_bytes, wal_bytes) = crate::db::database_sizes(&db, &database).await?;
            Ok(StorageReport {
                integrity,
                migrations,
                database_bytes: u64::try_from(database_bytes).unwrap_or(0),
                wal_bytes: wal_bytes.map_or(0, |w| u64::try_from(w).unwrap_or(0)),
                free_bytes: storage::free_bytes(&dir),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn maintenance(dir: &std::path::Path) -> actix::Addr<Maintenance> {
        let database = dir.join("data.db");
        let db = crate::db::connect(&database, 2).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        Maintenance::new(db, dir.to_path_buf(), Target::Sqlite(database)).start()
    }

    fn leftovers(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".snapshot-"))
            .collect()
    }

    #[actix::test]
    async fn a_second_snapshot_while_one_is_copied_is_refused_and_no_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let admin = maintenance(dir.path()).await;
        let (a, b) =
            futures_util::future::join(admin.send(TakeSnapshot), admin.send(TakeSnapshot)).await;
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.is_ok(), "{a:?}");
        assert!(matches!(b, Err(AdminError::Busy)), "{b:?}");
        let snapshot = a.unwrap();
        assert!(snapshot.len > 0);
        assert_eq!(snapshot.file.metadata().unwrap().len(), snapshot.len);
        drop(snapshot);
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
        // Once the copy is done, the next one may start.
        assert!(admin.send(TakeSnapshot).await.unwrap().is_ok());

        let report = admin.send(CheckStorage).await.unwrap().unwrap();
        assert!(report.integrity_ok(), "{:?}", report.integrity);
        assert!(report.migrations.pending.is_empty());
        assert_eq!(report.migrations.applied, report.migrations.known);
    }
}
