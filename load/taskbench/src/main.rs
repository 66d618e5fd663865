//! `koor-taskbench`: a native load generator for koor's work queue (API §23), run by
//! `load/tasks.sh` against a fresh server. Three phases, one after the other:
//!
//! 1. **Durable state writes**, the reference: `WORKERS` closed loops of
//!    `PUT /api/state/bench/<worker>-<n mod 1000>` for `DURATION` seconds.
//! 2. **Claim + complete**: `TASKS` tasks are created first, then `WORKERS` registered
//!    holders each loop `POST /api/tasks/claim` → `POST /api/tasks/{id}/complete` until a
//!    claim finds nothing. Throughput is completed tasks per second over the drain, and its
//!    ratio to the PUT/s of phase 1 (one task costs two requests and two commits).
//! 3. **Create → long-poll claim latency**: `WORKERS` holders long-poll
//!    (`wait_seconds` 2) while tasks are created at `RATE`/s for `LATENCY_DURATION`
//!    seconds (open model: a create starts every 1/`RATE` s whatever the others are
//!    doing); each payload carries the time just before its `POST`, and a claimer records
//!    the time from there to its claim's answer, then completes the task.
//!
//! Environment: `BASE_URL` (default `http://127.0.0.1:9800`, loopback only), `KOOR_TOKEN`,
//! `WORKERS` (32), `DURATION` (10), `TASKS` (20000), `RATE` (500), `LATENCY_DURATION`
//! (10). Prints one `SUMMARY` line; exits 0 when every request succeeded and every task
//! was claimed and completed exactly once, 1 otherwise, 2 on a usage or connection error.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Settings {
    base: String,
    token: Option<String>,
    workers: usize,
    duration: Duration,
    tasks: usize,
    rate: u64,
    latency_duration: Duration,
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

fn settings() -> Result<Settings, String> {
    let base = std::env::var("BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:9800".into());
    let host = base
        .strip_prefix("http://")
        .ok_or("BASE_URL must start with http://")?;
    let host = host.split('/').next().unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    if !matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        return Err(format!("BASE_URL must be a loopback address, not {base}"));
    }
    let s = Settings {
        base: base.trim_end_matches('/').to_string(),
        token: std::env::var("KOOR_TOKEN").ok().filter(|t| !t.is_empty()),
        workers: env_num("WORKERS", 32usize)?,
        duration: Duration::from_secs_f64(env_num("DURATION", 10f64)?),
        tasks: env_num("TASKS", 20_000usize)?,
        rate: env_num("RATE", 500u64)?,
        latency_duration: Duration::from_secs_f64(env_num("LATENCY_DURATION", 10f64)?),
    };
    if s.workers == 0 || s.tasks == 0 || s.rate == 0 {
        return Err("WORKERS, TASKS and RATE must be at least 1".into());
    }
    Ok(s)
}

/// A client of the server under test.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// POSTs `body`; the JSON answer of a 2xx, else an error naming the status.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let resp = self
            .request(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| format!("POST {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("POST {path}: {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("POST {path}: {e}"))
    }

    async fn put_state(&self, key: &str, body: String) -> Result<(), String> {
        let resp = self
            .request(reqwest::Method::PUT, &format!("/api/state/{key}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("PUT {key}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("PUT {key}: {}", resp.status()));
        }
        Ok(())
    }
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
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
            eprintln!("koor-taskbench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(s).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("koor-taskbench: {e}");
            ExitCode::from(2)
        }
    }
}

async fn join<T>(
    handles: Vec<tokio::task::JoinHandle<Result<T, String>>>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.map_err(|e| e.to_string())??);
    }
    Ok(out)
}

/// Phase 1: acknowledged state writes per second.
async fn put_rps(api: &Api, s: &Settings) -> Result<f64, String> {
    let start = Instant::now();
    let handles = (0..s.workers)
        .map(|w| {
            let (api, until) = (api.clone(), start + s.duration);
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < until {
                    api.put_state(&format!("bench/{w}-{}", n % 1000), format!("{{\"n\":{n}}}"))
                        .await?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let total: u64 = join(handles).await?.into_iter().sum();
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn register(api: &Api, s: &Settings, run: &str) -> Result<Vec<String>, String> {
    let mut holders = Vec::with_capacity(s.workers);
    for w in 0..s.workers {
        let reg = api
            .post(
                "/api/instances/register",
                &json!({"name": format!("{run}-{w}")}),
            )
            .await?;
        holders.push(reg["id"].as_str().unwrap_or_default().to_string());
    }
    Ok(holders)
}

/// Claims from `queue` and completes until a claim finds nothing (or, with a wait, until
/// `stop` is set and a claim finds nothing); returns the ids completed and, per task, the
/// microseconds from its `sent_us` stamp to the claim's answer.
async fn drain(
    api: Api,
    holder: String,
    queue: String,
    wait: f64,
    stop: Arc<AtomicBool>,
    epoch: Instant,
) -> Result<(Vec<String>, Vec<u64>), String> {
    let mut done = Vec::new();
    let mut latencies = Vec::new();
    loop {
        let body = json!({"holder": holder, "queue": queue, "wait_seconds": wait});
        let claimed = api.post("/api/tasks/claim", &body).await?;
        let task = &claimed["task"];
        if task.is_null() {
            if wait == 0.0 || stop.load(Ordering::Acquire) {
                return Ok((done, latencies));
            }
            continue;
        }
        let now = epoch.elapsed().as_micros() as u64;
        if let Some(sent) = task["payload"]["sent_us"].as_u64() {
            latencies.push(now.saturating_sub(sent));
        }
        let id = task["id"].as_str().unwrap_or_default().to_string();
        let token = task["lease"]["token"].as_i64().unwrap_or_default();
        api.post(
            &format!("/api/tasks/{id}/complete"),
            &json!({"token": token, "result": null}),
        )
        .await?;
        done.push(id);
    }
}

/// Phase 2: completed tasks per second over a drain of `TASKS` tasks.
async fn claim_complete_rps(
    api: &Api,
    s: &Settings,
    run: &str,
    holders: &[String],
) -> Result<(f64, bool), String> {
    let queue = format!("{run}-cc");
    let next = Arc::new(AtomicU64::new(0));
    let creators = (0..s.workers)
        .map(|_| {
            let (api, queue, next, total) =
                (api.clone(), queue.clone(), next.clone(), s.tasks as u64);
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::AcqRel) < total {
                    api.post("/api/tasks", &json!({"queue": queue, "payload": {"n": 1}}))
                        .await?;
                }
                Ok(())
            })
        })
        .collect();
    join(creators).await?;
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(true));
    let handles = holders
        .iter()
        .map(|h| {
            tokio::spawn(drain(
                api.clone(),
                h.clone(),
                queue.clone(),
                0.0,
                stop.clone(),
                start,
            ))
        })
        .collect();
    let results = join(handles).await?;
    let elapsed = start.elapsed().as_secs_f64();
    let mut seen = HashSet::new();
    let mut twice = 0usize;
    for (ids, _) in &results {
        for id in ids {
            if !seen.insert(id.clone()) {
                twice += 1;
            }
        }
    }
    let exact = seen.len() == s.tasks && twice == 0;
    if !exact {
        eprintln!(
            "koor-taskbench: claim+complete finished {} distinct tasks of {} ({} twice)",
            seen.len(),
            s.tasks,
            twice
        );
    }
    Ok((seen.len() as f64 / elapsed, exact))
}

struct Latency {
    created: u64,
    claimed: usize,
    dropped: u64,
    sorted_us: Vec<u64>,
}

/// Phase 3: create → long-poll claim latency at `RATE` creates per second.
async fn latency(
    api: &Api,
    s: &Settings,
    run: &str,
    holders: &[String],
) -> Result<Latency, String> {
    let queue = format!("{run}-lat");
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let claimers: Vec<_> = holders
        .iter()
        .map(|h| {
            tokio::spawn(drain(
                api.clone(),
                h.clone(),
                queue.clone(),
                2.0,
                stop.clone(),
                epoch,
            ))
        })
        .collect();
    // Let every claimer start waiting before the first create.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = (s.rate as f64 * s.latency_duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / s.rate as f64);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let begin = tokio::time::Instant::now();
    let mut creates = Vec::with_capacity(total as usize);
    let mut dropped = 0u64;
    for i in 0..total {
        tokio::time::sleep_until(begin + interval * i as u32).await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let (api, queue, errors) = (api.clone(), queue.clone(), errors.clone());
        let sent = epoch.elapsed().as_micros() as u64;
        creates.push(tokio::spawn(async move {
            let body = json!({"queue": queue, "payload": {"sent_us": sent}});
            if let Err(e) = api.post("/api/tasks", &body).await {
                errors.lock().map(|mut v| v.push(e)).ok();
            }
            drop(permit);
        }));
    }
    for c in creates {
        let _ = c.await;
    }
    if let Some(e) = errors.lock().ok().and_then(|v| v.first().cloned()) {
        return Err(e);
    }
    let created = total - dropped;
    // Wait for the claimers to take everything, at most 10 s more.
    let settle = Instant::now() + Duration::from_secs(10);
    loop {
        let stats: Value = api
            .request(
                reqwest::Method::GET,
                &format!("/api/tasks/stats?queue={queue}"),
            )
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if stats["done"].as_u64() == Some(created) || Instant::now() > settle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Release);
    // Every claimer answers within its wait (2 s) once nothing is left.
    let mut sorted_us = Vec::new();
    let mut claimed = 0;
    for (ids, lat) in join(claimers).await? {
        claimed += ids.len();
        sorted_us.extend(lat);
    }
    sorted_us.sort_unstable();
    Ok(Latency {
        created,
        claimed,
        dropped,
        sorted_us,
    })
}

async fn run(s: Settings) -> Result<bool, String> {
    let run = format!("taskbench{}", std::process::id());
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(512)
        .build()
        .map_err(|e| e.to_string())?;
    let api = Api {
        http,
        base: s.base.clone(),
        token: s.token.clone(),
    };
    let put = put_rps(&api, &s).await?;
    let holders = register(&api, &s, &run).await?;
    let (cc, exact) = claim_complete_rps(&api, &s, &run, &holders).await?;
    let lat = latency(&api, &s, &run, &holders).await?;
    let ok = exact && lat.dropped == 0 && lat.claimed as u64 == lat.created;
    println!(
        "SUMMARY workers={} put_rps={:.0} claim_complete_per_s={:.0} ratio={:.2} tasks={} \
         exactly_once={} rate={}/s created={} dropped_creates={} claimed={} p50={:.2}ms \
         p95={:.2}ms p99={:.2}ms max={:.2}ms ok={}",
        s.workers,
        put,
        cc,
        cc / put,
        s.tasks,
        exact,
        s.rate,
        lat.created,
        lat.dropped,
        lat.claimed,
        percentile_ms(&lat.sorted_us, 50.0),
        percentile_ms(&lat.sorted_us, 95.0),
        percentile_ms(&lat.sorted_us, 99.0),
        lat.sorted_us
            .last()
            .map_or(f64::NAN, |m| *m as f64 / 1000.0),
        ok,
    );
    Ok(ok)
}
