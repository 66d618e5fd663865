//! `koor llm …` (API §17, and budgets).

use std::process::ExitCode;

use bytes::Bytes;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, given, path_escape};
use super::specs::usage;

/// `koor llm record …`
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The model's provider, e.g. openai.
    #[arg(long)]
    pub provider: String,
    /// The model, e.g. gpt-4.
    #[arg(long)]
    pub model: String,
    /// The agent's instance id.
    #[arg(long)]
    pub instance: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    /// A tag grouping the records of one working session.
    #[arg(long, value_name = "TAG")]
    pub session: Option<String>,
    #[arg(long, value_name = "N")]
    pub tokens_in: Option<u64>,
    #[arg(long, value_name = "N")]
    pub tokens_out: Option<u64>,
    /// Cost in US dollars.
    #[arg(long, value_name = "USD")]
    pub cost: Option<f64>,
    /// completion (default) or embedding.
    #[arg(long = "type", value_name = "TYPE")]
    pub request_type: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum LlmCmd {
    /// Record the usage of one LLM request.
    Record(RecordArgs),
    /// List usage records, newest first (one of --instance, --project, --session applies).
    Usage {
        #[arg(long)]
        instance: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long, value_name = "TAG")]
        session: Option<String>,
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Tokens, cost and request counts per project, instance, model or session tag.
    Summary {
        /// project (default), instance, model or session_tag.
        #[arg(long, value_name = "FIELD")]
        by: Option<String>,
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
    },
    /// Spending limits per project or instance.
    #[command(subcommand)]
    Budget(BudgetCmd),
}

#[derive(Debug, Subcommand)]
pub enum BudgetCmd {
    /// Every budget with its spend in the current period.
    List,
    /// One budget with its spend (SCOPE is project:NAME or instance:ID).
    Get { scope: String },
    /// Set or replace a budget.
    Set {
        /// project:NAME or instance:ID.
        scope: String,
        /// day (default) or month, in UTC.
        #[arg(long)]
        period: Option<String>,
        /// Most tokens (in + out) per period.
        #[arg(long, value_name = "N")]
        tokens: Option<u64>,
        /// Most US dollars per period.
        #[arg(long, value_name = "USD")]
        cost: Option<f64>,
    },
    /// Delete a budget.
    Delete { scope: String },
}

/// The body of `POST /api/llm/usage`: only the fields given.
pub fn record_body(args: &RecordArgs) -> Value {
    let mut body = json!({"provider": args.provider, "model": args.model});
    let strings = [
        ("instance_id", &args.instance),
        ("project", &args.project),
        ("session_tag", &args.session),
        ("request_type", &args.request_type),
    ];
    for (key, value) in strings {
        if let Some(v) = value {
            body[key] = json!(v);
        }
    }
    for (key, value) in [
        ("tokens_in", args.tokens_in),
        ("tokens_out", args.tokens_out),
    ] {
        if let Some(v) = value {
            body[key] = json!(v);
        }
    }
    if let Some(c) = args.cost {
        body["cost_usd"] = json!(c);
    }
    body
}

/// The body of `PUT /api/llm/budgets/SCOPE`, or a usage error when no limit is given.
pub fn budget_body(
    period: Option<String>,
    tokens: Option<u64>,
    cost: Option<f64>,
) -> Result<Value, String> {
    if tokens.is_none() && cost.is_none() {
        return Err("give --tokens, --cost or both".into());
    }
    let mut body = json!({});
    if let Some(p) = period {
        body["period"] = json!(p);
    }
    if let Some(t) = tokens {
        body["max_tokens"] = json!(t);
    }
    if let Some(c) = cost {
        body["max_cost_usd"] = json!(c);
    }
    Ok(body)
}

/// The path of a budget; the scope is one path segment, so `/` is escaped too.
fn budget_path(scope: &str) -> String {
    format!(
        "/api/llm/budgets/{}",
        path_escape(scope).replace('/', "%2F")
    )
}

pub async fn run(client: &Client, cmd: LlmCmd) -> ExitCode {
    let outcome = match cmd {
        LlmCmd::Record(args) => {
            client
                .post_json("/api/llm/usage", &record_body(&args))
                .await
        }
        LlmCmd::Usage {
            instance,
            project,
            session,
            from,
            to,
            limit,
        } => {
            let q = given([
                ("instance", instance),
                ("project", project),
                ("session_tag", session),
                ("from", from),
                ("to", to),
                ("limit", limit.map(|l| l.to_string())),
            ]);
            client.get("/api/llm/usage", &q).await
        }
        LlmCmd::Summary { by, from, to } => {
            let q = given([("group_by", by), ("from", from), ("to", to)]);
            client.get("/api/llm/usage/summary", &q).await
        }
        LlmCmd::Budget(BudgetCmd::List) => client.get("/api/llm/budgets", &[]).await,
        LlmCmd::Budget(BudgetCmd::Get { scope }) => client.get(&budget_path(&scope), &[]).await,
        LlmCmd::Budget(BudgetCmd::Set {
            scope,
            period,
            tokens,
            cost,
        }) => {
            let body = match budget_body(period, tokens, cost) {
                Ok(b) => b,
                Err(e) => return usage(&e),
            };
            let bytes = Bytes::from(body.to_string());
            client
                .send(
                    Method::PUT,
                    &budget_path(&scope),
                    &[],
                    Some((bytes, "application/json")),
                )
                .await
        }
        LlmCmd::Budget(BudgetCmd::Delete { scope }) => {
            client
                .send(Method::DELETE, &budget_path(&scope), &[], None)
                .await
        }
    };
    client.print(outcome, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RecordArgs {
        RecordArgs {
            provider: "openai".into(),
            model: "gpt-4".into(),
            instance: None,
            project: None,
            session: None,
            tokens_in: None,
            tokens_out: None,
            cost: None,
            request_type: None,
        }
    }

    #[test]
    fn record_bodies_carry_only_the_fields_given() {
        assert_eq!(
            record_body(&args()),
            json!({"provider": "openai", "model": "gpt-4"})
        );
        let full = RecordArgs {
            instance: Some("i-1".into()),
            project: Some("p".into()),
            session: Some("s".into()),
            tokens_in: Some(10),
            tokens_out: Some(5),
            cost: Some(0.25),
            request_type: Some("embedding".into()),
            ..args()
        };
        assert_eq!(
            record_body(&full),
            json!({"provider": "openai", "model": "gpt-4", "instance_id": "i-1",
                   "project": "p", "session_tag": "s", "request_type": "embedding",
                   "tokens_in": 10, "tokens_out": 5, "cost_usd": 0.25})
        );
    }

    #[test]
    fn budget_bodies_need_a_limit() {
        assert_eq!(
            budget_body(Some("month".into()), Some(1000), None).unwrap(),
            json!({"period": "month", "max_tokens": 1000})
        );
        assert_eq!(
            budget_body(None, None, Some(2.5)).unwrap(),
            json!({"max_cost_usd": 2.5})
        );
        assert!(budget_body(Some("day".into()), None, None).is_err());
    }

    #[test]
    fn budget_scopes_are_one_path_segment() {
        assert_eq!(budget_path("project:p"), "/api/llm/budgets/project:p");
        assert_eq!(
            budget_path("project:a/b c"),
            "/api/llm/budgets/project:a%2Fb%20c"
        );
    }
}
