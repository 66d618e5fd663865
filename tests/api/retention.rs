//! Retention: state and spec history pruned to the newest N versions or by age (never the
//! current version), LLM usage records pruned by age (never the current month's), and the
//! audit log pruned by age behind a checkpoint it still verifies from, with tampering after
//! the checkpoint still detected; events pruned to the newest N in bounded batches. Each
//! pruner is run on demand with its run-once message.

use std::time::Duration;

use koor::audit::PruneAudit;
use koor::events::PruneEvents;
use koor::llm::PruneUsage;
use koor::retention::PRUNE_BATCH;
use koor::state::PruneHistory;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_json};

async fn exec(db: &DatabaseConnection, sql: &str) -> Result<u64, sea_orm::DbErr> {
    db.execute_unprepared(sql).await.map(|r| r.rows_affected())
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let backend = db.get_database_backend();
    db.query_one_raw(sea_orm::Statement::from_string(backend, sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// No pruner ever runs by itself during a test: the tests send the run-once messages.
const NEVER: Duration = Duration::from_secs(3600);

#[actix_web::test]
async fn history_pruned_to_n_keeps_exactly_the_newest_n_and_the_current_value() {
    let app = TestApp::spawn_with(|c| {
        c.history_keep_versions = Some(3);
        c.prune_interval = NEVER;
    })
    .await;
    for i in 1..=10 {
        app.put_state("many", format!("{{\"v\":{i}}}").as_bytes())
            .await;
    }
    app.put_state("one", b"1").await;
    for i in 1..=3 {
        app.put_state("three", format!("{i}").as_bytes()).await;
    }
    for i in 1..=5 {
        let put = app
            .request(Method::PUT, "/api/specs/proj/contract")
            .body(format!("{{\"v\":{i}}}"))
            .send()
            .await
            .unwrap();
        assert_json(put, StatusCode::OK).await;
    }

    let deleted = app.domains.state.send(PruneHistory).await.unwrap().unwrap();
    assert_eq!(deleted, 7, "versions 1 to 7 of `many`");
    assert_eq!(app.versions("many").await, [10, 9, 8]);
    assert_eq!(app.versions("one").await, [1]);
    assert_eq!(app.versions("three").await, [3, 2, 1]);
    let current = app.get("/api/state/many").await;
    assert_eq!(current.headers()["X-Koor-Version"], "10");
    assert_eq!(current.text().await.unwrap(), "{\"v\":10}");
    // An old version is gone; a kept one still reads and rolls back.
    assert_eq!(
        app.get("/api/state/many?version=7").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/state/many?version=8").await.status(),
        StatusCode::OK
    );
    // A second pass finds nothing more.
    assert_eq!(
        app.domains.state.send(PruneHistory).await.unwrap().unwrap(),
        0
    );

    // Specs are pruned by their own store, with the same rule.
    let db = app.open_db().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM spec_versions").await, 5);
    assert_eq!(
        app.domains.specs.send(PruneHistory).await.unwrap().unwrap(),
        2
    );
    assert_eq!(
        count(&db, "SELECT MIN(version) FROM spec_versions").await,
        3
    );
    let spec = app.get_json("/api/specs/proj/contract").await;
    assert_eq!(spec, json!({"v": 5}));

    // New writes continue the version sequence after a prune.
    assert_eq!(app.put_state("many", b"11").await["version"], 11);
}

#[actix_web::test]
async fn history_pruned_by_age_keeps_the_current_version_however_old() {
    let app = TestApp::spawn_with(|c| {
        c.history_retention = Some(Duration::from_millis(400));
        c.prune_interval = NEVER;
    })
    .await;
    for i in 1..=4 {
        app.put_state("a", format!("{i}").as_bytes()).await;
    }
    app.put_state("b", b"1").await;
    app.put_state("b", b"2").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    app.put_state("a", b"5").await;

    let deleted = app.domains.state.send(PruneHistory).await.unwrap().unwrap();
    assert_eq!(deleted, 5, "a 1..4 and b 1");
    assert_eq!(app.versions("a").await, [5]);
    assert_eq!(app.versions("b").await, [2], "the current version stays");
    assert_eq!(app.get("/api/state/b").await.text().await.unwrap(), "2");
}

#[actix_web::test]
async fn no_retention_set_prunes_nothing() {
    let app = TestApp::spawn_with(|c| c.prune_interval = NEVER).await;
    for i in 1..=3 {
        app.put_state("k", format!("{i}").as_bytes()).await;
    }
    assert_eq!(
        app.domains.state.send(PruneHistory).await.unwrap().unwrap(),
        0
    );
    assert_eq!(
        app.domains.audit.send(PruneAudit).await.unwrap().unwrap(),
        0
    );
    assert_eq!(app.domains.llm.send(PruneUsage).await.unwrap().unwrap(), 0);
    assert_eq!(app.versions("k").await, [3, 2, 1]);
    assert_eq!(
        app.get_json("/api/audit/verify").await,
        json!({"ok": true, "entries": 3})
    );
}

/// A server keeping audit entries for 300 ms, with entries 1..=5 older than that and
/// entries 6 and 7 new, pruned once.
async fn pruned_audit_log() -> TestApp {
    let app = TestApp::spawn_with(|c| {
        c.audit_retention = Some(Duration::from_millis(300));
        c.prune_interval = NEVER;
    })
    .await;
    for i in 1..=5 {
        app.put_state(&format!("old/{i}"), b"1").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.put_state("new/6", b"1").await;
    app.put_state("new/7", b"1").await;
    let deleted = app.domains.audit.send(PruneAudit).await.unwrap().unwrap();
    assert_eq!(deleted, 5);
    app
}

#[actix_web::test]
async fn an_audit_log_pruned_by_age_still_verifies_from_its_checkpoint() {
    let app = pruned_audit_log().await;
    let db = app.open_db().await;
    assert_eq!(count(&db, "SELECT MIN(id) FROM audit_log").await, 6);
    let hash5: String = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT hash FROM audit_checkpoint WHERE id = 1",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();

    let report = app.get_json("/api/audit/verify").await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["entries"], 2, "{report}");
    assert_eq!(report["from_id"], 6, "{report}");
    assert_eq!(report["checkpoint"]["id"], 5, "{report}");
    assert_eq!(report["checkpoint"]["hash"], hash5.as_str(), "{report}");
    assert!(report["checkpoint"]["pruned_at"].is_string(), "{report}");

    // New entries chain on; the newest entry is never pruned, however old.
    app.put_state("new/8", b"1").await;
    let report = app.get_json("/api/audit/verify").await;
    assert_eq!(
        (report["ok"].clone(), report["entries"].clone()),
        (json!(true), json!(3))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.domains.audit.send(PruneAudit).await.unwrap().unwrap(),
        2
    );
    let report = app.get_json("/api/audit/verify").await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["entries"], 1, "{report}");
    assert_eq!(report["from_id"], 8, "{report}");
    assert_eq!(report["checkpoint"]["id"], 7, "{report}");

    // Pruning is the one way to delete: entries after the checkpoint stay append-only,
    // and the checkpoint only moves forward, onto a stored entry and its hash.
    let refused = exec(&db, "DELETE FROM audit_log WHERE id = 8").await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    let back = exec(&db, "UPDATE audit_checkpoint SET through_id = 2").await;
    assert!(back.unwrap_err().to_string().contains("audit checkpoint"));
    let forged = exec(
        &db,
        "UPDATE audit_checkpoint SET through_id = 8, hash = 'x'",
    )
    .await;
    assert!(forged.unwrap_err().to_string().contains("stored entry"));
    let gone = exec(&db, "DELETE FROM audit_checkpoint").await;
    assert!(gone.unwrap_err().to_string().contains("cannot be deleted"));
}

#[actix_web::test]
async fn tampering_after_the_checkpoint_is_still_detected() {
    let app = pruned_audit_log().await;
    let db = app.open_db().await;
    let drop = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => "DROP TRIGGER audit_log_no_update ON audit_log",
        _ => "DROP TRIGGER audit_log_no_update",
    };
    exec(&db, drop).await.unwrap();
    exec(&db, "UPDATE audit_log SET actor = 'mallory' WHERE id = 7")
        .await
        .unwrap();
    let report = app.get_json("/api/audit/verify").await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["broken_id"], 7, "{report}");
    assert_eq!(report["entries"], 1, "{report}");
    assert_eq!(report["from_id"], 6, "{report}");
    assert_eq!(report["checkpoint"]["id"], 5, "{report}");
}

#[actix_web::test]
async fn a_broken_chain_is_never_pruned_away() {
    let app = TestApp::spawn_with(|c| {
        c.audit_retention = Some(Duration::from_millis(300));
        c.prune_interval = NEVER;
    })
    .await;
    for i in 1..=5 {
        app.put_state(&format!("k/{i}"), b"1").await;
    }
    let db = app.open_db().await;
    let drop = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => "DROP TRIGGER audit_log_no_update ON audit_log",
        _ => "DROP TRIGGER audit_log_no_update",
    };
    exec(&db, drop).await.unwrap();
    exec(&db, "UPDATE audit_log SET resource = 'k/x' WHERE id = 3")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.domains.audit.send(PruneAudit).await.unwrap().unwrap(),
        0,
        "the batch holding the edited entry is not pruned"
    );
    let report = app.get_json("/api/audit/verify").await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["broken_id"], 3, "{report}");
    assert!(report.get("checkpoint").is_none(), "{report}");
}

fn usage(tokens: i64) -> Value {
    json!({"provider": "openai", "model": "gpt", "instance_id": "i1", "project": "p",
           "tokens_in": tokens, "tokens_out": 0, "cost_usd": 0.0})
}

#[actix_web::test]
async fn llm_usage_is_pruned_by_age_but_never_this_month() {
    let app = TestApp::spawn_with(|c| {
        c.llm_usage_retention = Some(Duration::from_millis(1));
        c.prune_interval = NEVER;
    })
    .await;
    for tokens in 1..=4 {
        app.post("/api/llm/usage", Some(usage(tokens)), StatusCode::OK)
            .await;
    }
    // Records 1 and 2 are from 70 days ago; 3 and 4 from now (this month).
    let db = app.open_db().await;
    let old = koor::time::now_micros() - 70 * 86_400 * 1_000_000;
    exec(
        &db,
        &format!("UPDATE llm_usage SET created_at = {old} WHERE id <= 2"),
    )
    .await
    .unwrap();
    assert_eq!(app.domains.llm.send(PruneUsage).await.unwrap().unwrap(), 2);
    let left = app.get_json("/api/llm/usage").await;
    let mut ids: Vec<i64> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [3, 4]);
    // New records continue the ids.
    let next = app
        .post("/api/llm/usage", Some(usage(5)), StatusCode::OK)
        .await;
    assert_eq!(next["id"], 5, "{next}");
}

/// The value of the series `name` (with its labels) in a scrape.
fn series(text: &str, name: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.trim().parse::<f64>().unwrap() as i64)
}

#[actix_web::test]
async fn disk_use_is_in_metrics() {
    let app = TestApp::spawn().await;
    for i in 1..=3 {
        app.put_state("d", format!("{i}").as_bytes()).await;
    }
    app.put_state("e", b"1").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(series(&text, "koor_db_size_bytes").unwrap() > 0, "{text}");
    assert_eq!(
        series(&text, "koor_db_table_rows{table=\"state_versions\"}"),
        Some(4),
        "{text}"
    );
    assert_eq!(
        series(&text, "koor_db_table_rows{table=\"audit_log\"}"),
        Some(4),
        "{text}"
    );
    if app.database_url.is_some() {
        assert!(series(&text, "koor_db_wal_size_bytes").is_none(), "{text}");
        assert!(
            series(&text, "koor_db_table_size_bytes{table=\"state_versions\"}").unwrap() > 0,
            "{text}"
        );
    } else {
        assert!(
            series(&text, "koor_db_wal_size_bytes").unwrap() > 0,
            "{text}"
        );
    }
}

#[actix_web::test]
async fn koor_status_shows_the_disk_use() {
    let app = TestApp::spawn().await;
    app.put_state("s", b"1").await;
    app.put_state("s", b"2").await;
    let cwd = app.dir.path();
    let out = crate::cli::koor(&app.address, cwd, &["status", "--json"], None).await;
    assert!(out.status.success(), "{out:?}");
    let o: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(o["disk"]["database_bytes"].as_i64().unwrap() > 0, "{o}");
    assert_eq!(o["disk"]["rows"]["state_versions"], 2, "{o}");
    assert_eq!(
        o["disk"].get("wal_bytes").is_some(),
        app.database_url.is_none(),
        "a WAL size on SQLite only: {o}"
    );
    let out = crate::cli::koor(&app.address, cwd, &["status"], None).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\ndisk: database "), "{text}");
    assert!(text.contains("state_versions 2"), "{text}");
}

/// The ids of the events `GET /api/events/history?after=…` answers, oldest first.
async fn event_ids_after(app: &TestApp, after: i64) -> Vec<i64> {
    let body = app
        .get_json(&format!("/api/events/history?after={after}&limit=1000"))
        .await;
    body.as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

#[actix_web::test]
async fn events_pruned_in_batches_keep_exactly_the_newest_n() {
    let app = TestApp::spawn_with(|c| {
        c.event_retention = 100;
        c.prune_interval = NEVER;
    })
    .await;
    // More than two batches of events, published 100 at a time.
    let total = 2 * PRUNE_BATCH as usize + 300;
    let mut ids = Vec::new();
    for chunk in 0..total / 100 {
        let published = (0..100).map(|i| app.publish("p.tick", json!(chunk * 100 + i)));
        for e in futures_util::future::join_all(published).await {
            ids.push(e["id"].as_i64().unwrap());
        }
    }
    ids.sort();
    // A gap wider than a batch (as rolled-back ids leave on PostgreSQL): a batch that
    // deletes fewer rows than its bound does not end the prune.
    let db = app.open_db().await;
    let gap = exec(
        &db,
        &format!(
            "DELETE FROM events WHERE id > {} AND id < {}",
            ids[100], ids[700]
        ),
    )
    .await
    .unwrap();
    assert_eq!(gap, 599);

    let deleted = app.domains.events.send(PruneEvents).await.unwrap().unwrap();
    assert_eq!(deleted, (total - 100) as u64 - gap);
    let newest = &ids[total - 100..];
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events").await, 100);
    assert_eq!(event_ids_after(&app, newest[0] - 1).await, newest);

    // A cursor behind the prune is told where the history now starts.
    let err = assert_error(
        app.get(&format!("/api/events/history?after={}", ids[0]))
            .await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(err["oldest_id"], newest[0]);

    // Nothing left to prune, then exactly what the next event pushes out.
    assert_eq!(
        app.domains.events.send(PruneEvents).await.unwrap().unwrap(),
        0
    );
    let next = app.publish("p.tick", json!("next")).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.domains.events.send(PruneEvents).await.unwrap().unwrap(),
        1
    );
    let mut kept = newest[1..].to_vec();
    kept.push(next);
    assert_eq!(event_ids_after(&app, kept[0] - 1).await, kept);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events").await, 100);
}
