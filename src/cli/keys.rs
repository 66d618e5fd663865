//! `koor keys …` (API §25): create, list, revoke and rotate access keys (admin scope).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, path_escape};
use super::specs::{list_arg, usage};

/// `koor keys create …`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A unique name; writes are audited as `key:<name>`.
    pub name: String,
    /// Comma-separated scopes: read, write, admin.
    #[arg(long, value_name = "LIST")]
    pub scopes: String,
    /// Comma-separated projects the key is restricted to (default: every project).
    #[arg(long, value_name = "LIST")]
    pub projects: Option<String>,
    /// When the key stops working (RFC 3339, in the future).
    #[arg(long, value_name = "TIME")]
    pub expires_at: Option<String>,
    /// The key's own limit in requests per second.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate_limit: Option<f64>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a key; its secret (`koor_…`) is printed once and never shown again.
    Create(CreateArgs),
    /// List the keys that are not revoked (never their secrets).
    List,
    /// Revoke a key: its next request is refused.
    Revoke { id: String },
    /// Give a key a new secret (printed once); the old one is refused at once.
    Rotate { id: String },
}

/// The body of `POST /api/keys`.
pub fn create_body(args: &CreateArgs) -> Result<Value, String> {
    let scopes = list_arg(&args.scopes);
    if scopes.is_empty() {
        return Err("--scopes needs at least one of read, write, admin".into());
    }
    let mut body = json!({"name": args.name, "scopes": scopes});
    if let Some(p) = &args.projects {
        body["projects"] = json!(list_arg(p));
    }
    if let Some(at) = &args.expires_at {
        body["expires_at"] = json!(at);
    }
    if let Some(r) = args.rate_limit {
        body["rate_limit"] = json!(r);
    }
    Ok(body)
}

fn key_path(id: &str, suffix: &str) -> String {
    format!("/api/keys/{}{suffix}", path_escape(id))
}

pub async fn run(client: &Client, cmd: KeysCmd) -> ExitCode {
    let outcome = match cmd {
        KeysCmd::Create(args) => match create_body(&args) {
            Ok(body) => client.post_json("/api/keys", &body).await,
            Err(e) => return usage(&e),
        },
        KeysCmd::List => client.get("/api/keys", &[]).await,
        KeysCmd::Revoke { id } => {
            client
                .send(Method::DELETE, &key_path(&id, ""), &[], None)
                .await
        }
        KeysCmd::Rotate { id } => {
            client
                .send(Method::POST, &key_path(&id, "/rotate"), &[], None)
                .await
        }
    };
    client.print(outcome, false)
}
