//! The `koor` command line: `serve` and `migrate` run on this machine's data; every other
//! command is a REST client of a running server (API §21).

mod audit;
mod client;
mod compliance;
mod contracts;
mod events;
mod instances;
mod llm;
mod migrate;
mod rules;
mod serve;
mod settings;
mod specs;
mod state;
mod templates;
mod webhooks;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use client::{Client, ClientOptions};
pub use serve::ServeArgs;

/// koor: a coordination server for AI coding agents.
#[derive(Debug, Parser)]
#[command(name = "koor", version, about)]
pub struct Cli {
    /// Re-indent JSON output.
    #[arg(long, global = true)]
    pub pretty: bool,
    /// Server URL for client commands (else KOOR_SERVER, ./settings.json, http://localhost:9800).
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for client commands (else KOOR_TOKEN, ./settings.json).
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Show or change the database schema version.
    Migrate(migrate::MigrateArgs),
    /// A short overview: health, instances by status, the latest events.
    Status {
        /// Print the overview as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Versioned key/value state.
    #[command(subcommand)]
    State(state::StateCmd),
    /// Publish and read events.
    #[command(subcommand)]
    Events(events::EventsCmd),
    /// Register an agent instance (prints its id and token; keep the token).
    Register(instances::RegisterArgs),
    /// Mark an instance active.
    Activate { id: String },
    /// Tell the server an instance is alive.
    Heartbeat { id: String },
    /// The agent registry.
    #[command(subcommand)]
    Instances(instances::InstancesCmd),
    /// Server metrics and the token tax; `agents` for per-agent counters.
    Metrics {
        #[command(subcommand)]
        cmd: Option<instances::MetricsCmd>,
    },
    /// Client settings in ./settings.json.
    #[command(subcommand)]
    Config(settings::ConfigCmd),
    /// Per-project JSON documents.
    #[command(subcommand)]
    Specs(specs::SpecsCmd),
    /// API contracts: store, check payloads, test a running service.
    #[command(subcommand)]
    Contract(contracts::ContractCmd),
    /// Check files against a project's rules (exit 1 on an error; for pre-commit hooks).
    Validate(rules::ValidateArgs),
    /// Validation rules: propose, accept, list, replace, import, export.
    #[command(subcommand)]
    Rules(rules::RulesCmd),
    /// Contract compliance runs.
    #[command(subcommand)]
    Compliance(compliance::ComplianceCmd),
    /// Rule and contract templates.
    #[command(subcommand)]
    Templates(templates::TemplatesCmd),
    /// Webhooks: register, test, delivery log, retry, enable.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCmd),
    /// The audit log: list entries (newest first), `summary`, `verify` the hash chain.
    Audit(audit::AuditArgs),
    /// LLM usage: record, list, summarize; budgets per project or instance.
    #[command(subcommand)]
    Llm(llm::LlmCmd),
}

/// Parses the command line and runs it; the process exit code is returned.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let system = actix_web::rt::System::new();
    match cli.command {
        Command::Serve(args) => system.block_on(serve::run(*args)),
        Command::Migrate(args) => system.block_on(migrate::run(args)),
        Command::Config(cmd) => settings::run(cmd),
        command => {
            let options = ClientOptions {
                server: cli.server,
                token: cli.token,
                pretty: cli.pretty,
            };
            let client = match Client::new(options) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("koor: {e}");
                    return ExitCode::from(1);
                }
            };
            system.block_on(async move {
                match command {
                    Command::Status { json } => instances::status(&client, json).await,
                    Command::Register(args) => instances::register(&client, args).await,
                    Command::Activate { id } => {
                        instances::post_action(&client, &id, "activate").await
                    }
                    Command::Heartbeat { id } => {
                        instances::post_action(&client, &id, "heartbeat").await
                    }
                    Command::Instances(cmd) => instances::instances(&client, cmd).await,
                    Command::Metrics { cmd } => instances::metrics(&client, cmd).await,
                    Command::State(cmd) => state::run(&client, cmd).await,
                    Command::Events(cmd) => events::run(&client, cmd).await,
                    Command::Specs(cmd) => specs::run(&client, cmd).await,
                    Command::Contract(cmd) => contracts::run(&client, cmd).await,
                    Command::Validate(args) => rules::validate(&client, args).await,
                    Command::Rules(cmd) => rules::run(&client, cmd).await,
                    Command::Compliance(cmd) => compliance::run(&client, cmd).await,
                    Command::Templates(cmd) => templates::run(&client, cmd).await,
                    Command::Webhooks(cmd) => webhooks::run(&client, cmd).await,
                    Command::Audit(args) => audit::run(&client, args).await,
                    Command::Llm(cmd) => llm::run(&client, cmd).await,
                    Command::Serve(_) | Command::Migrate(_) | Command::Config(_) => {
                        ExitCode::from(2)
                    }
                }
            })
        }
    }
}
