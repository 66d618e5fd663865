//! The `koor` command line: `serve` and `migrate` run on this machine's data; every other
//! command is a REST client of a running server (API §21).

mod client;
mod events;
mod migrate;
mod serve;
mod settings;
mod state;

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
    /// Check that the server is up.
    Status,
    /// Versioned key/value state.
    #[command(subcommand)]
    State(state::StateCmd),
    /// Publish and read events.
    #[command(subcommand)]
    Events(events::EventsCmd),
    /// Client settings in ./settings.json.
    #[command(subcommand)]
    Config(settings::ConfigCmd),
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
                    Command::Status => client.print(client.get("/health", &[]).await, false),
                    Command::State(cmd) => state::run(&client, cmd).await,
                    Command::Events(cmd) => events::run(&client, cmd).await,
                    Command::Serve(_) | Command::Migrate(_) | Command::Config(_) => {
                        ExitCode::from(2)
                    }
                }
            })
        }
    }
}
