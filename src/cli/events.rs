//! `koor events …`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{Client, read_input};

#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Publish an event (data from --data or --file; without either it is null).
    Publish {
        topic: String,
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Show recent events, newest first.
    History {
        #[arg(long)]
        last: Option<u64>,
        #[arg(long, value_name = "PATTERN")]
        topic: Option<String>,
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        #[arg(long)]
        source: Option<String>,
    },
}

pub async fn run(client: &Client, cmd: EventsCmd) -> ExitCode {
    match cmd {
        EventsCmd::Publish { topic, data, file } => {
            let data = if data.is_none() && file.is_none() {
                Value::Null
            } else {
                let bytes = match read_input(data, file) {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("koor: {e}");
                        return ExitCode::from(2);
                    }
                };
                match serde_json::from_slice(&bytes) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("koor: event data is not valid JSON: {e}");
                        return ExitCode::from(2);
                    }
                }
            };
            let outcome = client
                .post_json(
                    "/api/events/publish",
                    &json!({"topic": topic, "data": data}),
                )
                .await;
            client.print(outcome, false)
        }
        EventsCmd::History {
            last,
            topic,
            from,
            to,
            source,
        } => {
            let mut q: Vec<(&str, String)> = Vec::new();
            if let Some(v) = last {
                q.push(("last", v.to_string()));
            }
            for (name, v) in [
                ("topic", topic),
                ("from", from),
                ("to", to),
                ("source", source),
            ] {
                if let Some(v) = v {
                    q.push((name, v));
                }
            }
            client.print(client.get("/api/events/history", &q).await, false)
        }
    }
}
