//! `koor doctor` (API §26): checks a server from this machine, one line per check, exit 1
//! when any check fails. The storage checks come from `GET /api/admin/check`.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use reqwest::StatusCode;
use serde_json::Value;

use super::client::Client;

/// `koor doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Fail when the server's clock and this machine's differ by more than this many
    /// seconds.
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = seconds)]
    pub max_skew: f64,
}

/// A finite, non-negative number of seconds.
fn seconds(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!("{raw:?} is not a number of seconds (0 or more)")),
    }
}

/// A write-ahead log larger than this means checkpoints are not keeping up.
const WAL_LIMIT: u64 = 1024 * 1024 * 1024;
/// Less free space than this on the data directory's file system fails the check.
const FREE_MIN: u64 = 256 * 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
    Skip,
}

/// The checks in the order they are printed.
const CHECKS: [&str; 7] = [
    "reachable",
    "auth",
    "integrity",
    "migrations",
    "wal",
    "disk",
    "clock",
];

struct Report {
    failed: bool,
    printed: usize,
}

impl Report {
    fn line(&mut self, verdict: Verdict, detail: impl AsRef<str>) {
        let word = match verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        };
        self.failed |= matches!(verdict, Verdict::Fail | Verdict::Skip);
        println!("{word:<5} {:<11} {}", CHECKS[self.printed], detail.as_ref());
        self.printed += 1;
    }

    /// Marks every check not run yet as skipped because of `why`.
    fn skip_rest(&mut self, why: &str) {
        while self.printed < CHECKS.len() {
            self.line(Verdict::Skip, why);
        }
    }
}

fn mib(bytes: u64) -> String {
    if bytes >= 1024 * 1024 * 1024 {
        format!("{:.1} GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

fn unix_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

pub async fn run(client: &Client, args: DoctorArgs) -> ExitCode {
    let mut report = Report {
        failed: false,
        printed: 0,
    };
    check(client, &args, &mut report).await;
    if report.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn check(client: &Client, args: &DoctorArgs, report: &mut Report) {
    // Reachability: /health needs no credential.
    let started = Instant::now();
    match client.get("/health", &[]).await {
        Ok((status, _, _)) if status.is_success() => report.line(
            Verdict::Ok,
            format!(
                "{} answers /health in {} ms",
                client.base(),
                started.elapsed().as_millis()
            ),
        ),
        Ok((status, _, _)) => {
            report.line(
                Verdict::Fail,
                format!("{} answers /health with HTTP {status}", client.base()),
            );
            return report.skip_rest("the server is not healthy");
        }
        Err(e) => {
            report.line(Verdict::Fail, e);
            return report.skip_rest("the server is unreachable");
        }
    }

    // Auth, and the storage report.
    let sent = SystemTime::now();
    let outcome = client.get("/api/admin/check", &[]).await;
    let received = SystemTime::now();
    let body = match outcome {
        Ok((status, _, body)) if status.is_success() => {
            let who = match client.token() {
                Some(_) => "the credential is accepted with the admin scope",
                None => "the server needs no credential (auth is off)",
            };
            report.line(Verdict::Ok, who);
            body
        }
        Ok((status, _, _)) => {
            let why = match status {
                StatusCode::UNAUTHORIZED if client.token().is_none() => {
                    "the server needs a credential: set KOOR_TOKEN or `koor config set token`"
                        .to_string()
                }
                StatusCode::UNAUTHORIZED => "the server refuses the credential (401)".into(),
                StatusCode::FORBIDDEN => "the credential lacks the admin scope (403)".into(),
                StatusCode::NOT_FOUND => {
                    "the server has no /api/admin/check (an older server?)".into()
                }
                other => format!("GET /api/admin/check answered HTTP {other}"),
            };
            report.line(Verdict::Fail, why);
            return report.skip_rest("needs the admin check");
        }
        Err(e) => {
            report.line(Verdict::Fail, e);
            return report.skip_rest("needs the admin check");
        }
    };
    let check: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            report.line(
                Verdict::Fail,
                format!("the check's answer is not JSON: {e}"),
            );
            return report.skip_rest("needs the admin check");
        }
    };

    // Integrity.
    let problems: Vec<&str> = check["integrity"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if problems == ["ok"] {
        report.line(Verdict::Ok, "PRAGMA integrity_check: ok");
    } else {
        let first = problems.first().copied().unwrap_or("no answer");
        report.line(
            Verdict::Fail,
            format!(
                "PRAGMA integrity_check found {} problem(s), first: {first}",
                problems.len()
            ),
        );
    }

    // Migrations.
    let m = &check["migrations"];
    let pending: Vec<&str> = m["pending"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let (applied, known) = (m["applied"].as_u64(), m["known"].as_u64());
    match (applied, known) {
        (Some(applied), Some(known)) if pending.is_empty() => report.line(
            Verdict::Ok,
            format!("{applied} applied, {known} known, none pending"),
        ),
        _ => report.line(
            Verdict::Fail,
            format!(
                "pending: {} (they run when the server starts)",
                pending.join(", ")
            ),
        ),
    }

    // The write-ahead log.
    let wal = check["wal_bytes"].as_u64().unwrap_or(0);
    let database = check["database_bytes"].as_u64().unwrap_or(0);
    let sizes = format!("WAL {}, database {}", mib(wal), mib(database));
    if wal > WAL_LIMIT {
        report.line(
            Verdict::Fail,
            format!("{sizes}: checkpoints are not keeping up (a long reader?)"),
        );
    } else {
        report.line(Verdict::Ok, sizes);
    }

    // Free space: a snapshot needs as much again as the database.
    match check["free_bytes"].as_u64() {
        None => report.line(Verdict::Warn, "the server cannot tell its free space"),
        Some(free) if free < FREE_MIN => report.line(
            Verdict::Fail,
            format!("{} free on the data directory's disk", mib(free)),
        ),
        Some(free) if free < database + wal => report.line(
            Verdict::Fail,
            format!(
                "{} free on the data directory's disk: a snapshot ({}) would not fit",
                mib(free),
                mib(database + wal)
            ),
        ),
        Some(free) => report.line(
            Verdict::Ok,
            format!("{} free on the data directory's disk", mib(free)),
        ),
    }

    // Clock skew: the server's time against the middle of the request.
    let server = check["time"].as_str().and_then(crate::time::parse_instant);
    match server {
        None => report.line(Verdict::Warn, "the server did not say its time"),
        Some(server) => {
            let (a, b) = (unix_micros(sent), unix_micros(received));
            let mid = a + (b - a) / 2;
            let skew = (server - mid) as f64 / 1e6;
            let round_trip = Duration::from_micros((b - a).max(0) as u64);
            let detail = format!(
                "server clock {}{:.3} s from this machine's (round trip {} ms)",
                if skew >= 0.0 { "+" } else { "" },
                skew,
                round_trip.as_millis()
            );
            if skew.abs() > args.max_skew {
                report.line(
                    Verdict::Fail,
                    format!("{detail}; more than {} s", args.max_skew),
                );
            } else {
                report.line(Verdict::Ok, detail);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skew_limit_is_a_finite_non_negative_number() {
        assert_eq!(seconds("0.5"), Ok(0.5));
        for bad in ["-1", "nan", "inf", "x", ""] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }
}
