//! `koor webhooks …` (API §13 plus the delivery log, retry and enable).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, path_escape};
use super::specs::{list_arg, usage};

/// `koor webhooks add …`
#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    pub id: String,
    /// Where deliveries are POSTed (http or https).
    #[arg(long)]
    pub url: String,
    /// Comma-separated topic patterns, e.g. "agent.*,build.*" (default: every topic).
    #[arg(long, value_name = "LIST")]
    pub patterns: Option<String>,
    /// Signing secret (a `whsec_…` secret is base64 for the Standard Webhooks key).
    #[arg(long)]
    pub secret: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCmd {
    /// List webhooks, newest first (secrets are never shown).
    List,
    /// Register a webhook.
    Add(AddArgs),
    /// Delete a webhook; it receives nothing more.
    Delete { id: String },
    /// Send a test delivery now (exit 1 when the receiver does not accept it).
    Test { id: String },
    /// A webhook's delivery log, newest first.
    Deliveries {
        id: String,
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Make a logged delivery pending again, due now.
    Retry { id: String, delivery_id: i64 },
    /// Re-activate a disabled webhook and zero its failure count.
    Enable { id: String },
}

/// The body of `POST /api/webhooks`; `patterns` and `secret` only when given.
pub fn add_body(args: &AddArgs) -> Result<Value, String> {
    let mut body = json!({"id": args.id, "url": args.url});
    if let Some(raw) = &args.patterns {
        let patterns = list_arg(raw);
        if patterns.is_empty() {
            return Err(format!("--patterns {raw:?} holds no pattern"));
        }
        body["patterns"] = json!(patterns);
    }
    if let Some(s) = &args.secret {
        body["secret"] = json!(s);
    }
    Ok(body)
}

fn webhook_path(id: &str, suffix: &str) -> String {
    format!("/api/webhooks/{}{suffix}", path_escape(id))
}

pub async fn run(client: &Client, cmd: WebhooksCmd) -> ExitCode {
    let outcome = match cmd {
        WebhooksCmd::List => client.get("/api/webhooks", &[]).await,
        WebhooksCmd::Add(args) => {
            let body = match add_body(&args) {
                Ok(b) => b,
                Err(e) => return usage(&e),
            };
            client.post_json("/api/webhooks", &body).await
        }
        WebhooksCmd::Delete { id } => {
            client
                .send(Method::DELETE, &webhook_path(&id, ""), &[], None)
                .await
        }
        WebhooksCmd::Test { id } => {
            client
                .send(Method::POST, &webhook_path(&id, "/test"), &[], None)
                .await
        }
        WebhooksCmd::Deliveries { id, limit } => {
            let query: Vec<(&str, String)> = limit
                .map(|l| vec![("limit", l.to_string())])
                .unwrap_or_default();
            client.get(&webhook_path(&id, "/deliveries"), &query).await
        }
        WebhooksCmd::Retry { id, delivery_id } => {
            let suffix = format!("/deliveries/{delivery_id}/retry");
            client
                .send(Method::POST, &webhook_path(&id, &suffix), &[], None)
                .await
        }
        WebhooksCmd::Enable { id } => {
            client
                .send(Method::POST, &webhook_path(&id, "/enable"), &[], None)
                .await
        }
    };
    client.print(outcome, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(patterns: Option<&str>, secret: Option<&str>) -> AddArgs {
        AddArgs {
            id: "notify".into(),
            url: "https://example.com/hook".into(),
            patterns: patterns.map(String::from),
            secret: secret.map(String::from),
        }
    }

    #[test]
    fn add_bodies_split_patterns_and_omit_what_is_not_given() {
        let cases = [
            (
                args(None, None),
                json!({"id": "notify", "url": "https://example.com/hook"}),
            ),
            (
                args(Some(" agent.* , build.*,,"), Some("s3cret")),
                json!({"id": "notify", "url": "https://example.com/hook",
                       "patterns": ["agent.*", "build.*"], "secret": "s3cret"}),
            ),
            (
                args(Some("*"), Some("")),
                json!({"id": "notify", "url": "https://example.com/hook",
                       "patterns": ["*"], "secret": ""}),
            ),
        ];
        for (a, want) in cases {
            assert_eq!(add_body(&a).unwrap(), want, "{a:?}");
        }
    }

    #[test]
    fn add_refuses_patterns_that_hold_no_pattern() {
        let e = add_body(&args(Some(" , "), None)).unwrap_err();
        assert!(e.contains("holds no pattern"), "{e}");
    }

    #[test]
    fn paths_escape_the_id() {
        assert_eq!(
            webhook_path("a b", "/deliveries/7/retry"),
            "/api/webhooks/a%20b/deliveries/7/retry"
        );
    }
}
