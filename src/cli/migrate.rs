//! `koor migrate status|up|down`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use migration::{Migrator, MigratorTrait};

use super::serve::CONFIG_FILE_ENV;
use crate::app::ensure_data_dir;
use crate::config::{Config, ConfigError, ServerSettings, ignore_empty_env};

#[derive(Debug, Args)]
#[command(mut_args = ignore_empty_env)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub action: MigrateAction,
    /// Storage directory (same resolution as `koor serve`).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Config file (default ./settings.json when present).
    #[arg(long, global = true, env = CONFIG_FILE_ENV, value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,
}

impl MigrateArgs {
    /// The configuration `koor serve` would use, with `--data-dir` as its flag.
    fn config(&self) -> Result<Config, ConfigError> {
        let mut command_line = ServerSettings::from_env()?;
        command_line.data_dir = self.data_dir.clone().or(command_line.data_dir);
        let file = ServerSettings::from_file(self.config.as_deref())?;
        Config::resolve(command_line, file)
    }
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// List every migration and whether it is applied.
    Status,
    /// Apply pending migrations (all, or --steps N).
    Up {
        #[arg(long)]
        steps: Option<u32>,
    },
    /// Revert applied migrations (one, or --steps N; --all reverts everything).
    Down {
        #[arg(long, conflicts_with = "all")]
        steps: Option<u32>,
        #[arg(long)]
        all: bool,
    },
}

pub async fn run(args: MigrateArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("koor: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = ensure_data_dir(&config.data_dir) {
        eprintln!("koor: cannot create {}: {e}", config.data_dir.display());
        return ExitCode::from(1);
    }
    let db = match crate::db::open(&config.database(), 1).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("koor: cannot open database: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match args.action {
        MigrateAction::Status => match Migrator::get_migration_with_status(&db).await {
            Ok(list) => {
                for m in list {
                    println!("{}\t{}", m.name(), m.status());
                }
                Ok(())
            }
            Err(e) => Err(e),
        },
        MigrateAction::Up { steps } => {
            crate::db::run_migrations(&db, crate::db::Migrate::Up(steps)).await
        }
        MigrateAction::Down { steps, all } => {
            let steps = if all { None } else { Some(steps.unwrap_or(1)) };
            crate::db::run_migrations(&db, crate::db::Migrate::Down(steps)).await
        }
    };
    let _ = db.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("koor: migration failed: {e}");
            ExitCode::from(1)
        }
    }
}
