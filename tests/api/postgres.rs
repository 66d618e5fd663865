//! PostgreSQL storage (API §27): a lone server leads, and a server started after `kill -9`
//! of the first under load leads in its place, with every acknowledged write, event ids
//! continuing and the audit chain intact. Runs only when `KOOR_TEST_DATABASE_URL` is set
//! (the rest of the suite runs on PostgreSQL then too, through `TestApp`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    Acked, ServerProcess, TEST_DATABASE_ENV, TestDatabase, spawn_writer, test_database_url,
};

#[actix_web::test]
async fn one_server_per_database_and_a_successor_keeps_every_acknowledged_write() {
    let Some(base) = test_database_url() else {
        eprintln!("skipped: {TEST_DATABASE_ENV} is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_database, url) = TestDatabase::for_dir(&base, dir.path()).await;
    let args = ["--database-url", url.as_str()];
    let mut first = ServerProcess::start(dir.path(), &args).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let health: Value = client
        .get(first.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["role"], "leader");

    // Writes under load, each to its own key, until the first server is killed.
    let acked = Acked::default();
    let writers: Vec<_> = (0..8)
        .map(|w| spawn_writer(&client, first.url(""), "pg", w, &acked, false))
        .collect();
    let last_event: Value = client
        .post(first.url("/api/events/publish"))
        .json(&json!({"topic": "pg.before", "data": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.child.start_kill().unwrap(); // SIGKILL, with writes in flight
    first.child.wait().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "only {} writes before the kill",
        acked.len()
    );

    // A second server starts at once and leads: the lock went with the dead session.
    let other = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let second = ServerProcess::start(other.path(), &args).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    for (key, body) in &acked {
        let resp = client
            .get(second.url(&format!("/api/state/{key}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{key} was acknowledged");
        assert_eq!(resp.text().await.unwrap(), *body, "{key}");
    }
    let next: Value = client
        .post(second.url("/api/events/publish"))
        .json(&json!({"topic": "pg.after", "data": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(next["id"].as_i64().unwrap() > last_event["id"].as_i64().unwrap());
    let verify: Value = client
        .get(second.url("/api/audit/verify"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["entries"].as_i64().unwrap() >= acked.len() as i64);
}
