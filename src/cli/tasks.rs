//! `koor tasks …`: the work queue (API §23), and `koor tasks work`, a worker loop that runs
//! a command for each claimed task.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::{Client, Outcome, given, path_escape, read_input};
use super::specs::list_arg;

/// Exit code of `claim` when nothing was claimable, and of `wait` when the group is not
/// finished at the timeout.
const NOTHING: u8 = 3;
/// Exit code of `work` after Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;
/// Longest `error` sent by `work` (the server's limit is 64 KiB).
const MAX_ERROR: usize = 64 * 1024;

#[derive(Debug, Subcommand)]
pub enum TasksCmd {
    /// Create a task; its payload (JSON) from --data, --file or standard input.
    Add(AddArgs),
    /// Lease the next task of a queue; prints it, or exits 3 when none was claimable.
    Claim(ClaimArgs),
    /// Extend a held lease (same token).
    Renew {
        id: String,
        /// The lease's fencing token (from the claim).
        #[arg(value_name = "TOKEN")]
        lease_token: i64,
        #[arg(long, value_name = "S")]
        lease_seconds: Option<f64>,
    },
    /// Finish a leased task; --result is JSON, or else taken as a string.
    Complete {
        id: String,
        /// The lease's fencing token (from the claim).
        #[arg(value_name = "TOKEN")]
        lease_token: i64,
        #[arg(long)]
        result: Option<String>,
    },
    /// Record a failed attempt (retried after a backoff, or dead at max attempts).
    Fail {
        id: String,
        /// The lease's fencing token (from the claim).
        #[arg(value_name = "TOKEN")]
        lease_token: i64,
        #[arg(long)]
        error: String,
        #[arg(long, value_name = "S")]
        retry_after: Option<f64>,
    },
    /// Give a lease back without counting the attempt.
    Release {
        id: String,
        /// The lease's fencing token (from the claim).
        #[arg(value_name = "TOKEN")]
        lease_token: i64,
    },
    /// Cancel a queued, failed or leased task.
    Cancel { id: String },
    /// Put a dead or cancelled task back in its queue.
    Retry { id: String },
    /// List tasks, newest first: one line each, or --json.
    List {
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        holder: Option<String>,
        #[arg(long)]
        limit: Option<u64>,
        /// Print the tasks as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show one task.
    Get { id: String },
    /// Counts per status (one queue, or all) and the age of the oldest queued task.
    Stats {
        #[arg(long)]
        queue: Option<String>,
    },
    /// A group's counts and whether it is finished.
    Group { group: String },
    /// Wait until a group is finished (exit 3 when it is not at the timeout).
    Wait {
        group: String,
        #[arg(long, value_name = "S")]
        timeout: Option<f64>,
    },
    /// Claim tasks in a loop and run CMD for each, the payload on its standard input.
    Work(WorkArgs),
}

/// `koor tasks add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    pub queue: Option<String>,
    /// The payload as JSON.
    #[arg(long, conflicts_with = "file")]
    pub data: Option<String>,
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[arg(long, allow_hyphen_values = true)]
    pub priority: Option<i64>,
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    #[arg(long, value_name = "S")]
    pub lease_seconds: Option<f64>,
    /// Not claimable before this many seconds.
    #[arg(long, value_name = "S")]
    pub delay: Option<f64>,
    /// Comma-separated capabilities a claimer must all have.
    #[arg(long, value_name = "LIST")]
    pub requires: Option<String>,
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

/// `koor tasks claim`.
#[derive(Debug, Args)]
pub struct ClaimArgs {
    #[arg(long)]
    pub queue: Option<String>,
    /// The registered instance id that holds the lease.
    #[arg(long)]
    pub holder: Option<String>,
    #[arg(long, value_name = "S")]
    pub lease_seconds: Option<f64>,
    /// Wait up to this many seconds (at most 60) for a task.
    #[arg(long, value_name = "S")]
    pub wait: Option<f64>,
}

/// `koor tasks work`.
#[derive(Debug, Args)]
pub struct WorkArgs {
    #[arg(long)]
    pub queue: String,
    /// The registered instance id that holds the leases.
    #[arg(long)]
    pub holder: Option<String>,
    /// Lease length of each claim (default: the task's own).
    #[arg(long, value_name = "S")]
    pub lease_seconds: Option<f64>,
    /// How long each claim long-polls, in seconds (at most 60).
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub wait: f64,
    /// Stop when a claim finds nothing instead of polling again.
    #[arg(long)]
    pub exit_when_empty: bool,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

fn task_path(id: &str, suffix: &str) -> String {
    format!("/api/tasks/{}{suffix}", path_escape(id))
}

/// A JSON argument, or the text itself as a JSON string when it is not JSON.
fn json_or_string(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Inserts `key: value` into the object `body` when `value` is given.
fn set<T: Into<Value>>(body: &mut Value, key: &str, value: Option<T>) {
    if let (Some(v), Some(o)) = (value, body.as_object_mut()) {
        o.insert(key.to_string(), v.into());
    }
}

/// The JSON body of a successful outcome, or the one-line error.
fn json_body(outcome: Outcome) -> Result<Value, String> {
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

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("koor: {message}");
    ExitCode::from(1)
}

/// Prints `value` compact (or `--pretty`).
fn print_json(client: &Client, value: &Value) {
    let text = if client.pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    println!("{}", text.unwrap_or_default());
}

/// One line per task: id, status, queue, priority, attempts, holder.
pub fn task_line(t: &Value) -> String {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let holder = t["lease"]["holder"].as_str().unwrap_or("-");
    format!(
        "{} {} queue={} priority={} attempts={}/{} holder={}",
        s(&t["id"]),
        s(&t["status"]),
        s(&t["queue"]),
        t["priority"],
        t["attempts"],
        t["max_attempts"],
        holder
    )
}

/// `koor tasks …`.
pub async fn run(client: &Client, cmd: TasksCmd) -> ExitCode {
    match cmd {
        TasksCmd::Add(args) => add(client, args).await,
        TasksCmd::Claim(args) => {
            let body = claim_body(&args.queue, &args.holder, args.lease_seconds, args.wait);
            match json_body(client.post_json("/api/tasks/claim", &body).await) {
                Err(e) => fail(e),
                Ok(out) if out["task"].is_null() => ExitCode::from(NOTHING),
                Ok(out) => {
                    print_json(client, &out["task"]);
                    ExitCode::SUCCESS
                }
            }
        }
        TasksCmd::Renew {
            id,
            lease_token,
            lease_seconds,
        } => {
            let mut body = json!({"token": lease_token});
            set(&mut body, "lease_seconds", lease_seconds);
            let outcome = client.post_json(&task_path(&id, "/renew"), &body).await;
            client.print(outcome, false)
        }
        TasksCmd::Complete {
            id,
            lease_token,
            result,
        } => {
            let mut body = json!({"token": lease_token});
            set(&mut body, "result", result.as_deref().map(json_or_string));
            let outcome = client.post_json(&task_path(&id, "/complete"), &body).await;
            client.print(outcome, false)
        }
        TasksCmd::Fail {
            id,
            lease_token,
            error,
            retry_after,
        } => {
            let mut body = json!({"token": lease_token, "error": error});
            set(&mut body, "retry_after_seconds", retry_after);
            let outcome = client.post_json(&task_path(&id, "/fail"), &body).await;
            client.print(outcome, false)
        }
        TasksCmd::Release { id, lease_token } => {
            let body = json!({"token": lease_token});
            let outcome = client.post_json(&task_path(&id, "/release"), &body).await;
            client.print(outcome, false)
        }
        TasksCmd::Cancel { id } => {
            let outcome = client
                .send(Method::POST, &task_path(&id, "/cancel"), &[], None)
                .await;
            client.print(outcome, false)
        }
        TasksCmd::Retry { id } => {
            let outcome = client
                .send(Method::POST, &task_path(&id, "/retry"), &[], None)
                .await;
            client.print(outcome, false)
        }
        TasksCmd::Get { id } => client.print(client.get(&task_path(&id, ""), &[]).await, false),
        TasksCmd::List {
            queue,
            status,
            group,
            holder,
            limit,
            json,
        } => {
            let q = given([
                ("queue", queue),
                ("status", status),
                ("group", group),
                ("holder", holder),
                ("limit", limit.map(|l| l.to_string())),
            ]);
            let outcome = client.get("/api/tasks", &q).await;
            if json {
                return client.print(outcome, false);
            }
            match json_body(outcome) {
                Err(e) => fail(e),
                Ok(tasks) => {
                    for t in tasks.as_array().into_iter().flatten() {
                        println!("{}", task_line(t));
                    }
                    ExitCode::SUCCESS
                }
            }
        }
        TasksCmd::Stats { queue } => {
            let q = given([("queue", queue)]);
            client.print(client.get("/api/tasks/stats", &q).await, false)
        }
        TasksCmd::Group { group } => {
            let path = format!("/api/tasks/groups/{}", path_escape(&group));
            client.print(client.get(&path, &[]).await, false)
        }
        TasksCmd::Wait { group, timeout } => {
            let path = format!("/api/tasks/groups/{}/wait", path_escape(&group));
            let q = given([("timeout", timeout.map(|t| t.to_string()))]);
            match json_body(client.get(&path, &q).await) {
                Err(e) => fail(e),
                Ok(summary) => {
                    print_json(client, &summary);
                    if summary["finished"] == true {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(NOTHING)
                    }
                }
            }
        }
        TasksCmd::Work(args) => work(client, args).await,
    }
}

async fn add(client: &Client, args: AddArgs) -> ExitCode {
    let raw = match read_input(args.data, args.file) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let payload: Value = match serde_json::from_slice(&raw) {
        Ok(v) => v,
        Err(e) => return fail(format!("the payload is not JSON: {e}")),
    };
    let mut body = json!({"payload": payload});
    set(&mut body, "queue", args.queue);
    set(&mut body, "priority", args.priority);
    set(&mut body, "max_attempts", args.max_attempts);
    set(&mut body, "lease_seconds", args.lease_seconds);
    set(&mut body, "delay_seconds", args.delay);
    set(
        &mut body,
        "requires",
        args.requires.as_deref().map(|r| json!(list_arg(r))),
    );
    set(&mut body, "group", args.group);
    set(&mut body, "idempotency_key", args.idempotency_key);
    client.print(client.post_json("/api/tasks", &body).await, false)
}

fn claim_body(
    queue: &Option<String>,
    holder: &Option<String>,
    lease_seconds: Option<f64>,
    wait: Option<f64>,
) -> Value {
    let mut body = json!({});
    set(&mut body, "queue", queue.clone());
    set(&mut body, "holder", holder.clone());
    set(&mut body, "lease_seconds", lease_seconds);
    set(&mut body, "wait_seconds", wait);
    body
}

/// How a command run for a task ended.
enum Ran {
    /// Exit 0: its standard output.
    Ok(Vec<u8>),
    /// Non-zero exit: what to record as the error.
    Failed(String),
    /// The lease was lost while it ran (it was stopped).
    LeaseLost(String),
    /// Ctrl-C (it was stopped).
    Interrupted,
}

/// What `work` records for a command's standard output: JSON if it parses, else the text;
/// no output at all is `null`.
pub fn result_of(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(trimmed.to_string()))
}

/// The error `work` records for a failed command: its standard error, else its status.
pub fn error_of(stderr: &[u8], status: &std::process::ExitStatus) -> String {
    let text = String::from_utf8_lossy(stderr).trim().to_string();
    let mut error = if text.is_empty() {
        format!("the command failed: {status}")
    } else {
        text
    };
    if error.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
    }
    error
}

/// `koor tasks work`: claim, run, renew while it runs, complete or fail; Ctrl-C releases
/// the lease in hand and exits 130.
async fn work(client: &Client, args: WorkArgs) -> ExitCode {
    let body = claim_body(
        &Some(args.queue.clone()),
        &args.holder,
        args.lease_seconds,
        Some(args.wait),
    );
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        let claimed = tokio::select! {
            biased;
            _ = &mut interrupt => return ExitCode::from(INTERRUPTED),
            out = client.post_json("/api/tasks/claim", &body) => out,
        };
        let task = match json_body(claimed) {
            Ok(out) => out["task"].clone(),
            Err(e) => return fail(e),
        };
        if task.is_null() {
            if args.exit_when_empty {
                return ExitCode::SUCCESS;
            }
            continue;
        }
        let id = task["id"].as_str().unwrap_or_default().to_string();
        let token = task["lease"]["token"].as_i64().unwrap_or_default();
        let length = args
            .lease_seconds
            .or_else(|| task["lease_seconds"].as_f64())
            .unwrap_or(60.0);
        let ran = run_one(
            client,
            &args.command,
            &task,
            &id,
            token,
            length,
            &mut interrupt,
        )
        .await;
        let (path, body, what) = match ran {
            Err(e) => return fail(e),
            Ok(Ran::Ok(stdout)) => (
                "/complete",
                json!({"token": token, "result": result_of(&stdout)}),
                "done".to_string(),
            ),
            Ok(Ran::Failed(error)) => {
                let what = format!("failed: {}", error.lines().next().unwrap_or_default());
                ("/fail", json!({"token": token, "error": error}), what)
            }
            Ok(Ran::LeaseLost(why)) => {
                eprintln!("koor: task {id}: the lease was lost ({why}); the command was stopped");
                continue;
            }
            Ok(Ran::Interrupted) => {
                let released = client
                    .post_json(&task_path(&id, "/release"), &json!({"token": token}))
                    .await;
                if let Err(e) = json_body(released) {
                    eprintln!("koor: task {id}: could not release the lease: {e}");
                }
                return ExitCode::from(INTERRUPTED);
            }
        };
        match json_body(client.post_json(&task_path(&id, path), &body).await) {
            Ok(_) => println!("{id} {what}"),
            Err(e) => eprintln!("koor: task {id}: {e}"),
        }
    }
}

/// Runs `command` for `task` with its payload on standard input, renewing the lease every
/// third of `length` seconds.
async fn run_one<F>(
    client: &Client,
    command: &[String],
    task: &Value,
    id: &str,
    token: i64,
    length: f64,
    interrupt: &mut std::pin::Pin<&mut F>,
) -> Result<Ran, String>
where
    F: std::future::Future<Output = std::io::Result<()>>,
{
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| "give the command after --".to_string())?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group: a Ctrl-C at the terminal reaches the worker, which releases
    // the lease and stops the command, instead of the command failing the task.
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut input = child.stdin.take();
    let payload = serde_json::to_vec(&task["payload"]).unwrap_or_default();
    let feed = async move {
        if let Some(stdin) = input.as_mut() {
            let _ = stdin.write_all(&payload).await;
            let _ = stdin.write_all(b"\n").await;
        }
        drop(input);
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let read_out = async move {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf).await;
        }
        buf
    };
    let read_err = async move {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf).await;
        }
        buf
    };
    let outputs = async { tokio::join!(feed, read_out, read_err, child.wait()) };
    tokio::pin!(outputs);
    let period = Duration::from_secs_f64((length / 3.0).max(0.1));
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            biased;
            _ = interrupt.as_mut() => return Ok(Ran::Interrupted),
            (_, out, err, status) = &mut outputs => {
                let status = status.map_err(|e| format!("cannot wait for {program}: {e}"))?;
                return Ok(if status.success() {
                    Ran::Ok(out)
                } else {
                    Ran::Failed(error_of(&err, &status))
                });
            }
            _ = renew.tick() => {
                let body = json!({"token": token, "lease_seconds": length});
                match client.post_json(&task_path(id, "/renew"), &body).await {
                    Ok((status, _, _)) if status.is_success() => {}
                    Ok((status, _, body)) if status == StatusCode::CONFLICT || status == StatusCode::NOT_FOUND => {
                        return Ok(Ran::LeaseLost(String::from_utf8_lossy(&body).trim().to_string()));
                    }
                    Ok((status, _, _)) => eprintln!("koor: task {id}: renew answered {}", status.as_u16()),
                    Err(e) => eprintln!("koor: task {id}: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_becomes_json_or_text_and_errors_are_bounded() {
        assert_eq!(result_of(b"{\"a\":1}\n"), json!({"a": 1}));
        assert_eq!(result_of(b"42"), json!(42));
        assert_eq!(result_of(b"all good\n"), json!("all good"));
        assert_eq!(result_of(b"\n"), Value::Null);
        assert_eq!(json_or_string("[1]"), json!([1]));
        assert_eq!(json_or_string("ok"), json!("ok"));
        let status = std::process::Command::new("false").status().unwrap();
        assert!(error_of(b"", &status).contains("failed"));
        assert_eq!(error_of(b" boom \n", &status), "boom");
        let long = "é".repeat(MAX_ERROR);
        assert!(error_of(long.as_bytes(), &status).len() <= MAX_ERROR);
    }

    #[test]
    fn the_lease_token_is_positional_beside_the_global_bearer_token() {
        use clap::FromArgMatches;
        let argv = ["koor", "tasks", "complete", "t1", "42", "--token", "secret"];
        let matches = crate::cli::command().try_get_matches_from(argv).unwrap();
        let cli = crate::cli::Cli::from_arg_matches(&matches).unwrap();
        assert_eq!(cli.token.as_deref(), Some("secret"));
        match cli.command {
            crate::cli::Command::Tasks(TasksCmd::Complete {
                id, lease_token, ..
            }) => assert_eq!((id.as_str(), lease_token), ("t1", 42)),
            other => panic!("{other:?}"),
        }
        let argv = [
            "koor", "tasks", "work", "--queue", "q", "--", "sh", "-c", "cat",
        ];
        let matches = crate::cli::command().try_get_matches_from(argv).unwrap();
        let cli = crate::cli::Cli::from_arg_matches(&matches).unwrap();
        match cli.command {
            crate::cli::Command::Tasks(TasksCmd::Work(w)) => {
                assert_eq!(w.command, ["sh", "-c", "cat"]);
                assert_eq!(w.wait, 30.0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_task_line_names_status_queue_and_holder() {
        let t = json!({"id": "t1", "status": "leased", "queue": "q", "priority": 2, "attempts": 1,
                       "max_attempts": 3, "lease": {"holder": "h"}});
        assert_eq!(
            task_line(&t),
            "t1 leased queue=q priority=2 attempts=1/3 holder=h"
        );
    }
}
