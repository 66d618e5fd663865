//! `koor register|activate|heartbeat`, `koor instances …`, `koor topology`,
//! `koor metrics …` and the `koor status` overview.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, Outcome, path_escape};
use super::specs::list_arg;

/// `koor register NAME …`
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The agent's name (several instances may share one).
    pub name: String,
    #[arg(long)]
    pub workspace: Option<String>,
    #[arg(long)]
    pub intent: Option<String>,
    #[arg(long)]
    pub stack: Option<String>,
    /// Comma-separated capabilities, e.g. "code-review,testing".
    #[arg(long, value_name = "LIST")]
    pub capabilities: Option<String>,
    #[command(flatten)]
    pub profile: ProfileArgs,
}

/// What an instance says about itself (`koor register`, `koor heartbeat`).
#[derive(Debug, Default, Args)]
pub struct ProfileArgs {
    /// The instance that started this one (must be registered).
    #[arg(long, value_name = "ID")]
    pub parent: Option<String>,
    /// A label, `KEY=VALUE` (repeatable; replaces all labels).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// The commit the agent runs.
    #[arg(long = "build-commit", value_name = "SHA")]
    pub build_commit: Option<String>,
    /// The branch the agent runs.
    #[arg(long = "build-branch", value_name = "BRANCH")]
    pub build_branch: Option<String>,
    /// The version the agent runs.
    #[arg(long = "build-version", value_name = "VERSION")]
    pub build_version: Option<String>,
    /// An endpoint, `NAME=URL`, e.g. `health=http://localhost:8080/health` (repeatable;
    /// replaces all endpoints).
    #[arg(long = "endpoint", value_name = "NAME=URL")]
    pub endpoints: Vec<String>,
}

/// `koor heartbeat ID …`
#[derive(Debug, Args)]
pub struct HeartbeatArgs {
    pub id: String,
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Overall health: ok, degraded or failing.
    #[arg(long, value_name = "STATUS")]
    pub health: Option<String>,
    /// A component's health, `NAME=STATUS` (repeatable; needs --health).
    #[arg(long = "component", value_name = "NAME=STATUS", requires = "health")]
    pub components: Vec<String>,
    /// The current phase of work (progress).
    #[arg(long, value_name = "TEXT")]
    pub phase: Option<String>,
    /// Units of work done (progress).
    #[arg(long, value_name = "N")]
    pub done: Option<u64>,
    /// Units of work in all (progress).
    #[arg(long, value_name = "N")]
    pub total: Option<u64>,
}

/// `KEY=VALUE` pairs as a JSON object; a pair without `=` is an error naming the flag.
fn pairs(flag: &str, items: &[String]) -> Result<serde_json::Map<String, Value>, String> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.to_string(), json!(v)))
                .ok_or_else(|| format!("--{flag} takes KEY=VALUE, got {item:?}"))
        })
        .collect()
}

impl ProfileArgs {
    /// Adds the given fields to a request body.
    fn fill(&self, body: &mut Value) -> Result<(), String> {
        if let Some(p) = &self.parent {
            body["parent_id"] = json!(p);
        }
        if !self.labels.is_empty() {
            body["labels"] = Value::Object(pairs("label", &self.labels)?);
        }
        if !self.endpoints.is_empty() {
            body["endpoints"] = Value::Object(pairs("endpoint", &self.endpoints)?);
        }
        let build = [
            ("commit", &self.build_commit),
            ("branch", &self.build_branch),
            ("version", &self.build_version),
        ];
        if build.iter().any(|(_, v)| v.is_some()) {
            let mut b = serde_json::Map::new();
            for (k, v) in build {
                if let Some(v) = v {
                    b.insert(k.into(), json!(v));
                }
            }
            body["build"] = Value::Object(b);
        }
        Ok(())
    }
}

impl HeartbeatArgs {
    /// The heartbeat's body (`{}` when no field is given).
    pub fn body(&self) -> Result<Value, String> {
        let mut body = json!({});
        self.profile.fill(&mut body)?;
        if let Some(status) = &self.health {
            body["health"] = json!({
                "status": status,
                "components": Value::Object(pairs("component", &self.components)?),
            });
        }
        if self.phase.is_some() || self.done.is_some() || self.total.is_some() {
            let mut p = serde_json::Map::new();
            if let Some(v) = &self.phase {
                p.insert("phase".into(), json!(v));
            }
            if let Some(v) = self.done {
                p.insert("done".into(), json!(v));
            }
            if let Some(v) = self.total {
                p.insert("total".into(), json!(v));
            }
            body["progress"] = Value::Object(p);
        }
        Ok(body)
    }
}

#[derive(Debug, Subcommand)]
pub enum InstancesCmd {
    /// List instances, most recently seen first.
    List {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        workspace: Option<String>,
        #[arg(long)]
        stack: Option<String>,
        #[arg(long)]
        capability: Option<String>,
    },
    /// Show one instance.
    Get { id: String },
    /// List stale instances.
    Stale,
    /// Deregister an instance.
    Delete { id: String },
    /// Replace an instance's capabilities (comma-separated; empty clears them).
    Capabilities { id: String, list: String },
}

#[derive(Debug, Subcommand)]
pub enum MetricsCmd {
    /// Per-agent counters in hourly buckets: all agents summed, or one agent's rows.
    Agents {
        /// One agent's rows.
        id: Option<String>,
        #[arg(long = "instance_id", alias = "instance-id", value_name = "ID")]
        instance_id: Option<String>,
        /// Period prefix: `2026-02-16` (a day) or `2026-02-16T14` (an hour).
        #[arg(long)]
        period: Option<String>,
    },
    /// Zero the token-tax counters.
    Reset,
}

fn query<const N: usize>(
    pairs: [(&'static str, Option<String>); N],
) -> Vec<(&'static str, String)> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

fn instance_path(id: &str, suffix: &str) -> String {
    format!("/api/instances/{}{suffix}", path_escape(id))
}

/// `koor register`.
pub async fn register(client: &Client, args: RegisterArgs) -> ExitCode {
    let mut body = json!({"name": args.name});
    for (key, value) in [
        ("workspace", args.workspace),
        ("intent", args.intent),
        ("stack", args.stack),
    ] {
        if let Some(v) = value {
            body[key] = json!(v);
        }
    }
    if let Some(caps) = args.capabilities {
        body["capabilities"] = json!(list_arg(&caps));
    }
    if let Err(e) = args.profile.fill(&mut body) {
        eprintln!("koor: {e}");
        return ExitCode::from(2);
    }
    let outcome = client.post_json("/api/instances/register", &body).await;
    // Keep the agent's token so that later commands act as this agent (`--as` chooses).
    if let Ok((status, _, bytes)) = &outcome
        && status.is_success()
        && let Ok(reg) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let (Some(id), Some(token)) = (reg["id"].as_str(), reg["token"].as_str())
        && let Err(e) = super::settings::save_agent(&args.name, id, token)
    {
        eprintln!("koor: registered, but the token was not saved: {e}");
    }
    client.print(outcome, false)
}

/// `koor activate ID` / `koor heartbeat ID`.
pub async fn post_action(client: &Client, id: &str, action: &str) -> ExitCode {
    let path = instance_path(id, &format!("/{action}"));
    client.print(client.send(Method::POST, &path, &[], None).await, false)
}

/// `koor heartbeat ID [--health …]`.
pub async fn heartbeat(client: &Client, args: HeartbeatArgs) -> ExitCode {
    let body = match args.body() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("koor: {e}");
            return ExitCode::from(2);
        }
    };
    let path = instance_path(&args.id, "/heartbeat");
    client.print(client.post_json(&path, &body).await, false)
}

/// `koor topology [--dot]`.
pub async fn topology(client: &Client, dot: bool) -> ExitCode {
    let query = if dot {
        vec![("format", "dot".to_string())]
    } else {
        Vec::new()
    };
    client.print(client.get("/api/topology", &query).await, dot)
}

/// `koor instances …`.
pub async fn instances(client: &Client, cmd: InstancesCmd) -> ExitCode {
    let outcome = match cmd {
        InstancesCmd::List {
            name,
            workspace,
            stack,
            capability,
        } => {
            let q = query([
                ("name", name),
                ("workspace", workspace),
                ("stack", stack),
                ("capability", capability),
            ]);
            client.get("/api/instances", &q).await
        }
        InstancesCmd::Get { id } => client.get(&instance_path(&id, ""), &[]).await,
        InstancesCmd::Stale => client.get("/api/instances/stale", &[]).await,
        InstancesCmd::Delete { id } => {
            client
                .send(Method::DELETE, &instance_path(&id, ""), &[], None)
                .await
        }
        InstancesCmd::Capabilities { id, list } => {
            let body = json!({"capabilities": list_arg(&list)});
            client
                .post_json(&instance_path(&id, "/capabilities"), &body)
                .await
        }
    };
    client.print(outcome, false)
}

/// `koor metrics [agents [ID]|reset]`.
pub async fn metrics(client: &Client, cmd: Option<MetricsCmd>) -> ExitCode {
    let outcome = match cmd {
        None => client.get("/api/metrics", &[]).await,
        Some(MetricsCmd::Reset) => {
            client
                .send(Method::POST, "/api/metrics/reset", &[], None)
                .await
        }
        Some(MetricsCmd::Agents {
            id,
            instance_id,
            period,
        }) => match id {
            Some(id) => {
                let path = format!("/api/metrics/agents/{}", path_escape(&id));
                client.get(&path, &query([("period", period)])).await
            }
            None => {
                let q = query([("instance_id", instance_id), ("period", period)]);
                client.get("/api/metrics/agents", &q).await
            }
        },
    };
    client.print(outcome, false)
}

fn json_of(outcome: Outcome) -> Result<Value, String> {
    let (status, _, body) = outcome?;
    if !status.is_success() {
        return Err(format!(
            "HTTP {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&body).trim()
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("unexpected response: {e}"))
}

/// How many events `koor status` shows.
const STATUS_EVENTS: usize = 5;

/// The overview behind `koor status`: health, instances by status, the latest events.
pub fn overview(health: &Value, instances: &Value, events: &Value) -> Value {
    let mut by_status: BTreeMap<String, u64> = ["active", "pending", "stale"]
        .into_iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for inst in instances.as_array().into_iter().flatten() {
        if let Some(s) = inst["status"].as_str() {
            *by_status.entry(s.to_string()).or_default() += 1;
        }
    }
    let latest: Vec<Value> = events
        .as_array()
        .into_iter()
        .flatten()
        .take(STATUS_EVENTS)
        .map(|e| json!({"id": e["id"], "topic": e["topic"], "source": e["source"], "created_at": e["created_at"]}))
        .collect();
    let mut o = json!({
        "status": health["status"],
        "uptime": health["uptime"],
        "instances": by_status,
        "latest_events": latest,
    });
    // API §27: the member's role and the leader (a server that reports them).
    for field in ["role", "leader"] {
        if let Some(v) = health.get(field) {
            o[field] = v.clone();
        }
    }
    o
}

/// The disk use in a `/metrics` scrape: the database and WAL size and the rows per table
/// (`None` when the scrape has no `koor_db_size_bytes`, as from an older server).
pub fn disk_of(metrics: &str) -> Option<Value> {
    let mut database = None;
    let mut wal = None;
    let mut rows = serde_json::Map::new();
    for line in metrics.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let value = value as i64;
        match name {
            "koor_db_size_bytes" => database = Some(value),
            "koor_db_wal_size_bytes" => wal = Some(value),
            _ => {
                if let Some(table) = name
                    .strip_prefix("koor_db_table_rows{table=\"")
                    .and_then(|t| t.strip_suffix("\"}"))
                {
                    rows.insert(table.to_string(), json!(value));
                }
            }
        }
    }
    let mut disk = json!({"database_bytes": database?, "rows": rows});
    if let Some(wal) = wal {
        disk["wal_bytes"] = json!(wal);
    }
    Some(disk)
}

/// `bytes` for people: `512 B`, `4.4 MB`, `1.2 GB` (powers of 1000).
fn human_bytes(bytes: i64) -> String {
    let b = bytes as f64;
    if bytes < 1_000 {
        format!("{bytes} B")
    } else if bytes < 1_000_000 {
        format!("{:.1} kB", b / 1e3)
    } else if bytes < 1_000_000_000 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} GB", b / 1e9)
    }
}

/// The disk lines of the overview: sizes, then the tables holding rows, most first.
fn disk_text(out: &mut String, disk: &Value) {
    let _ = write!(
        out,
        "disk: database {}",
        human_bytes(disk["database_bytes"].as_i64().unwrap_or(0))
    );
    if let Some(wal) = disk["wal_bytes"].as_i64() {
        let _ = write!(out, ", WAL {}", human_bytes(wal));
    }
    out.push('\n');
    let mut rows: Vec<(&String, i64)> = disk["rows"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(t, n)| (t, n.as_i64().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if !rows.is_empty() {
        let list: Vec<String> = rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
        let _ = writeln!(out, "rows: {}", list.join(", "));
    }
}

/// The overview as a few lines of text.
pub fn overview_text(server: &str, o: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let mut out = format!(
        "koor {} at {server}, up {}\n",
        s(&o["status"]),
        s(&o["uptime"])
    );
    if let Some(role) = o.get("role") {
        let _ = writeln!(out, "role: {}, leader {}", s(role), s(&o["leader"]));
    }
    for m in o["members"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "member: {} {} at {}",
            s(&m["role"]),
            s(&m["member"]),
            s(&m["url"])
        );
    }
    let counts = &o["instances"];
    let _ = writeln!(
        out,
        "instances: {} active, {} pending, {} stale",
        counts["active"], counts["pending"], counts["stale"]
    );
    if let Some(disk) = o.get("disk") {
        disk_text(&mut out, disk);
    }
    let events = o["latest_events"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        out.push_str("no events yet\n");
    } else {
        out.push_str("latest events:\n");
        for e in events {
            let source = e["source"].as_str().filter(|x| !x.is_empty());
            let _ = writeln!(
                out,
                "  #{} {} {}{}",
                e["id"],
                s(&e["created_at"]),
                s(&e["topic"]),
                source.map(|x| format!(" ({x})")).unwrap_or_default()
            );
        }
    }
    out
}

/// `koor status [--json]`: exit 0 when the server is healthy.
pub async fn status(client: &Client, as_json: bool) -> ExitCode {
    let health = match json_of(client.get("/health", &[]).await) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("koor: {e}");
            return ExitCode::from(1);
        }
    };
    let last = [("last", STATUS_EVENTS.to_string())];
    let (instances, events, metrics, cluster) = tokio::join!(
        client.get("/api/instances", &[]),
        client.get("/api/events/history", &last),
        client.get("/metrics", &[]),
        client.get("/api/cluster", &[])
    );
    let (instances, events) = match (json_of(instances), json_of(events)) {
        (Ok(i), Ok(e)) => (i, e),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("koor: {e}");
            return ExitCode::from(1);
        }
    };
    let mut o = overview(&health, &instances, &events);
    // The disk use is extra: a server without it (or a failed scrape) leaves it out.
    if let Ok((code, _, body)) = metrics
        && code.is_success()
        && let Some(disk) = disk_of(&String::from_utf8_lossy(&body))
    {
        o["disk"] = disk;
    }
    // The members of a cluster (API §27); a single server or an older one has none.
    if let Ok(cluster) = json_of(cluster)
        && let Some(members) = cluster["members"].as_array()
        && !members.is_empty()
    {
        o["members"] = json!(members);
    }
    if as_json {
        let text = if client.pretty {
            serde_json::to_string_pretty(&o)
        } else {
            serde_json::to_string(&o)
        };
        println!("{}", text.unwrap_or_default());
    } else {
        print!("{}", overview_text(client.base(), &o));
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overview_counts_statuses_and_keeps_the_newest_events() {
        let health = json!({"status": "ok", "uptime": "1m2s"});
        let instances = json!([{"status": "active"}, {"status": "active"}, {"status": "stale"}]);
        let events: Vec<Value> = (0..8)
            .rev()
            .map(|i| json!({"id": i, "topic": "t", "source": "", "created_at": "z", "data": {"big": 1}}))
            .collect();
        let o = overview(&health, &instances, &json!(events));
        assert_eq!(
            o["instances"],
            json!({"active": 2, "pending": 0, "stale": 1})
        );
        assert_eq!(o["latest_events"].as_array().unwrap().len(), STATUS_EVENTS);
        assert_eq!(o["latest_events"][0]["id"], 7);
        assert!(o["latest_events"][0].get("data").is_none());
        let text = overview_text("http://h", &o);
        assert!(text.starts_with("koor ok at http://h, up 1m2s\n"), "{text}");
        assert!(text.contains("instances: 2 active, 0 pending, 1 stale"));
        assert_eq!(text.lines().count(), 3 + STATUS_EVENTS);

        let health =
            json!({"status": "ok", "uptime": "1s", "role": "single", "leader": "http://h"});
        let mut o = overview(&health, &json!([]), &json!([]));
        o["members"] = json!([{"member": "koor-a", "url": "http://h", "role": "leader"},
            {"member": "koor-b", "url": "http://g", "role": "follower"}]);
        assert_eq!(o["role"], "single");
        let text = overview_text("http://h", &o);
        assert!(text.contains("\nrole: single, leader http://h\n"), "{text}");
        assert!(
            text.contains(
                "\nmember: leader koor-a at http://h\nmember: follower koor-b at http://g\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn disk_use_comes_from_the_metrics_scrape() {
        let scrape = "# HELP koor_db_size_bytes x\nkoor_db_size_bytes 48000000\n\
                      koor_db_wal_size_bytes 4400000\n\
                      koor_db_table_rows{table=\"audit_log\"} 12\n\
                      koor_db_table_rows{table=\"events\"} 30\n\
                      koor_db_table_rows{table=\"locks\"} 0\n";
        let disk = disk_of(scrape).unwrap();
        assert_eq!(
            disk,
            json!({"database_bytes": 48_000_000, "wal_bytes": 4_400_000,
                   "rows": {"audit_log": 12, "events": 30, "locks": 0}})
        );
        let mut o = overview(
            &json!({"status": "ok", "uptime": "1s"}),
            &json!([]),
            &json!([]),
        );
        o["disk"] = disk;
        let text = overview_text("http://h", &o);
        assert!(
            text.contains("\ndisk: database 48.0 MB, WAL 4.4 MB\n"),
            "{text}"
        );
        assert!(text.contains("\nrows: events 30, audit_log 12\n"), "{text}");
        assert!(disk_of("koor_instances{status=\"active\"} 1\n").is_none());
    }
}
