//! `koor audit …` (API §15 and chain verification).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::{Client, given};

/// `koor audit [filters]`, or one of its subcommands.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    cmd: Option<AuditCmd>,
    #[command(flatten)]
    filters: Filters,
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Counts by action and outcome, distinct actors and resources.
    Summary {
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
    },
    /// Walk the hash chain; exit 1 if it is broken.
    Verify,
}

/// Filters of the entry listing (newest first).
#[derive(Debug, Args)]
struct Filters {
    /// Only entries by this actor (exact).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action (exact), e.g. state.put.
    #[arg(long)]
    action: Option<String>,
    /// Entries at or after this time (ISO 8601).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Entries at or before this time (ISO 8601).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// At most this many entries (default 50).
    #[arg(long)]
    limit: Option<u64>,
}

pub async fn run(client: &Client, args: AuditArgs) -> ExitCode {
    match args.cmd {
        None => {
            let f = args.filters;
            let query = given([
                ("actor", f.actor),
                ("action", f.action),
                ("from", f.from),
                ("to", f.to),
                ("limit", f.limit.map(|l| l.to_string())),
            ]);
            client.print(client.get("/api/audit", &query).await, false)
        }
        Some(AuditCmd::Summary { from, to }) => {
            let query = given([("from", from), ("to", to)]);
            client.print(client.get("/api/audit/summary", &query).await, false)
        }
        Some(AuditCmd::Verify) => {
            let outcome = client.get("/api/audit/verify", &[]).await;
            let intact = matches!(&outcome, Ok((status, _, body))
                if status.is_success()
                    && serde_json::from_slice::<serde_json::Value>(body)
                        .is_ok_and(|v| v["ok"] == true));
            let code = client.print(outcome, false);
            if intact { code } else { ExitCode::from(1) }
        }
    }
}
