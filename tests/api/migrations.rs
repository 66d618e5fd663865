//! Migrations: up -> down -> up on a real file, and `koor migrate` on the command line.

use migration::{Migrator, MigratorTrait};
use sea_orm::ConnectionTrait;

use crate::helpers::koor_bin;

async fn tables(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_name != 'seaql_migrations' ORDER BY table_name COLLATE \"C\""
        }
        _ => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'seaql_migrations' ORDER BY name"
        }
    };
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(backend, sql))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

#[actix_web::test]
async fn up_down_up_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let db = koor::db::connect(&dir.path().join("data.db"), 1)
        .await
        .unwrap();
    let sqlite = round_trip(&db).await;
    // The same migrations build the same tables on PostgreSQL.
    if let Some(base) = crate::helpers::test_database_url() {
        let (_database, url) = crate::helpers::TestDatabase::for_dir(&base, dir.path()).await;
        let pg = koor::db::open(&koor::db::Target::Postgres(url), 1)
            .await
            .unwrap();
        assert_eq!(round_trip(&pg).await, sqlite);
        pg.close().await.unwrap();
    }
}

/// Up, down, up again; returns the tables.
async fn round_trip(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let db = db.clone();
    Migrator::up(&db, None).await.unwrap();
    let all = tables(&db).await;
    assert!(
        all.contains(&"state_versions".to_string()) && all.contains(&"events".to_string()),
        "{all:?}"
    );
    Migrator::down(&db, None).await.unwrap();
    assert!(tables(&db).await.is_empty());
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(tables(&db).await, all);
    assert!(
        Migrator::get_pending_migrations(&db)
            .await
            .unwrap()
            .is_empty()
    );
    all
}

#[actix_web::test]
async fn koor_migrate_status_down_up() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &'static [&'static str]| {
        let dir = dir.path().to_path_buf();
        async move {
            tokio::process::Command::new(koor_bin())
                .arg("migrate")
                .args(args)
                .arg("--data-dir")
                .arg(&dir)
                .current_dir(&dir)
                .output()
                .await
                .unwrap()
        }
    };
    let up = run(&["up"]).await;
    assert!(up.status.success(), "{up:?}");
    let status = String::from_utf8(run(&["status"]).await.stdout).unwrap();
    assert!(
        status.lines().count() >= 2 && !status.contains("Pending"),
        "{status}"
    );
    assert!(run(&["down"]).await.status.success());
    let status = String::from_utf8(run(&["status"]).await.stdout).unwrap();
    assert_eq!(status.matches("Pending").count(), 1, "{status}");
    assert!(run(&["up"]).await.status.success());
    let status = String::from_utf8(run(&["status"]).await.stdout).unwrap();
    assert!(!status.contains("Pending"), "{status}");
}
