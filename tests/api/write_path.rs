//! The one write path: a write's rows, its audit entry and its event commit together. Under
//! concurrent writers of several domains every acknowledged write has exactly one audit
//! entry and one event, the audit chain is one intact chain across domains, a WebSocket
//! subscriber gets the events of every domain in id order with no gap and no duplicate,
//! and `kill -9` under load loses no acknowledged write, entry or event.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, assert_json, next_json, subscribe};

/// A server reached over HTTP: an in-process `TestApp` or a `ServerProcess`.
#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    base: String,
}

impl Target {
    fn on_port(port: u16) -> Self {
        Self {
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn get_json(&self, path: &str) -> Value {
        let resp = self.client.get(self.url(path)).send().await.unwrap();
        assert_json(resp, StatusCode::OK).await
    }
}

/// The kinds of write the writers mix.
#[derive(Clone, Copy, Debug)]
enum Kind {
    State,
    Spec,
    Register,
    Publish,
}

/// An acknowledged write, as its answer, its audit entry and its event each name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ack {
    State { key: String, version: i64 },
    Spec { resource: String, version: i64 },
    Register { id: String, name: String },
    Publish { id: i64, topic: String },
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// Write number `n` of writer `w`. A transport error (the server is gone) is `Err`; any
/// answer but 200 fails the test.
async fn write(t: &Target, kind: Kind, w: usize, n: usize) -> Result<Ack, reqwest::Error> {
    let c = &t.client;
    let req = match kind {
        Kind::State => c
            .put(t.url(&format!("/api/state/wp/{}", (w * 7 + n) % 16)))
            .header("content-type", "application/json")
            .body(format!("{{\"w\":{w},\"n\":{n}}}")),
        Kind::Spec => c
            .put(t.url(&format!("/api/specs/wp/s{}", (w + n) % 8)))
            .body(format!("{{\"openapi\":\"3\",\"w\":{w},\"n\":{n}}}")),
        Kind::Register => c
            .post(t.url("/api/instances/register"))
            .json(&json!({"name": format!("agent-{w}-{n}"), "workspace": "/wp"})),
        Kind::Publish => c
            .post(t.url("/api/events/publish"))
            .json(&json!({"topic": format!("wp.pub.{w}"), "data": {"n": n}})),
    };
    let resp = req.send().await?;
    let status = resp.status();
    let body = resp.text().await?;
    assert_eq!(status, StatusCode::OK, "{kind:?} write {w}/{n}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    Ok(match kind {
        Kind::State => Ack::State {
            key: text(&v["key"]),
            version: int(&v["version"]),
        },
        Kind::Spec => Ack::Spec {
            resource: format!("{}/{}", text(&v["project"]), text(&v["name"])),
            version: int(&v["version"]),
        },
        Kind::Register => Ack::Register {
            id: text(&v["id"]),
            name: text(&v["name"]),
        },
        Kind::Publish => Ack::Publish {
            id: int(&v["id"]),
            topic: text(&v["topic"]),
        },
    })
}

/// Writer `w`: writes cycling through `kinds` until `until` or `max` writes, counting them
/// in `progress`, and returns its acknowledged writes and the transport error that stopped
/// it, if one did.
async fn writer(
    t: Target,
    w: usize,
    kinds: &[Kind],
    until: Instant,
    max: usize,
    progress: Arc<AtomicUsize>,
) -> (Vec<Ack>, Option<reqwest::Error>) {
    let mut acks = Vec::new();
    for n in 0..max {
        if Instant::now() >= until {
            break;
        }
        match write(&t, kinds[(w + n) % kinds.len()], w, n).await {
            Ok(ack) => acks.push(ack),
            Err(e) => return (acks, Some(e)),
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    (acks, None)
}

/// Runs `writers` concurrent writers; every write must be acknowledged.
async fn run_writers(
    t: &Target,
    writers: usize,
    kinds: &[Kind],
    run_for: Duration,
    max: usize,
) -> Vec<Ack> {
    let until = Instant::now() + run_for;
    let progress = Arc::new(AtomicUsize::new(0));
    let runs = (0..writers).map(|w| writer(t.clone(), w, kinds, until, max, progress.clone()));
    let mut acks = Vec::new();
    for (w, (mine, error)) in futures_util::future::join_all(runs)
        .await
        .into_iter()
        .enumerate()
    {
        assert!(error.is_none(), "writer {w}: {error:?}");
        acks.extend(mine);
    }
    acks
}

/// The write an audit entry records.
fn audit_ack(e: &Value) -> Ack {
    let detail: Value = serde_json::from_str(e["detail"].as_str().unwrap()).unwrap();
    match e["action"].as_str().unwrap() {
        "state.put" => Ack::State {
            key: text(&e["resource"]),
            version: int(&detail["version"]),
        },
        "spec.put" => Ack::Spec {
            resource: text(&e["resource"]),
            version: int(&detail["version"]),
        },
        "instance.register" => Ack::Register {
            id: text(&e["resource"]),
            name: text(&e["actor"]),
        },
        _ => panic!("an audit entry no write of the test makes: {e}"),
    }
}

/// The write an event reports.
fn event_ack(e: &Value) -> Ack {
    let d = &e["data"];
    match e["topic"].as_str().unwrap() {
        "state.updated" => Ack::State {
            key: text(&d["key"]),
            version: int(&d["version"]),
        },
        "spec.updated" => Ack::Spec {
            resource: format!("{}/{}", text(&d["project"]), text(&d["name"])),
            version: int(&d["version"]),
        },
        "agent.registered" => Ack::Register {
            id: text(&d["instance_id"]),
            name: text(&d["name"]),
        },
        topic => Ack::Publish {
            id: int(&e["id"]),
            topic: topic.to_string(),
        },
    }
}

/// How many times each item occurs.
fn counts<T: Ord + Clone>(items: &[T]) -> BTreeMap<T, usize> {
    let mut map = BTreeMap::new();
    for item in items {
        *map.entry(item.clone()).or_insert(0) += 1;
    }
    map
}

/// Asserts that `got` holds every item of `want` exactly as often (as multisets), naming
/// the first few differences.
fn assert_same<T: Ord + Clone + Debug>(what: &str, want: &[T], got: &[T]) {
    let (want_n, got_n) = (counts(want), counts(got));
    let missing: Vec<_> = want_n
        .iter()
        .filter(|(k, n)| got_n.get(*k).copied().unwrap_or(0) < **n)
        .take(5)
        .collect();
    let extra: Vec<_> = got_n
        .iter()
        .filter(|(k, n)| want_n.get(*k).copied().unwrap_or(0) < **n)
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} wanted, {} found; short of (item, times wanted): {missing:?}; \
         beyond (item, times found): {extra:?}",
        want.len(),
        got.len(),
    );
}

/// Every item occurs once.
fn assert_unique<T: Ord + Clone + Debug>(what: &str, items: &[T]) {
    let dup: Vec<_> = counts(items)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .take(5)
        .collect();
    assert!(dup.is_empty(), "{what} more than once: {dup:?}");
}

/// Every stored event matching `topic` (all when empty), oldest first, paged by `after`.
async fn all_events(t: &Target, topic: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| int(&e["id"]));
        let page = t
            .get_json(&format!(
                "/api/events/history?after={after}&topic={topic}&limit=10000"
            ))
            .await;
        let page = page.as_array().unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page.iter().cloned());
    }
}

/// Every audit entry for `action` (all when empty), oldest first. The listing has no
/// cursor, so the tests write fewer entries than one page holds.
async fn all_audit(t: &Target, action: &str) -> Vec<Value> {
    let filter = if action.is_empty() {
        String::new()
    } else {
        format!("&action={action}")
    };
    let listed = t.get_json(&format!("/api/audit?limit=10000{filter}")).await;
    let mut entries = listed.as_array().unwrap().clone();
    assert!(entries.len() < 10_000, "more entries than one page holds");
    entries.reverse();
    entries
}

/// Asserts that `ids` are `1..=want`, naming the first one out of place.
fn assert_dense(what: &str, ids: &[i64], want: usize) {
    let wrong = ids.iter().zip(1..).position(|(id, n)| *id != n);
    assert!(
        wrong.is_none() && ids.len() == want,
        "{what}: {} ids, {want} wanted; first out of place at index {wrong:?}: {:?}",
        ids.len(),
        wrong.map(|i| &ids[i.saturating_sub(2)..(i + 3).min(ids.len())]),
    );
}

/// Asserts that `field` (an RFC 3339 time, all of one width) never decreases along `items`.
fn assert_time_order(what: &str, items: &[Value], field: &str) {
    let back = items
        .windows(2)
        .find(|p| text(&p[0][field]) > text(&p[1][field]));
    assert!(back.is_none(), "{what}: {field} goes back: {back:?}");
}

/// The versions acknowledged (or stored) for each key of `acks` of the state or spec kind.
fn versions(acks: &[Ack]) -> BTreeMap<String, Vec<i64>> {
    let mut map: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for ack in acks {
        if let Ack::State { key: k, version }
        | Ack::Spec {
            resource: k,
            version,
        } = ack
        {
            map.entry(k.clone()).or_default().push(*version);
        }
    }
    for v in map.values_mut() {
        v.sort_unstable();
    }
    map
}

#[actix_web::test]
async fn concurrent_writes_of_three_domains_have_one_audit_entry_and_one_event_each() {
    let app = TestApp::spawn().await;
    let t = Target::on_port(app.port);
    let acks = run_writers(
        &t,
        32,
        &[Kind::State, Kind::Spec, Kind::Register],
        Duration::from_secs(3),
        300,
    )
    .await;
    let of = |pick: fn(&Ack) -> bool| acks.iter().filter(|a| pick(a)).count();
    let states = of(|a| matches!(a, Ack::State { .. }));
    let specs = of(|a| matches!(a, Ack::Spec { .. }));
    let registers = of(|a| matches!(a, Ack::Register { .. }));
    assert!(
        states >= 32 && specs >= 32 && registers >= 32,
        "too little load to prove anything: {states} state, {specs} spec, {registers} register"
    );

    // No two answers name the same version, and nothing was skipped: all writes were
    // answered 200, so each key's versions are exactly 1..=n.
    assert_unique("an acknowledged write", &acks);
    for (key, got) in versions(&acks) {
        assert_dense(&format!("acknowledged versions of {key}"), &got, got.len());
    }

    // Exactly one audit entry per acknowledged write, in one chain across the domains.
    let summary = t.get_json("/api/audit/summary").await;
    assert_eq!(
        summary["action_counts"],
        json!({"instance.register": registers, "spec.put": specs, "state.put": states}),
        "{summary}"
    );
    assert_eq!(summary["total_entries"], acks.len());
    let entries = all_audit(&t, "").await;
    let ids: Vec<i64> = entries.iter().map(|e| int(&e["id"])).collect();
    assert_dense("audit ids", &ids, acks.len());
    // Batches of several domains commit in turn: time never goes back in id order.
    assert_time_order("audit entries", &entries, "timestamp");
    let recorded: Vec<Ack> = entries.iter().map(audit_ack).collect();
    assert_same("audit entries", &acks, &recorded);
    let state_entries: Vec<Ack> = all_audit(&t, "state.put")
        .await
        .iter()
        .map(audit_ack)
        .collect();
    let state_acks: Vec<Ack> = acks
        .iter()
        .filter(|a| matches!(a, Ack::State { .. }))
        .cloned()
        .collect();
    assert_same("state.put entries", &state_acks, &state_entries);
    assert_eq!(
        t.get_json("/api/audit/verify").await,
        json!({"ok": true, "entries": acks.len()})
    );

    // Exactly one event per acknowledged write, and no other.
    let events = all_events(&t, "").await;
    let ids: Vec<i64> = events.iter().map(|e| int(&e["id"])).collect();
    assert_dense("event ids", &ids, acks.len());
    assert_time_order("events", &events, "created_at");
    let reported: Vec<Ack> = events.iter().map(event_ack).collect();
    assert_same("events", &acks, &reported);
    let state_events: Vec<Ack> = all_events(&t, "state.*")
        .await
        .iter()
        .map(event_ack)
        .collect();
    assert_same("state.updated events", &state_acks, &state_events);
}

#[actix_web::test]
async fn a_websocket_subscriber_gets_every_domains_events_in_id_order_without_gap() {
    // A buffer no burst of this test can fill: lagging is not what is tested here.
    let app = TestApp::spawn_with(|c| c.subscriber_buffer = 100_000).await;
    let t = Target::on_port(app.port);
    let mut ws = subscribe(&app, "pattern=*").await;
    // The subscription is live once it delivers an event published after it.
    let probe = int(&app.publish("wp.probe", Value::Null).await["id"]);
    let first = next_json(&mut ws).await.expect("the probe");
    assert_eq!(first["id"], probe, "{first}");

    // The subscriber reads while the writers write, until the fence published after them.
    let reader = actix_web::rt::spawn(async move {
        let mut got = Vec::new();
        loop {
            let frame = next_json(&mut ws)
                .await
                .expect("the socket stays open until the fence");
            assert_ne!(frame["topic"], "koor.lagged", "the subscriber lagged");
            let fence = frame["topic"] == "wp.fence";
            got.push(frame);
            if fence {
                return got;
            }
        }
    });
    let acks = run_writers(
        &t,
        16,
        &[Kind::State, Kind::Spec, Kind::Register, Kind::Publish],
        Duration::from_secs(2),
        150,
    )
    .await;
    let fence = app.publish("wp.fence", Value::Null).await;
    let got = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the fence arrives within 30 s")
        .unwrap();

    let ids: Vec<i64> = got.iter().map(|e| int(&e["id"])).collect();
    // Relative to the probe: one event per acknowledged write, then the fence.
    let after_probe: Vec<i64> = ids.iter().map(|id| id - probe).collect();
    assert_dense("ids on the socket", &after_probe, acks.len() + 1);
    assert_eq!(got.last(), Some(&fence), "the fence as published");
    let received: Vec<Ack> = got[..got.len() - 1].iter().map(event_ack).collect();
    assert_same("events on the socket", &acks, &received);
    for kind in [
        "state.updated",
        "spec.updated",
        "agent.registered",
        "wp.pub.0",
    ] {
        assert!(
            got.iter().any(|e| e["topic"] == kind),
            "no {kind} among the events"
        );
    }
}

#[actix_web::test]
async fn an_event_committed_without_a_report_is_read_back_and_delivered_in_its_place() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let mut ws = subscribe(&app, "pattern=*").await;
    let probe = int(&app.publish("wp.probe", Value::Null).await["id"]);
    assert_eq!(next_json(&mut ws).await.expect("the probe")["id"], probe);

    // A committed event whose writer never tells the bus: a row written to the table by
    // another connection. The next event reported is one id further on.
    let db = app.open_db().await;
    db.execute_unprepared(
        "INSERT INTO events (id, topic, data, source, created_at) \
         VALUES ((SELECT MAX(id) + 1 FROM events), 'wp.unreported', '{\"n\":1}', \
         'elsewhere', 1771252200000000)",
    )
    .await
    .unwrap();
    let reported = app.publish("wp.reported", json!({"n": 2})).await;
    assert_eq!(reported["id"], probe + 2);

    // The subscriber gets the unreported event first, read back from the table, then the
    // reported one: in id order, with no gap.
    let first = next_json(&mut ws).await.expect("the unreported event");
    assert_eq!(first["id"], probe + 1, "{first}");
    assert_eq!(first["topic"], "wp.unreported", "{first}");
    assert_eq!(first["data"], json!({"n": 1}), "{first}");
    assert_eq!(first["source"], "elsewhere", "{first}");
    assert_eq!(
        next_json(&mut ws).await.expect("the reported event"),
        reported
    );
}

#[actix_web::test]
async fn kill_9_under_load_loses_no_acknowledged_write_entry_or_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    // Several rounds, each killed at another point of its commits, once its writers have
    // had some writes acknowledged. A writer stops after 150 writes, so the audit log stays
    // within one page (4 × 16 × 150 < 10 000) and there is load left at the kill.
    for round in 0..4 {
        let mut server = ServerProcess::start(dir.path(), &[]).await;
        let t = Target::on_port(server.port);
        let until = Instant::now() + Duration::from_secs(20);
        let progress = Arc::new(AtomicUsize::new(0));
        let runs: Vec<_> = (0..16)
            .map(|w| {
                let run = writer(t.clone(), w, &[Kind::State], until, 150, progress.clone());
                actix_web::rt::spawn(run)
            })
            .collect();
        let loaded = Instant::now();
        while progress.load(Ordering::Relaxed) < 400 {
            assert!(
                loaded.elapsed() < Duration::from_secs(20),
                "round {round}: the writers are stuck"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.child.start_kill().unwrap(); // SIGKILL, no shutdown
        server.child.wait().await.unwrap();
        for run in runs {
            let (mine, _stopped_by_the_kill) = run.await.unwrap();
            acked.extend(mine);
        }
    }
    assert_unique("an acknowledged write", &acked);

    let server = ServerProcess::start(dir.path(), &[]).await;
    let t = Target::on_port(server.port);
    // What is stored: each key's versions, dense from 1. Writes in flight at the kill may
    // be stored without an answer; every acknowledged one must be.
    let mut stored = Vec::new();
    for i in 0..16 {
        let key = format!("wp/{i}");
        let hist = t
            .get_json(&format!("/api/state/{key}?history=1&limit=10000"))
            .await;
        let mut got: Vec<i64> = hist["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| int(&v["version"]))
            .collect();
        got.reverse();
        assert_dense(&format!("stored versions of {key}"), &got, got.len());
        stored.extend(got.into_iter().map(|version| Ack::State {
            key: key.clone(),
            version,
        }));
    }
    let stored_versions = versions(&stored);
    for (key, acked) in versions(&acked) {
        let kept = stored_versions.get(&key).map_or(&[][..], Vec::as_slice);
        let lost: Vec<_> = acked.iter().filter(|v| !kept.contains(v)).collect();
        assert!(
            lost.is_empty(),
            "acknowledged versions of {key} lost: {lost:?}"
        );
    }
    assert!(stored.len() >= acked.len());

    // A stored write has its audit entry and its event, and nothing else has one: the
    // three commit together.
    let entries: Vec<Ack> = all_audit(&t, "state.put")
        .await
        .iter()
        .map(audit_ack)
        .collect();
    assert_same("state.put entries after the kill", &stored, &entries);
    let events: Vec<Ack> = all_events(&t, "state.*")
        .await
        .iter()
        .map(event_ack)
        .collect();
    assert_same("state.updated events after the kill", &stored, &events);
    assert_eq!(
        t.get_json("/api/audit/verify").await,
        json!({"ok": true, "entries": stored.len()})
    );
}
