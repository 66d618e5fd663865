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

/// The instance token of the saved agent `name` (else of the last registered agent, if
/// any): what `koor register` wrote under `agents` in ./settings.json. Naming an agent
/// that was not saved is an error.
pub fn agent_token(name: Option<&str>) -> Result<Option<String>, String> {
    let map = read(Path::new(FILE))?;
    let agents = map.get("agents").and_then(Value::as_object);
    let chosen = match name {
        Some(n) => Some(n.to_string()),
        None => map.get("agent").and_then(Value::as_str).map(str::to_string),
    };
    let Some(chosen) = chosen else {
        return Ok(None);
    };
    match agents
        .and_then(|a| a.get(&chosen))
        .and_then(|a| a.get("token"))
        .and_then(Value::as_str)
    {
        Some(token) => Ok(Some(token.to_string())),
        None if name.is_some() => Err(format!(
            "no agent {chosen:?} in {FILE}: register it with `koor register {chosen}`"
        )),
        None => Ok(None),
    }
}

/// Saves a registered agent in ./settings.json: `agents.<name> = {id, token}`, and makes
/// it the agent later commands act as (`agent`, and `instance` for lock holders). The file
/// is written with mode 0600 on Unix, as it holds a credential.
pub fn save_agent(name: &str, id: &str, token: &str) -> Result<(), String> {
    let path = Path::new(FILE);
    let mut map = read(path)?;
    let agents = map
        .entry("agents")
        .or_insert_with(|| Value::Object(Map::new()));
    if !agents.is_object() {
        *agents = Value::Object(Map::new());
    }
    if let Some(a) = agents.as_object_mut() {
        a.insert(
            name.to_string(),
            serde_json::json!({"id": id, "token": token}),
        );
    }
    map.insert("agent".into(), Value::String(name.to_string()));
    map.insert("instance".into(), Value::String(id.to_string()));
    write(path, map)
}

fn write(path: &Path, map: Map<String, Value>) -> Result<(), String> {
    let text = serde_json::to_string_pretty(&Value::Object(map)).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
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
