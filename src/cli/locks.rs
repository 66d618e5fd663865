//! `koor locks acquire|renew|release|list|check` (API §24). Compact lines by default,
//! the server's JSON with `--json`. "Me" (the holder) is `--holder`, else `KOOR_INSTANCE`,
//! else the `instance` key of ./settings.json.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::{Client, Outcome, path_escape};
use super::settings;

#[derive(Debug, Subcommand)]
pub enum LocksCmd {
    /// Reserve a file or a glob (`src/api/**`, `docs/*.md`); prints its id and token.
    Acquire {
        /// A path or glob over `/`-separated segments.
        resource: String,
        /// The holding instance (default: KOOR_INSTANCE, else `instance` in ./settings.json).
        #[arg(long)]
        holder: Option<String>,
        /// Let other holders take shared locks on it too.
        #[arg(long)]
        shared: bool,
        /// How long the lock lasts unless renewed (1..86400; the server's default: 300).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<f64>,
        /// Why (shown to whoever is blocked).
        #[arg(long)]
        reason: Option<String>,
        /// Wait up to this long (0..60) for conflicting locks to go away.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Extend a lock (same token); the ttl defaults to the lock's last one.
    Renew {
        id: String,
        /// The lock's fencing token (from `acquire`). (Not `token`: that is the global
        /// bearer token's name.)
        #[arg(value_name = "TOKEN")]
        lock_token: i64,
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Release a lock with its token, or any lock with --force.
    Release {
        id: String,
        /// The lock's fencing token (from `acquire`).
        #[arg(value_name = "TOKEN", required_unless_present = "force")]
        lock_token: Option<i64>,
        /// Release without the token (an operator's override; audited as forced).
        #[arg(long, conflicts_with = "lock_token")]
        force: bool,
    },
    /// Held locks, newest first.
    List {
        /// Only this holder's locks.
        #[arg(long)]
        holder: Option<String>,
        /// Only locks that could share a path with this path or glob.
        #[arg(long)]
        resource: Option<String>,
        /// At most this many (the server's default: 100).
        #[arg(long)]
        limit: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Which paths another holder has locked (exit 1 if any). Without paths: the files
    /// staged in git, so it works as a pre-commit check.
    Check {
        paths: Vec<String>,
        /// Who "me" is: my own locks never block (default: KOOR_INSTANCE, else `instance`
        /// in ./settings.json; with nobody, every lock blocks).
        #[arg(long)]
        holder: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The holder a command acts as: the flag, else the configured agent identity.
fn me(flag: Option<String>) -> Result<Option<String>, String> {
    match flag.filter(|h| !h.is_empty()) {
        Some(h) => Ok(Some(h)),
        None => settings::instance(),
    }
}

fn lock_path(id: &str, suffix: &str) -> String {
    format!("/api/locks/{}{suffix}", path_escape(id))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// One lock on one line: `ID MODE RESOURCE holder=H token=N until=T["reason"]`.
pub fn lock_line(lock: &Value) -> String {
    let mut line = format!(
        "{} {} {} holder={} token={} until={}",
        text(lock, "id"),
        text(lock, "mode"),
        text(lock, "resource"),
        text(lock, "holder"),
        lock["token"],
        text(lock, "expires_at"),
    );
    let reason = text(lock, "reason");
    if !reason.is_empty() {
        line.push_str(&format!(" {}", json!(reason)));
    }
    line
}

/// Prints the outcome: with `--json` (or on an error) as [`Client::print`] does, else the
/// lines `render` makes of the JSON body.
fn show(
    client: &Client,
    outcome: Outcome,
    json: bool,
    render: impl Fn(&Value) -> String,
) -> ExitCode {
    match &outcome {
        Ok((status, _, body)) if status.is_success() && !json => {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => {
                    let out = render(&v);
                    if !out.is_empty() {
                        println!("{out}");
                    }
                    ExitCode::SUCCESS
                }
                Err(_) => client.print(outcome, false),
            }
        }
        _ => client.print(outcome, false),
    }
}

/// `koor locks …`.
pub async fn run(client: &Client, cmd: LocksCmd) -> ExitCode {
    match cmd {
        LocksCmd::Acquire {
            resource,
            holder,
            shared,
            ttl,
            reason,
            wait,
            json,
        } => {
            let holder = match me(holder) {
                Ok(h) => h,
                Err(e) => return fail(&e),
            };
            let mut body = json!({"resource": resource});
            if let Some(h) = holder {
                body["holder"] = json!(h);
            }
            if shared {
                body["mode"] = json!("shared");
            }
            for (key, value) in [("ttl_seconds", ttl), ("wait_seconds", wait)] {
                if let Some(v) = value {
                    body[key] = json!(v);
                }
            }
            if let Some(r) = reason {
                body["reason"] = json!(r);
            }
            let outcome = client.post_json("/api/locks", &body).await;
            if !json && let Ok((StatusCode::CONFLICT, _, bytes)) = &outcome {
                let v: Value = serde_json::from_slice(bytes).unwrap_or_default();
                eprintln!("koor: {resource} is locked:");
                for lock in v["conflicts"].as_array().into_iter().flatten() {
                    eprintln!("  {}", lock_line(lock));
                }
                return ExitCode::from(1);
            }
            show(client, outcome, json, |v| {
                format!("locked {}", lock_line(v))
            })
        }
        LocksCmd::Renew {
            id,
            lock_token,
            ttl,
            json,
        } => {
            let mut body = json!({"token": lock_token});
            if let Some(t) = ttl {
                body["ttl_seconds"] = json!(t);
            }
            let outcome = client.post_json(&lock_path(&id, "/renew"), &body).await;
            show(client, outcome, json, |v| {
                format!("renewed {}", lock_line(v))
            })
        }
        LocksCmd::Release {
            id,
            lock_token,
            force: _,
        } => {
            let query: Vec<(&str, String)> = lock_token
                .map(|t| ("token", t.to_string()))
                .into_iter()
                .collect();
            let outcome = client
                .send(Method::DELETE, &lock_path(&id, ""), &query, None)
                .await;
            client.print(outcome, false)
        }
        LocksCmd::List {
            holder,
            resource,
            limit,
            json,
        } => {
            let query = super::client::given([
                ("holder", holder),
                ("resource", resource),
                ("limit", limit.map(|l| l.to_string())),
            ]);
            let outcome = client.get("/api/locks", &query).await;
            show(client, outcome, json, |v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(lock_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        LocksCmd::Check {
            paths,
            holder,
            json,
        } => check(client, paths, holder, json).await,
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("koor: {message}");
    ExitCode::from(1)
}

/// The files staged in the git repository around the working directory, relative to its
/// top (renames as their old and new paths, deletions included).
fn staged_files() -> Result<Vec<String>, String> {
    let out = std::process::Command::new("git")
        .args(["diff", "--cached", "--name-only", "--no-renames", "-z"])
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("git diff --cached failed: {}", err.trim()));
    }
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

/// `koor locks check`: exit 1 when another holder's lock covers any path.
async fn check(
    client: &Client,
    paths: Vec<String>,
    holder: Option<String>,
    json: bool,
) -> ExitCode {
    let holder = match me(holder) {
        Ok(h) => h,
        Err(e) => return fail(&e),
    };
    let paths = if paths.is_empty() {
        match staged_files() {
            Ok(p) => p,
            Err(e) => return fail(&e),
        }
    } else {
        paths
    };
    if paths.is_empty() {
        if json {
            println!("{}", json!({"ok": true, "blocked": []}));
        }
        return ExitCode::SUCCESS;
    }
    let mut body = json!({"paths": paths});
    if let Some(h) = &holder {
        body["holder"] = json!(h);
    }
    let outcome = client.post_json("/api/locks/check", &body).await;
    let report = match &outcome {
        Ok((status, _, bytes)) if status.is_success() => {
            serde_json::from_slice::<Value>(bytes).unwrap_or_default()
        }
        _ => return client.print(outcome, false),
    };
    let blocked = report["blocked"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{report}");
    } else {
        let names = holder_names(client, &blocked).await;
        for entry in &blocked {
            let lock = &entry["lock"];
            let who = text(lock, "holder");
            let who = match names.get(who) {
                Some(name) => format!("{name} ({who})"),
                None => who.to_string(),
            };
            let mut line = format!(
                "{}: locked by {who} until {} ({} {}, lock {})",
                text(entry, "path"),
                text(lock, "expires_at"),
                text(lock, "mode"),
                text(lock, "resource"),
                text(lock, "id"),
            );
            let reason = text(lock, "reason");
            if !reason.is_empty() {
                line.push_str(&format!(": {reason}"));
            }
            println!("{line}");
        }
        if !blocked.is_empty() && holder.is_none() {
            eprintln!(
                "koor: no holder given (--holder, KOOR_INSTANCE or `koor config set instance ID`): every lock counts"
            );
        }
    }
    if blocked.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The registered names of the holders in `blocked` (best effort: a holder that cannot be
/// looked up is shown by id).
async fn holder_names(client: &Client, blocked: &[Value]) -> HashMap<String, String> {
    let mut names = HashMap::new();
    for entry in blocked {
        let id = text(&entry["lock"], "holder");
        if id.is_empty() || names.contains_key(id) {
            continue;
        }
        let path = format!("/api/instances/{}", path_escape(id));
        if let Ok((status, _, bytes)) = client.get(&path, &[]).await
            && status.is_success()
            && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
            && let Some(name) = v["name"].as_str()
        {
            names.insert(id.to_string(), name.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;

    fn parse(args: &[&str]) -> Result<super::super::Cli, clap::Error> {
        let matches = super::super::command().try_get_matches_from(args)?;
        super::super::Cli::from_arg_matches(&matches)
    }

    #[test]
    fn the_lock_token_is_not_the_bearer_token() {
        let cli = parse(&["koor", "locks", "renew", "L", "42", "--token", "secret"]).unwrap();
        assert_eq!(cli.token.as_deref(), Some("secret"));
        let super::super::Command::Locks(LocksCmd::Renew { lock_token, .. }) = cli.command else {
            panic!("not renew");
        };
        assert_eq!(lock_token, 42);
        let cli = parse(&["koor", "locks", "release", "L", "--force"]).unwrap();
        assert!(matches!(
            cli.command,
            super::super::Command::Locks(LocksCmd::Release {
                lock_token: None,
                force: true,
                ..
            })
        ));
        assert!(parse(&["koor", "locks", "release", "L"]).is_err());
        assert!(parse(&["koor", "locks", "release", "L", "7", "--force"]).is_err());
    }

    #[test]
    fn a_lock_is_one_line() {
        let lock = json!({"id": "L", "mode": "exclusive", "resource": "src/**", "holder": "h",
            "token": 7, "reason": "", "acquired_at": "a", "expires_at": "e"});
        assert_eq!(
            lock_line(&lock),
            "L exclusive src/** holder=h token=7 until=e"
        );
        let mut with_reason = lock.clone();
        with_reason["reason"] = json!("refactor \"api\"");
        assert_eq!(
            lock_line(&with_reason),
            "L exclusive src/** holder=h token=7 until=e \"refactor \\\"api\\\"\""
        );
    }
}
