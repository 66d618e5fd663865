//! `koor-fanout`: a native load generator for koor's WebSocket fan-out, for the target
//! "100 subscribers, 1,000 published events/s: p99 publish→receive < 20 ms, zero lost".
//!
//! k6 spends tens of microseconds of JavaScript per received frame, so at 100 × 1,000
//! frames/s on a small machine it measures itself. This tool does the same job in one
//! thread of compiled code: it opens `SUBSCRIBERS` WebSockets on
//! `/api/events/subscribe?pattern=<run>.*`, publishes `RATE` events/s for `DURATION`
//! seconds over REST (open model: a publish is started every 1/RATE s whatever the
//! previous ones are doing, at most `MAX_IN_FLIGHT` at once), stamps each event with the
//! time it was sent, and measures, per subscriber and event, the time from just before
//! the `POST` to the frame's arrival. Every subscriber must receive every event exactly
//! once and in order.
//!
//! Environment: `BASE_URL` (default `http://127.0.0.1:9800`, loopback only; events are
//! published there), `SUBSCRIBE_URLS` (comma-separated members of a cluster the
//! subscribers are spread over in turn, loopback only; default `BASE_URL`), `KOOR_TOKEN`, `SUBSCRIBERS` (100), `RATE` (1000), `DURATION` (seconds, 30),
//! `P99_MS` (20), `MAX_IN_FLIGHT` (64). Prints one `SUMMARY` line; exits 0 when the
//! target is met, 1 when not, 2 on a usage or connection error.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

struct Settings {
    base: String,
    subscribe: Vec<String>,
    token: Option<String>,
    subscribers: usize,
    rate: u64,
    duration: Duration,
    p99_ms: f64,
    max_in_flight: usize,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v} is not a number")),
        _ => Ok(default),
    }
}

/// `url` without a trailing slash, when it is an `http://` loopback URL.
fn loopback(url: &str) -> Result<String, String> {
    let host = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url} must start with http://"))?;
    let host = host.split('/').next().unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    if !matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        return Err(format!("{url} must be a loopback address"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn settings() -> Result<Settings, String> {
    let base =
        loopback(&std::env::var("BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:9800".into()))?;
    let subscribe = match std::env::var("SUBSCRIBE_URLS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|u| loopback(u.trim()))
            .collect::<Result<Vec<_>, _>>()?,
        _ => vec![base.clone()],
    };
    let settings = Settings {
        base,
        subscribe,
        token: std::env::var("KOOR_TOKEN").ok().filter(|t| !t.is_empty()),
        subscribers: env_num("SUBSCRIBERS", 100usize)?,
        rate: env_num("RATE", 1000u64)?,
        duration: Duration::from_secs_f64(env_num("DURATION", 30f64)?),
        p99_ms: env_num("P99_MS", 20f64)?,
        max_in_flight: env_num("MAX_IN_FLIGHT", 64usize)?,
    };
    if settings.subscribers == 0 || settings.rate == 0 || settings.max_in_flight == 0 {
        return Err("SUBSCRIBERS, RATE and MAX_IN_FLIGHT must be at least 1".into());
    }
    Ok(settings)
}

#[derive(Deserialize)]
struct Frame {
    id: i64,
    topic: String,
    #[serde(default)]
    data: Option<Stamp>,
}

#[derive(Deserialize)]
struct Stamp {
    seq: u64,
    sent_us: u64,
}

/// What one subscriber saw. Concurrent publishes may be stored in another order than
/// they were sent, so order is checked on the server's ids (strictly increasing) and
/// completeness on the publisher's sequence numbers (each exactly once).
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u64>,
    got: Vec<bool>,
    duplicates: u64,
    last_id: i64,
    out_of_order: u64,
    lagged: u64,
}

impl Seen {
    fn record(&mut self, id: i64, stamp: &Stamp, now_us: u64) {
        self.latencies_us.push(now_us.saturating_sub(stamp.sent_us));
        if id <= self.last_id {
            self.out_of_order += 1;
        }
        self.last_id = id;
        let seq = stamp.seq as usize;
        if seq >= self.got.len() {
            self.got.resize(seq + 1, false);
        }
        if std::mem::replace(&mut self.got[seq], true) {
            self.duplicates += 1;
        }
    }

    /// Sequence numbers below `published` never received.
    fn missing(&self, published: u64, failed: &[bool]) -> u64 {
        (0..published as usize)
            .filter(|&i| !self.got.get(i).copied().unwrap_or(false) && !failed[i])
            .count() as u64
    }
}

fn micros_since(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let s = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("koor-fanout: {e}");
            return ExitCode::from(2);
        }
    };
    match run(s).await {
        Ok(met) => ExitCode::from(u8::from(!met)),
        Err(e) => {
            eprintln!("koor-fanout: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(s: Settings) -> Result<bool, String> {
    let run_id = format!("fanout{}", std::process::id());
    let start = Instant::now();

    // Subscribers first; publishing starts once every one is live.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut handles = Vec::with_capacity(s.subscribers);
    for n in 0..s.subscribers {
        let ws_base = s.subscribe[n % s.subscribe.len()].replacen("http://", "ws://", 1);
        let url = format!("{ws_base}/api/events/subscribe?pattern={run_id}.*");
        let mut request = url
            .into_client_request()
            .map_err(|e| format!("bad URL: {e}"))?;
        if let Some(t) = &s.token {
            let value = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|e| format!("bad token: {e}"))?;
            request.headers_mut().insert("authorization", value);
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| format!("cannot subscribe: {e}"))?;
        let (_, mut read) = socket.split();
        let mut stop = stop_rx.clone();
        handles.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            loop {
                let msg = tokio::select! {
                    m = read.next() => m,
                    _ = stop.changed() => break,
                };
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(text) = msg else { continue };
                let now = micros_since(start);
                match serde_json::from_str::<Frame>(&text) {
                    Ok(f) if f.topic == "koor.lagged" => seen.lagged += 1,
                    Ok(Frame {
                        id,
                        data: Some(stamp),
                        ..
                    }) => seen.record(id, &stamp, now),
                    _ => {}
                }
            }
            seen
        }));
    }

    // Publishers: open model, one publish every 1/RATE s, at most MAX_IN_FLIGHT at once.
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(s.max_in_flight)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/api/events/publish", s.base);
    let topic = format!("{run_id}.tick");
    let permits = Arc::new(Semaphore::new(s.max_in_flight));
    let total = (s.rate as f64 * s.duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / s.rate as f64);
    let publish_start = tokio::time::Instant::now();
    let mut dropped = 0u64;
    let mut tasks = Vec::with_capacity(total as usize);
    let mut seq = 0u64;
    for i in 0..total {
        tokio::time::sleep_until(publish_start + interval * i as u32).await;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let body = serde_json::json!({
            "topic": topic,
            "data": {"seq": seq, "sent_us": micros_since(start)},
        });
        seq += 1;
        let mut req = client.post(&url).json(&body);
        if let Some(t) = &s.token {
            req = req.bearer_auth(t);
        }
        tasks.push(tokio::spawn(async move {
            let ok = matches!(req.send().await, Ok(r) if r.status().is_success());
            drop(permit);
            ok
        }));
    }
    let published_in = publish_start.elapsed();
    let mut failed_seq = Vec::with_capacity(tasks.len());
    for t in tasks {
        failed_seq.push(!t.await.unwrap_or(false));
    }
    let failed = failed_seq.iter().filter(|f| **f).count() as u64;
    let published = seq - failed;

    // Let the last frames arrive, then stop the readers and collect what they saw.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let mut all: Vec<u64> = Vec::with_capacity(published as usize * s.subscribers);
    let (mut missing, mut duplicates, mut out_of_order, mut lagged) = (0u64, 0u64, 0u64, 0u64);
    for h in handles {
        let seen = h.await.map_err(|e| format!("a subscriber failed: {e}"))?;
        // A failed publish was never stored, so nobody could receive it: not "missing".
        missing += seen.missing(seq, &failed_seq);
        duplicates += seen.duplicates;
        out_of_order += seen.out_of_order;
        lagged += seen.lagged;
        all.extend(seen.latencies_us);
    }
    all.sort_unstable();
    let expected = published * s.subscribers as u64;
    let p99 = percentile(&all, 99.0);
    let met = missing == 0
        && duplicates == 0
        && out_of_order == 0
        && lagged == 0
        && failed == 0
        && dropped == 0
        && all.len() as u64 == expected
        && p99 < s.p99_ms;
    println!(
        "SUMMARY subscribers={} members={} rate={}/s duration={}s published={} publish_rate={:.0}/s \
         dropped_publishes={} failed_publishes={} delivered={} expected={} missing={} \
         duplicates={} out_of_order={} lagged={} p50={:.2}ms p95={:.2}ms p99={:.2}ms max={:.2}ms \
         p99_target_met={} target_met={}",
        s.subscribers,
        s.subscribe.len(),
        s.rate,
        s.duration.as_secs_f64(),
        published,
        seq as f64 / published_in.as_secs_f64().max(1e-9),
        dropped,
        failed,
        all.len(),
        expected,
        missing,
        duplicates,
        out_of_order,
        lagged,
        percentile(&all, 50.0),
        percentile(&all, 95.0),
        p99,
        all.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
        p99 < s.p99_ms,
        met,
    );
    Ok(met)
}
