//! `koor serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::app::Application;
use crate::config::{Config, ConfigError, Overrides};

/// Flags of `koor serve` (each overrides its `KOOR_*` variable and settings.json key).
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// API listen address [env KOOR_BIND] (default localhost:9800).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Dashboard listen address, "" disables it [env KOOR_DASHBOARD_BIND] (default localhost:9847).
    #[arg(long, value_name = "ADDR")]
    pub dashboard_bind: Option<String>,
    /// Storage directory [env KOOR_DATA_DIR] (default ".").
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Bearer token required on every request but GET /health [env KOOR_AUTH_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    pub auth_token: Option<String>,
    /// debug, info, warn or error [env KOOR_LOG_LEVEL] (default info).
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Config file (default ./settings.json when present).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Seconds without contact before an active instance is stale [env KOOR_STALE_AFTER_SECONDS].
    #[arg(long, value_name = "SECONDS")]
    pub stale_after: Option<f64>,
    /// Background liveness check period, 0 disables [env KOOR_LIVENESS_INTERVAL_SECONDS].
    #[arg(long, value_name = "SECONDS")]
    pub liveness_interval: Option<f64>,
    /// Background compliance pass period, 0 disables [env KOOR_COMPLIANCE_INTERVAL_SECONDS].
    #[arg(long, value_name = "SECONDS")]
    pub compliance_interval: Option<f64>,
    /// Event pruning period [env KOOR_PRUNE_INTERVAL_SECONDS] (default 60).
    #[arg(long, value_name = "SECONDS")]
    pub prune_interval: Option<f64>,
    /// Events kept in history [env KOOR_EVENT_RETENTION] (default 100000).
    #[arg(long, value_name = "N")]
    pub event_retention: Option<u64>,
    /// Per-delivery webhook timeout [env KOOR_WEBHOOK_TIMEOUT_SECONDS] (default 10).
    #[arg(long, value_name = "SECONDS")]
    pub webhook_timeout: Option<f64>,
    /// Largest request body in bytes [env KOOR_MAX_BODY_BYTES] (default 10485760).
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<u64>,
    /// Most writes committed in one transaction, 1 = no batching [env KOOR_WRITE_BATCH_MAX] (default 256).
    #[arg(long, value_name = "N")]
    pub write_batch_max: Option<u64>,
    /// SQLite connection pool size [env KOOR_DB_POOL_SIZE] (default 4).
    #[arg(long, value_name = "N")]
    pub db_pool_size: Option<u64>,
    /// Events a WebSocket subscriber may have queued before it is closed with koor.lagged [env KOOR_SUBSCRIBER_BUFFER] (default 1024).
    #[arg(long, value_name = "N")]
    pub subscriber_buffer: Option<u64>,
    /// Webhook retry delays in seconds, one per attempt, comma-separated [env KOOR_WEBHOOK_RETRY_SCHEDULE] (default 0,5,300,1800,7200,18000,36000,36000).
    #[arg(long, value_name = "LIST")]
    pub webhook_retry_schedule: Option<String>,
    /// Refuse webhook targets on loopback, private, link-local and unique-local addresses [env KOOR_WEBHOOK_BLOCK_PRIVATE].
    #[arg(long)]
    pub webhook_block_private: bool,
    /// Extra Host names MCP accepts (comma-separated; `*` for any) besides loopback and the bind host [env KOOR_MCP_ALLOWED_HOSTS].
    #[arg(long, value_name = "LIST")]
    pub mcp_allowed_hosts: Option<String>,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            bind: self.bind.clone(),
            dashboard_bind: self.dashboard_bind.clone(),
            data_dir: self.data_dir.clone(),
            auth_token: self.auth_token.clone(),
            log_level: self.log_level.clone(),
            stale_after_seconds: self.stale_after,
            liveness_interval_seconds: self.liveness_interval,
            compliance_interval_seconds: self.compliance_interval,
            prune_interval_seconds: self.prune_interval,
            event_retention: self.event_retention,
            webhook_timeout_seconds: self.webhook_timeout,
            max_body_bytes: self.max_body_bytes,
            write_batch_max: self.write_batch_max,
            db_pool_size: self.db_pool_size,
            subscriber_buffer: self.subscriber_buffer,
            webhook_retry_schedule: self.webhook_retry_schedule.clone(),
            webhook_block_private: self.webhook_block_private.then_some(true),
            mcp_allowed_hosts: self.mcp_allowed_hosts.clone(),
        }
    }

    /// Resolves the full configuration: these flags > `KOOR_*` env > config file > defaults.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => Overrides::from_file(path, true)?,
            None => Overrides::from_file(std::path::Path::new("settings.json"), false)?,
        };
        let env = Overrides::from_env(|name| std::env::var(name).ok())?;
        Config::resolve(self.overrides(), env, file)
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
