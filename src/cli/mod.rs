//! The `koor` command line: `serve` and `migrate` run on this machine's data; every other
//! command is a REST client of a running server (API §21).

mod audit;
mod backup;
mod client;
mod compliance;
mod contracts;
mod doctor;
mod events;
mod hooks;
mod init;
mod instances;
mod keys;
mod llm;
mod locks;
mod migrate;
mod rules;
mod serve;
mod settings;
mod specs;
mod state;
mod tasks;
mod templates;
mod webhooks;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Act as this registered agent (its token saved by `koor register`; else KOOR_AS, the
    /// last registered agent).
    #[arg(long = "as", global = true, value_name = "AGENT")]
    pub act_as: Option<String>,
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
    /// Tell the server an instance is alive, with its health and progress.
    Heartbeat(instances::HeartbeatArgs),
    /// Who started whom and who works with whom (JSON; --dot for Graphviz).
    Topology {
        /// Print Graphviz DOT text instead of JSON.
        #[arg(long)]
        dot: bool,
    },
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
    /// Locks on files and globs: acquire, renew, release, list, check (a pre-commit check).
    #[command(subcommand)]
    Locks(locks::LocksCmd),
    /// Git hooks: `install` writes a pre-commit hook running `locks check` and `validate`.
    #[command(subcommand)]
    Hooks(hooks::HooksCmd),
    /// The work queue: add, claim, finish and inspect tasks; `work` runs a command per task.
    #[command(subcommand)]
    Tasks(tasks::TasksCmd),
    /// Save state and rules as JSON (Go Koor's format), or a snapshot of the whole database.
    Backup(backup::BackupArgs),
    /// Load a `koor backup --output` file (or Go Koor's); safe to run again.
    Restore(backup::RestoreArgs),
    /// Check a server: reachability, auth, integrity, migrations, WAL, disk, clock.
    Doctor(doctor::DoctorArgs),
    /// Set up this folder's project for agents: MCP configs, AGENTS.md, CLAUDE.md, settings.
    Init(init::InitArgs),
    /// Print a shell completion script (e.g. `koor completions bash > /etc/bash_completion.d/koor`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Access keys: create, list, revoke, rotate (admin scope).
    #[command(subcommand)]
    Keys(keys::KeysCmd),
}

/// The client flags: global, so every client command takes them before or after its name.
const CLIENT_FLAGS: [&str; 4] = ["pretty", "server", "token", "act_as"];

/// The name Go Koor's client has; projects its wizard generated call `./koor-cli …`.
pub const GO_CLIENT_NAME: &str = "koor-cli";

/// The name the binary was started under: `koor-cli` when invoked through a link or copy
/// of that name (Go Koor's client commands are koor's own), else `koor`.
fn program_name() -> &'static str {
    let invoked = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()));
    match invoked {
        Some(name) if name == GO_CLIENT_NAME => GO_CLIENT_NAME,
        _ => "koor",
    }
}

/// The `koor` command line. `koor serve` and `koor migrate` run on this machine's data and
/// ignore the client flags, so their help does not list them.
pub fn command() -> clap::Command {
    command_named(program_name())
}

/// The command line under the program name `name` (`koor` or `koor-cli`).
fn command_named(name: &'static str) -> clap::Command {
    let mut cmd = Cli::command().name(name).bin_name(name);
    // Global flags are copied into the subcommands when the command is built.
    cmd.build();
    cmd.mut_subcommands(|sub| match sub.get_name() {
        "serve" | "migrate" | "completions" => hide_client_flags(sub),
        _ => sub,
    })
}

fn hide_client_flags(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| {
        if CLIENT_FLAGS.contains(&arg.get_id().as_str()) {
            arg.hide(true)
        } else {
            arg
        }
    })
    .mut_subcommands(hide_client_flags)
}

/// Parses the command line: a usage error exits as clap does (2), a bad setting value (flag
/// or `KOOR_*` variable) is a one-line configuration error (also 2).
fn parse() -> Result<Cli, ExitCode> {
    let parsed = command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    parsed.map_err(|e| match crate::config::ConfigError::in_clap_error(&e) {
        Some(problem) => {
            eprintln!("koor: configuration error: {problem}");
            ExitCode::from(2)
        }
        None => e.exit(),
    })
}

/// Parses the command line and runs it; the process exit code is returned.
pub fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let system = actix_web::rt::System::new();
    match cli.command {
        Command::Serve(args) => system.block_on(serve::run(*args)),
        Command::Migrate(args) => system.block_on(migrate::run(args)),
        Command::Config(cmd) => settings::run(cmd),
        Command::Hooks(cmd) => hooks::run(cmd),
        Command::Completions { shell } => {
            let name = program_name();
            clap_complete::generate(shell, &mut command(), name, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        command => {
            let options = ClientOptions {
                server: cli.server,
                token: cli.token,
                act_as: cli.act_as,
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
                    Command::Heartbeat(args) => instances::heartbeat(&client, args).await,
                    Command::Topology { dot } => instances::topology(&client, dot).await,
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
                    Command::Locks(cmd) => locks::run(&client, cmd).await,
                    Command::Tasks(cmd) => tasks::run(&client, cmd).await,
                    Command::Backup(args) => backup::backup(&client, args).await,
                    Command::Restore(args) => backup::restore(&client, args).await,
                    Command::Doctor(args) => doctor::run(&client, args).await,
                    Command::Init(args) => init::run(&client, args),
                    Command::Keys(cmd) => keys::run(&client, cmd).await,
                    Command::Serve(_)
                    | Command::Migrate(_)
                    | Command::Config(_)
                    | Command::Hooks(_)
                    | Command::Completions { .. } => ExitCode::from(2),
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_help_lists_each_server_flag_with_its_variable_and_no_client_flag() {
        let mut cli = command();
        let serve = cli.find_subcommand_mut("serve").unwrap();
        let help = serve.render_help().to_string();
        let flags: Vec<&clap::Arg> = serve
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_id() != "help")
            .collect();
        assert_eq!(flags.len(), 30, "{help}");
        for flag in flags {
            let long = flag.get_long().unwrap();
            let env = flag
                .get_env()
                .unwrap_or_else(|| panic!("--{long} has no KOOR_ variable"));
            let env = env.to_str().unwrap();
            assert!(env.starts_with("KOOR_"), "{env}");
            assert!(help.contains(&format!("--{long}")), "{help}");
            assert!(help.contains(&format!("[env: {env}")), "{env}: {help}");
        }
        let token = serve
            .get_arguments()
            .find(|a| a.get_id() == "auth_token")
            .unwrap();
        assert!(
            token.is_hide_env_values_set(),
            "the token's value never shows"
        );
        for client in ["--pretty", "--server", "--token"] {
            assert!(!help.contains(client), "{client} in {help}");
        }
    }

    #[test]
    fn client_commands_keep_the_global_client_flags() {
        let mut cli = command();
        let get = cli
            .find_subcommand_mut("state")
            .and_then(|s| s.find_subcommand_mut("get"))
            .unwrap();
        let help = get.render_help().to_string();
        for client in ["--pretty", "--server", "--token"] {
            assert!(help.contains(client), "{client} missing in {help}");
        }
        for args in [
            &[
                "koor", "--pretty", "--server", "s", "--token", "t", "state", "list",
            ][..],
            &[
                "koor", "state", "list", "--pretty", "--server", "s", "--token", "t",
            ][..],
        ] {
            let matches = command().try_get_matches_from(args).unwrap();
            let cli = Cli::from_arg_matches(&matches).unwrap();
            assert!(cli.pretty, "{args:?}");
            assert_eq!(cli.server.as_deref(), Some("s"));
            assert_eq!(cli.token.as_deref(), Some("t"));
        }
    }

    /// Every command of Go Koor's client (API §21), as its wizard's projects call it
    /// (`./koor-cli …`), parses under that name.
    #[test]
    fn go_koor_client_commands_parse_under_the_name_koor_cli() {
        let rows = [
            "status",
            "state list",
            "state get KEY",
            "state set KEY --data {}",
            "state set KEY --file F --content-type text/plain",
            "state delete KEY",
            "state history KEY --limit 5",
            "state rollback KEY --version 2",
            "state diff KEY --v1 1 --v2 2",
            "specs list P",
            "specs get P/N",
            "specs delete P/N",
            "specs set P/N --data {}",
            "specs set P/N --file F",
            "events publish a.b --data {}",
            "events history --last 5 --topic a.* --from T --to T --source S",
            "events subscribe a.*",
            "register NAME --workspace W --intent I --stack S",
            "activate ID",
            "instances list",
            "instances get ID",
            "instances stale",
            "contract set P/N --file F",
            "contract get P/N",
            "contract validate P/N --endpoint POST_/x --direction request --payload {}",
            "contract test P/N --target http://x",
            "rules import --file F",
            "rules export --source a,b --output F",
            "webhooks list",
            "webhooks add --id I --url http://x --patterns a.*,b.* --secret S",
            "webhooks delete ID",
            "webhooks test ID",
            "compliance history --instance_id ID --limit 5",
            "compliance run",
            "templates list --kind rules --tag T",
            "templates get ID",
            "templates delete ID",
            "templates create --id I --name N --kind rules --file F --tags a,b",
            "templates apply ID --project P",
            "audit --actor A --action X --from T --to T --limit 5",
            "audit summary --from T --to T",
            "metrics agents --instance_id ID --period P",
            "metrics agents ID --period P",
            "llm usage --instance I --project P --session S --from T --to T --limit 5",
            "llm summary --by model --from T --to T",
            "backup --output F",
            "restore --file F",
            "config set server http://x",
            "config set token T",
        ];
        for row in rows {
            let args = std::iter::once(GO_CLIENT_NAME).chain(
                row.split(' ')
                    .map(|a| if a == "POST_/x" { "POST /x" } else { a }),
            );
            let parsed = command_named(GO_CLIENT_NAME)
                .try_get_matches_from(args)
                .map_err(|e| e.to_string())
                .and_then(|m| Cli::from_arg_matches(&m).map_err(|e| e.to_string()));
            assert!(parsed.is_ok(), "koor-cli {row}: {}", parsed.unwrap_err());
        }
        let help = command_named(GO_CLIENT_NAME).render_help().to_string();
        assert!(help.contains("Usage: koor-cli"), "{help}");
    }
}
