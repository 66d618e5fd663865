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

/// Versions stored before histories became chains (migration 19) keep their values and
/// their history, gaps from pruning included, and new versions extend them.
#[actix_web::test]
async fn versions_stored_before_chains_keep_their_history() {
    use crate::helpers::{TestApp, TestDatabase, test_database_url};
    use koor::config::Secret;

    let dir = tempfile::tempdir().unwrap();
    let (database, url) = match test_database_url() {
        Some(base) => {
            let (database, url) = TestDatabase::for_dir(&base, dir.path()).await;
            (Some(database), Some(url))
        }
        None => (None, None),
    };
    let target = match &url {
        Some(url) => koor::db::Target::Postgres(url.clone()),
        None => koor::db::Target::Sqlite(dir.path().join("data.db")),
    };
    let db = koor::db::open(&target, 1).await.unwrap();
    Migrator::up(&db, Some(18)).await.unwrap();
    let backend = db.get_database_backend();
    // a: versions 1-3; b: versions 2 and 4 (1 and 3 pruned); one spec.
    let rows: [(&str, &str, i64); 6] = [
        ("state_versions", "b", 4),
        ("state_versions", "a", 1),
        ("state_versions", "a", 3),
        ("state_versions", "b", 2),
        ("state_versions", "a", 2),
        ("spec_versions", "p/s", 1),
    ];
    for (table, key, version) in rows {
        let value = format!("{{\"{key}\":{version}}}");
        db.execute_raw(koor::db::statement(
            backend,
            format!(
                "INSERT INTO {table} (key, version, value, hash, content_type, updated_at, \
                 fencing_token) VALUES (?, ?, ?, ?, 'application/json', ?, NULL)"
            ),
            vec![
                key.into(),
                version.into(),
                value.as_bytes().to_vec().into(),
                crate::helpers::sha256_hex(value.as_bytes()).into(),
                (1_700_000_000_000_000_i64 + version).into(),
            ],
        ))
        .await
        .unwrap();
    }
    Migrator::up(&db, None).await.unwrap();
    db.close().await.unwrap();

    let data_dir = dir.path().to_path_buf();
    let app = TestApp::spawn_with(move |c| {
        c.data_dir = data_dir;
        c.database_url = url.map(Secret::new);
    })
    .await;
    let current = app.get("/api/state/a").await;
    assert_eq!(current.headers()["X-Koor-Version"], "3");
    assert_eq!(current.text().await.unwrap(), r#"{"a":3}"#);
    assert_eq!(app.versions("a").await, [3, 2, 1]);
    assert_eq!(app.versions("b").await, [4, 2]);
    let old = app.get("/api/state/b?version=2").await;
    assert_eq!(old.text().await.unwrap(), r#"{"b":2}"#);
    assert_eq!(
        app.get("/api/state/b?version=3").await.status(),
        reqwest::StatusCode::NOT_FOUND
    );
    let put = app.put_state("a", br#"{"a":4}"#).await;
    assert_eq!(put["version"], 4, "{put}");
    let history = app.get_json("/api/state/a?history=1&limit=2").await;
    assert_eq!(history["versions"][1]["version"], 3, "{history}");
    assert_eq!(
        app.get("/api/state/a?version=1")
            .await
            .text()
            .await
            .unwrap(),
        r#"{"a":1}"#
    );
    assert_eq!(
        app.get("/api/specs/p/s").await.status(),
        reqwest::StatusCode::OK
    );
    app.stop().await;
    drop(database);
}
