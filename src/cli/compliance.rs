//! `koor compliance …` (API §12).

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;

use super::client::Client;

#[derive(Debug, Subcommand)]
pub enum ComplianceCmd {
    /// List compliance runs, newest first.
    History {
        /// Only runs of this instance.
        #[arg(long = "instance_id", alias = "instance-id", value_name = "ID")]
        instance_id: Option<String>,
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Run a compliance pass now and print its runs.
    Run,
}

pub async fn run(client: &Client, cmd: ComplianceCmd) -> ExitCode {
    let outcome = match cmd {
        ComplianceCmd::History { instance_id, limit } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(id) = instance_id {
                query.push(("instance_id", id));
            }
            if let Some(l) = limit {
                query.push(("limit", l.to_string()));
            }
            client.get("/api/compliance/history", &query).await
        }
        ComplianceCmd::Run => {
            client
                .send(Method::POST, "/api/compliance/run", &[], None)
                .await
        }
    };
    client.print(outcome, false)
}
