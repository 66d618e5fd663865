//! Client settings in `./settings.json` (keys `server`, `token` and `instance`; other keys,
//! such as the server's own settings, are preserved).

use std::path::Path;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use serde_json::{Map, Value};

const FILE: &str = "settings.json";

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Write `server`, `token` or `instance` (the agent this client acts as) into
    /// ./settings.json.
    Set { key: SettingKey, value: String },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SettingKey {
    Server,
    Token,
    Instance,
}

/// Reads ./settings.json as a JSON object (empty when absent).
pub fn read(path: &Path) -> Result<Map<String, Value>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(format!("{} is not a JSON object", path.display())),
            Err(e) => Err(format!("{} is not valid JSON: {e}", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// A string setting from ./settings.json, if present.
pub fn get(key: &str) -> Result<Option<String>, String> {
    Ok(read(Path::new(FILE))?
        .get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string))
}

/// The agent instance this client acts as (the holder of its locks): `KOOR_INSTANCE`, else
/// the `instance` key of ./settings.json.
pub fn instance() -> Result<Option<String>, String> {
    match std::env::var("KOOR_INSTANCE") {
        Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
        _ => get("instance"),
    }
}

pub fn run(cmd: ConfigCmd) -> ExitCode {
    let ConfigCmd::Set { key, value } = cmd;
    let path = Path::new(FILE);
    let mut map = match read(path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("koor: {e}");
            return ExitCode::from(1);
        }
    };
    let name = match key {
        SettingKey::Server => "server",
        SettingKey::Token => "token",
        SettingKey::Instance => "instance",
    };
    map.insert(name.to_string(), Value::String(value));
    let text = match serde_json::to_string_pretty(&Value::Object(map)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("koor: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = std::fs::write(path, text + "\n") {
        eprintln!("koor: cannot write {}: {e}", path.display());
        return ExitCode::from(1);
    }
    println!("{name} saved to {FILE}");
    ExitCode::SUCCESS
}
