//! `koor serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::app::Application;
use crate::config::{Config, ConfigError, ServerSettings, ignore_empty_env};

/// Flags of `koor serve`: every server setting (each also read from its `KOOR_*` variable
/// and its settings.json key) and the config file.
#[derive(Debug, Args)]
#[command(mut_args = ignore_empty_env)]
pub struct ServeArgs {
    #[command(flatten)]
    pub settings: ServerSettings,
    /// Config file (default ./settings.json when present).
    #[arg(long, env = CONFIG_FILE_ENV, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// The variable naming the config file, for `koor serve` and `koor migrate`.
pub const CONFIG_FILE_ENV: &str = "KOOR_CONFIG";

impl ServeArgs {
    /// Resolves the full configuration: flags > `KOOR_*` env > config file > defaults.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let file = ServerSettings::from_file(self.config.as_deref())?;
        Config::resolve(self.settings.clone(), file)
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "{level},sqlx=warn,sea_orm=warn,sea_orm_migration=warn"
    ));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn run(args: ServeArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("koor: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_level.as_filter());
    let bind = config.bind.clone();
    let data_dir = config.data_dir.clone();
    let auth = !config.auth_token.is_empty();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("koor: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        bind = %bind,
        port = app.port(),
        dashboard_port = ?app.dashboard_port(),
        data_dir = %data_dir.display(),
        auth,
        "koor listening"
    );
    match app.run_until_stopped().await {
        Ok(()) => {
            tracing::info!("koor stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("koor: {e}");
            ExitCode::from(1)
        }
    }
}
