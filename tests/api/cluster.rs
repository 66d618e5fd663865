//! A cluster of real `koor serve` processes on one PostgreSQL database (API §27): events
//! published on any member reach subscribers on every member in id order; writes through
//! a follower are stored and read back through it; after `kill -9` of the leader a
//! follower leads within the failover time with every acknowledged write, and its
//! subscribers keep their streams; a paused leader cannot commit after a successor took
//! over. Runs only when `KOOR_TEST_DATABASE_URL` is set.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    Acked, ServerProcess, Socket, TEST_DATABASE_ENV, TestDatabase, next_json, spawn_writer,
    subscribe_on, test_database_url,
};

/// The failover time the cluster tests run with.
const FAILOVER: u64 = 2;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn member(dir: &Path, url: &str) -> ServerProcess {
    let failover = FAILOVER.to_string();
    ServerProcess::start(
        dir,
        &[
            "--database-url",
            url,
            "--failover-seconds",
            failover.as_str(),
        ],
    )
    .await
}

async fn health(client: &reqwest::Client, m: &ServerProcess) -> Option<Value> {
    client
        .get(m.url("/health"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

async fn role(client: &reqwest::Client, m: &ServerProcess) -> Option<String> {
    Some(health(client, m).await?["role"].as_str()?.to_string())
}

/// Waits until `m` reports `want` as its role; the time it took.
async fn until_role(
    client: &reqwest::Client,
    m: &ServerProcess,
    want: &str,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        if role(client, m).await.as_deref() == Some(want) {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "no {want} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn subscribe(m: &ServerProcess, pattern: &str) -> Socket {
    subscribe_on(m.port, &format!("pattern={pattern}")).await
}

async fn publish(client: &reqwest::Client, m: &ServerProcess, topic: &str, data: Value) -> Value {
    let resp = client
        .post(m.url("/api/events/publish"))
        .json(&json!({"topic": topic, "data": data}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "publish through :{}", m.port);
    resp.json().await.unwrap()
}

/// Publishes `{prefix}.probe` through `m` until `ws` receives one: the subscription is live.
async fn until_live(client: &reqwest::Client, ws: &mut Socket, m: &ServerProcess, prefix: &str) {
    use futures_util::StreamExt;
    let topic = format!("{prefix}.probe");
    for _ in 0..50 {
        publish(client, m, &topic, json!(null)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
            if let awc::ws::Frame::Text(text) = frame {
                let event: Value = serde_json::from_slice(&text).unwrap();
                if event["topic"] == json!(topic) {
                    return;
                }
            }
        }
    }
    panic!("the subscription on :{} never went live", m.port);
}

/// Reads `n` events from `ws`, skipping probes: their ids strictly increase and their data
/// is 0..n.
async fn expect_in_order(ws: &mut Socket, n: i64, who: &str) {
    let mut last = 0;
    let mut i = 0;
    while i < n {
        let event = next_json(ws)
            .await
            .unwrap_or_else(|| panic!("{who}: closed at {i}"));
        if event["topic"]
            .as_str()
            .is_some_and(|t| t.ends_with(".probe"))
        {
            continue;
        }
        let id = event["id"].as_i64().unwrap();
        assert!(id > last, "{who}: id {id} after {last}");
        assert_eq!(
            event["data"],
            json!(i),
            "{who}: event {i} out of order: {event}"
        );
        last = id;
        i += 1;
    }
}

fn signal(m: &ServerProcess, sig: &str) {
    let pid = m.child.id().expect("running").to_string();
    let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
    assert!(ok.success(), "kill {sig} {pid}");
}

#[actix_web::test]
async fn two_members_share_events_and_writes_and_a_follower_takes_over() {
    let Some(base) = test_database_url() else {
        eprintln!("skipped: {TEST_DATABASE_ENV} is not set");
        return;
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_database, url) = TestDatabase::for_dir(&base, da.path()).await;
    let client = client();
    let mut a = member(da.path(), &url).await;
    assert_eq!(role(&client, &a).await.as_deref(), Some("leader"));
    let b = member(db.path(), &url).await;
    let seen = health(&client, &b).await.unwrap();
    assert_eq!(seen["role"], "follower", "{seen}");
    until_leader_known(&client, &b, &a).await;

    // 300 events published alternately through both members reach a follower's
    // subscriber (and the leader's), all in order.
    let mut on_b = subscribe(&b, "c.*").await;
    until_live(&client, &mut on_b, &a, "c").await;
    let mut on_a = subscribe(&a, "c.*").await;
    until_live(&client, &mut on_a, &b, "c").await;
    for i in 0..300 {
        let via = if i % 2 == 0 { &a } else { &b };
        publish(&client, via, "c.n", json!(i)).await;
    }
    expect_in_order(&mut on_b, 300, "follower").await;
    expect_in_order(&mut on_a, 300, "leader").await;

    // A write through the follower is stored, and read back through either member.
    let put = client
        .put(b.url("/api/state/cluster/one"))
        .header("content-type", "application/json")
        .body(r#"{"via":"follower"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    for m in [&a, &b] {
        let got = client
            .get(m.url("/api/state/cluster/one"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.text().await.unwrap(), r#"{"via":"follower"}"#);
    }
    // Reads the follower does not serve itself (the registry) come from the leader.
    let reg = client
        .post(b.url("/api/instances/register"))
        .json(&json!({"name": "through-b", "workspace": "/w", "intent": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 200);
    let list: Value = client
        .get(b.url("/api/instances"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.to_string().contains("through-b"), "{list}");

    // Writes through both members under load, until the leader is killed.
    // The leader's writers stop when it is gone; the follower's retry through the takeover.
    let acked = Acked::default();
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let to_leader = w % 2 == 0;
            let base = if to_leader { a.url("") } else { b.url("") };
            spawn_writer(&client, base, "load", w, &acked, !to_leader)
        })
        .collect();
    let before = publish(&client, &a, "c.before", json!(-1)).await;
    loop {
        let e = next_json(&mut on_b).await.unwrap();
        if e["id"] == before["id"] {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.child.start_kill().unwrap(); // SIGKILL, with writes in flight on both members
    a.child.wait().await.unwrap();
    let took = until_role(&client, &b, "leader", Duration::from_secs(5 + FAILOVER)).await;
    eprintln!("follower led {took:?} after the kill");
    // Let the follower's writers get some writes in on the new leader, then stop them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for w in writers {
        w.abort();
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    for (key, body) in &acked {
        let got = client
            .get(b.url(&format!("/api/state/{key}")))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200, "{key} was acknowledged");
        assert_eq!(got.text().await.unwrap(), *body, "{key}");
    }
    // The subscriber on the follower kept its stream across the takeover, and event ids
    // continue.
    let after = publish(&client, &b, "c.after", json!(-2)).await;
    assert!(after["id"].as_i64() > before["id"].as_i64());
    loop {
        let e = next_json(&mut on_b)
            .await
            .expect("the stream survives the takeover");
        if e["topic"] == "c.after" {
            assert_eq!(e["id"], after["id"]);
            break;
        }
    }
    let verify: Value = client
        .get(b.url("/api/audit/verify"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    let cluster: Value = client
        .get(b.url("/api/cluster"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cluster["role"], "leader");
    assert!(cluster["epoch"].as_i64().unwrap() >= 2, "{cluster}");
}

/// Waits until `follower` names `leader` in `/health`.
async fn until_leader_known(
    client: &reqwest::Client,
    follower: &ServerProcess,
    leader: &ServerProcess,
) {
    let want = format!("http://127.0.0.1:{}", leader.port);
    let start = Instant::now();
    while health(client, follower).await.unwrap()["leader"] != json!(want) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the follower never learned the leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn three_members_stream_in_order_and_a_paused_leader_cannot_commit() {
    let Some(base) = test_database_url() else {
        eprintln!("skipped: {TEST_DATABASE_ENV} is not set");
        return;
    };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (_database, url) = TestDatabase::for_dir(&base, dirs[0].path()).await;
    let client = client();
    let mut a = member(dirs[0].path(), &url).await;
    let b = member(dirs[1].path(), &url).await;
    let c = member(dirs[2].path(), &url).await;
    for f in [&b, &c] {
        until_leader_known(&client, f, &a).await;
    }
    // Every member is listed once it has proven it is alive.
    let start = Instant::now();
    loop {
        let members: Value = client
            .get(c.url("/api/cluster"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if members["members"].as_array().unwrap().len() == 3 {
            assert_eq!(members["members"][0]["role"], "leader", "{members}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{members}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Events published on any member reach subscribers on every member, in order.
    let mut sockets = Vec::new();
    for m in [&a, &b, &c] {
        let mut ws = subscribe(m, "three.*").await;
        until_live(&client, &mut ws, m, "three").await;
        sockets.push(ws);
    }
    for i in 0..60 {
        let via = [&a, &b, &c][i % 3];
        publish(&client, via, "three.n", json!(i)).await;
    }
    for (ws, who) in sockets.iter_mut().zip(["a", "b", "c"]) {
        expect_in_order(ws, 60, who).await;
    }

    // Pause the leader with a write waiting on it.
    signal(&a, "-STOP");
    let stuck = {
        let (client, target) = (client.clone(), a.url("/api/state/paused/write"));
        tokio::spawn(async move {
            client
                .put(target)
                .header("content-type", "application/json")
                .body(r#"{"late":true}"#)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    // One of the followers leads within the failover time (plus detection).
    let start = Instant::now();
    let leader = loop {
        if role(&client, &b).await.as_deref() == Some("leader") {
            break &b;
        }
        if role(&client, &c).await.as_deref() == Some("leader") {
            break &c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5 + FAILOVER),
            "no takeover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let other = if std::ptr::eq(leader, &b) { &c } else { &b };
    // The old leader wakes up after the takeover: its waiting write must not commit.
    signal(&a, "-CONT");
    let answer = stuck.await.unwrap();
    assert!(
        !matches!(answer, Ok(200..=299)),
        "a paused leader acknowledged a write after losing the lead: {answer:?}"
    );
    let gone = client
        .get(leader.url("/api/state/paused/write"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.status(),
        404,
        "the paused leader's write was committed"
    );
    // It stops rather than serve as a second leader.
    let exited = tokio::time::timeout(Duration::from_secs(15), a.child.wait()).await;
    assert!(exited.is_ok(), "the deposed leader is still running");
    // The cluster goes on: writes through the remaining follower are stored.
    until_leader_known(&client, other, leader).await;
    let put = client
        .put(other.url("/api/state/after/pause"))
        .header("content-type", "application/json")
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let got = client
        .get(leader.url("/api/state/after/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
}
