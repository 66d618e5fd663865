//! `koor state …`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;

use super::client::{Client, path_escape, read_input};

#[derive(Debug, Subcommand)]
pub enum StateCmd {
    /// List keys with version, content type and update time.
    List,
    /// Print a key's current value, raw.
    Get { key: String },
    /// Store a new version of a key (value from --data, --file or standard input).
    Set {
        key: String,
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, value_name = "TYPE")]
        content_type: Option<String>,
        /// Only write if the current version is N (0 = only if the key does not exist).
        #[arg(long, value_name = "N")]
        if_version: Option<i64>,
    },
    /// Delete a key and its history.
    Delete {
        key: String,
        #[arg(long, value_name = "N")]
        if_version: Option<i64>,
    },
    /// List a key's versions, newest first.
    History {
        key: String,
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Show the JSON differences between two versions.
    Diff {
        key: String,
        #[arg(long)]
        v1: i64,
        #[arg(long)]
        v2: i64,
    },
    /// Store an old version's value as the new current version.
    Rollback {
        key: String,
        #[arg(long)]
        version: i64,
    },
}

fn path(key: &str) -> String {
    format!("/api/state/{}", path_escape(key))
}

pub async fn run(client: &Client, cmd: StateCmd) -> ExitCode {
    let (outcome, raw) = match cmd {
        StateCmd::List => (client.get("/api/state", &[]).await, false),
        StateCmd::Get { key } => (client.get(&path(&key), &[]).await, true),
        StateCmd::Set {
            key,
            data,
            file,
            content_type,
            if_version,
        } => {
            let value = match read_input(data, file) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("koor: {e}");
                    return ExitCode::from(2);
                }
            };
            let query: Vec<(&str, String)> = if_version
                .map(|v| vec![("if_version", v.to_string())])
                .unwrap_or_default();
            let ct = content_type.unwrap_or_else(|| "application/json".into());
            (
                client
                    .send(Method::PUT, &path(&key), &query, Some((value, &ct)))
                    .await,
                false,
            )
        }
        StateCmd::Delete { key, if_version } => {
            let query: Vec<(&str, String)> = if_version
                .map(|v| vec![("if_version", v.to_string())])
                .unwrap_or_default();
            (
                client.send(Method::DELETE, &path(&key), &query, None).await,
                false,
            )
        }
        StateCmd::History { key, limit } => {
            let mut query = vec![("history", "1".to_string())];
            if let Some(l) = limit {
                query.push(("limit", l.to_string()));
            }
            (client.get(&path(&key), &query).await, false)
        }
        StateCmd::Diff { key, v1, v2 } => (
            client
                .get(&path(&key), &[("diff", format!("{v1},{v2}"))])
                .await,
            false,
        ),
        StateCmd::Rollback { key, version } => (
            client
                .send(
                    Method::POST,
                    &path(&key),
                    &[("rollback", version.to_string())],
                    None,
                )
                .await,
            false,
        ),
    };
    client.print(outcome, raw)
}
