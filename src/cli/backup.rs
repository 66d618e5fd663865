//! `koor backup` and `koor restore` (API §21, §26).
//!
//! `--output`/`--file` use Go Koor's format, `{"state": {key: value}, "rules": [...]}`, so
//! a backup moves between the two servers both ways: each state value is embedded as the
//! JSON it holds, byte for byte, and the rules are every accepted rule of every source.
//! A value that is not JSON (or not stored as `application/json`) is kept exactly through
//! an extra member, `state_meta`, that Go Koor ignores. `--snapshot` downloads a copy of
//! the whole database instead.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use clap::{ArgGroup, Args};
use reqwest::{Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::client::{Client, Outcome, path_escape};

/// `koor backup --output PATH | --snapshot PATH`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["output", "snapshot"])))]
pub struct BackupArgs {
    /// Write every state key and every accepted rule as JSON (Go Koor's backup format);
    /// `-` writes to standard output.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Write a consistent copy of the whole database (an SQLite file that `koor serve`
    /// starts from as DATA_DIR/data.db); needs the admin credential.
    #[arg(long, value_name = "PATH")]
    pub snapshot: Option<PathBuf>,
}

/// `koor restore --file PATH`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A backup written by `koor backup --output` or by Go Koor's `koor-cli backup`.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
}

/// The content type a state value has unless `state_meta` says otherwise.
const JSON: &str = "application/json";
/// Rules sent per import request.
const IMPORT_CHUNK: usize = 500;
/// Snapshots at least this large show their progress.
const PROGRESS_FROM: u64 = 8 * 1024 * 1024;

/// How a value that is not plain JSON is stored in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    content_type: String,
    /// `text` (a JSON string holding the text) or `base64`; absent: the value is the JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encoding: Option<String>,
}

/// The backup file as written.
#[derive(Serialize)]
struct BackupOut {
    state: BTreeMap<String, Box<RawValue>>,
    rules: Vec<Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    state_meta: BTreeMap<String, Meta>,
}

/// The backup file as read (every member optional; unknown members ignored).
#[derive(Deserialize)]
struct BackupIn {
    #[serde(default)]
    state: Option<BTreeMap<String, Box<RawValue>>>,
    #[serde(default)]
    rules: Option<Vec<Value>>,
    #[serde(default)]
    state_meta: Option<BTreeMap<String, Meta>>,
}

fn is_json_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// A stored value as it goes into the file: the JSON itself when the bytes are exactly a
/// JSON text, else a JSON string of the text or of its base64, described by a [`Meta`].
fn encode(body: &[u8], content_type: &str) -> Result<(Box<RawValue>, Option<Meta>), String> {
    let meta = |encoding: Option<&str>| Meta {
        content_type: content_type.to_string(),
        encoding: encoding.map(str::to_string),
    };
    if let Ok(text) = std::str::from_utf8(body) {
        if text.trim_matches(is_json_space) == text
            && let Ok(raw) = RawValue::from_string(text.to_string())
        {
            return Ok((raw, (content_type != JSON).then(|| meta(None))));
        }
        let quoted = serde_json::to_string(text).map_err(|e| e.to_string())?;
        let raw = RawValue::from_string(quoted).map_err(|e| e.to_string())?;
        return Ok((raw, Some(meta(Some("text")))));
    }
    let quoted = serde_json::to_string(&BASE64.encode(body)).map_err(|e| e.to_string())?;
    let raw = RawValue::from_string(quoted).map_err(|e| e.to_string())?;
    Ok((raw, Some(meta(Some("base64")))))
}

/// The bytes and content type to store for a value of the file.
fn decode(key: &str, raw: &RawValue, meta: Option<&Meta>) -> Result<(Bytes, String), String> {
    let content_type = meta.map_or(JSON, |m| m.content_type.as_str()).to_string();
    let text = || {
        serde_json::from_str::<String>(raw.get())
            .map_err(|_| format!("state {key:?}: state_meta says a string, the value is not one"))
    };
    let bytes = match meta.and_then(|m| m.encoding.as_deref()) {
        None => Bytes::copy_from_slice(raw.get().as_bytes()),
        Some("text") => Bytes::from(text()?),
        Some("base64") => Bytes::from(
            BASE64
                .decode(text()?)
                .map_err(|e| format!("state {key:?}: bad base64: {e}"))?,
        ),
        Some(other) => return Err(format!("state {key:?}: unknown encoding {other:?}")),
    };
    Ok((bytes, content_type))
}

/// A 2xx JSON body, or the error to print.
fn json_of(client: &Client, what: &str, outcome: Outcome) -> Result<Value, String> {
    let (status, _, body) = outcome?;
    if !status.is_success() {
        return Err(format!(
            "{what}: HTTP {status}: {}",
            String::from_utf8_lossy(&client.render(&body))
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{what}: the answer is not JSON: {e}"))
}

/// Every accepted rule of every source: `GET /api/rules?status=accepted`, or, from a
/// server without that listing (Go Koor), the export of the three sources it knows.
async fn accepted_rules(client: &Client) -> Result<Vec<Value>, String> {
    let outcome = client
        .get("/api/rules", &[("status", "accepted".to_string())])
        .await;
    let value = match outcome {
        Ok((StatusCode::NOT_FOUND, ..)) | Ok((StatusCode::METHOD_NOT_ALLOWED, ..)) => {
            let outcome = client
                .get(
                    "/api/rules/export",
                    &[("source", "local,learned,external".to_string())],
                )
                .await;
            json_of(client, "rules export", outcome)?
        }
        outcome => json_of(client, "rules", outcome)?,
    };
    match value {
        Value::Array(rules) => Ok(rules),
        _ => Err("rules: the answer is not a JSON array".into()),
    }
}

/// A file written under a temporary name beside its target and renamed into place once
/// complete and synced, so the target is either the old file or the whole new one. Dropped
/// before [`Partial::commit`], the temporary file is removed.
struct Partial {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<std::fs::File>,
}

impl Partial {
    fn create(path: &Path) -> Result<Partial, String> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| format!("{} is not a file name", path.display()))?
            .to_string_lossy();
        let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
        // Readable by its owner only: a backup holds everything the server stores.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        Ok(Partial {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        match &mut self.file {
            Some(f) => f
                .write_all(bytes)
                .map_err(|e| format!("cannot write {}: {e}", self.tmp.display())),
            None => Err("the file is already complete".into()),
        }
    }

    fn commit(mut self) -> Result<(), String> {
        if let Some(file) = self.file.take() {
            file.sync_all()
                .map_err(|e| format!("cannot write {}: {e}", self.tmp.display()))?;
        }
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| format!("cannot rename to {}: {e}", self.path.display()))?;
        // The rename itself is durable once the directory is synced.
        #[cfg(unix)]
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        // After a commit the temporary name no longer exists; this removes an abandoned one.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("koor: {message}");
    ExitCode::from(1)
}

pub async fn backup(client: &Client, args: BackupArgs) -> ExitCode {
    let result = match (args.output, args.snapshot) {
        (Some(path), _) => backup_json(client, &path).await,
        (None, Some(path)) => snapshot(client, &path).await,
        (None, None) => return super::specs::usage("give --output PATH or --snapshot PATH"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn backup_json(client: &Client, path: &Path) -> Result<(), String> {
    let listing = json_of(client, "state list", client.get("/api/state", &[]).await)?;
    let keys: Vec<String> = listing
        .as_array()
        .ok_or("state list: the answer is not a JSON array")?
        .iter()
        .filter_map(|s| s["key"].as_str().map(str::to_string))
        .collect();
    let mut out = BackupOut {
        state: BTreeMap::new(),
        rules: Vec::new(),
        state_meta: BTreeMap::new(),
    };
    for key in keys {
        let (status, headers, body) = client
            .get(&format!("/api/state/{}", path_escape(&key)), &[])
            .await?;
        if status == StatusCode::NOT_FOUND {
            continue; // deleted since the listing
        }
        if !status.is_success() {
            return Err(format!(
                "state {key:?}: HTTP {status}: {}",
                String::from_utf8_lossy(&client.render(&body))
            ));
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(JSON);
        let (raw, meta) = encode(&body, content_type).map_err(|e| format!("state {key:?}: {e}"))?;
        if let Some(meta) = meta {
            out.state_meta.insert(key.clone(), meta);
        }
        out.state.insert(key, raw);
    }
    out.rules = accepted_rules(client).await?;
    let mut text = serde_json::to_vec_pretty(&out).map_err(|e| e.to_string())?;
    text.push(b'\n');
    let (keys, rules) = (out.state.len(), out.rules.len());
    if path.as_os_str() == "-" {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&text)
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("cannot write standard output: {e}"))?;
        eprintln!("backup: {keys} state keys, {rules} rules");
    } else {
        let mut file = Partial::create(path)?;
        file.write(&text)?;
        file.commit()?;
        println!(
            "backup written to {}: {keys} state keys, {rules} rules",
            path.display()
        );
    }
    Ok(())
}

pub async fn restore(client: &Client, args: RestoreArgs) -> ExitCode {
    match restore_file(client, &args.file).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// A rule of the file as an import item: the members `POST /api/rules/import` takes, with
/// its defaults filled in, so that it compares with a stored rule.
fn import_item(index: usize, rule: &Value) -> Result<Value, String> {
    let text = |name: &str| rule.get(name).and_then(Value::as_str).unwrap_or("");
    for name in ["project", "rule_id", "pattern"] {
        if text(name).is_empty() {
            return Err(format!("rules[{index}]: {name} is missing or empty"));
        }
    }
    let or = |name: &str, default: &str| match text(name) {
        "" => default.to_string(),
        v => v.to_string(),
    };
    let applies_to = match rule.get("applies_to") {
        Some(Value::Array(globs)) if !globs.is_empty() => Value::Array(globs.clone()),
        _ => json!(["*"]),
    };
    Ok(json!({
        "project": text("project"),
        "rule_id": text("rule_id"),
        "pattern": text("pattern"),
        "severity": or("severity", "error"),
        "match_type": or("match_type", "regex"),
        "message": text("message"),
        "applies_to": applies_to,
        "stack": text("stack"),
        "source": or("source", "external"),
    }))
}

/// Whether the stored rule `current` already is what importing `item` would make it.
fn same_rule(item: &Value, current: &Value) -> bool {
    current["status"] == "accepted"
        && [
            "pattern",
            "severity",
            "match_type",
            "message",
            "applies_to",
            "stack",
            "source",
        ]
        .iter()
        .all(|k| item[k] == current[k])
}

async fn restore_file(client: &Client, path: &Path) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: BackupIn = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a koor backup: {e}", path.display()))?;
    if file.state.is_none() && file.rules.is_none() {
        return Err(format!(
            "{} is not a koor backup: it has neither \"state\" nor \"rules\"",
            path.display()
        ));
    }
    // Everything is checked before anything is written.
    let meta = file.state_meta.unwrap_or_default();
    let mut values = Vec::new();
    for (key, raw) in file.state.unwrap_or_default() {
        if key.is_empty() {
            return Err("state: a key is empty".into());
        }
        let (bytes, content_type) = decode(&key, &raw, meta.get(&key))?;
        values.push((key, bytes, content_type));
    }
    let items = file
        .rules
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, rule)| import_item(i, rule))
        .collect::<Result<Vec<_>, _>>()?;

    let (written, same_values) = restore_state(client, values).await?;
    let (imported, same_rules) = restore_rules(client, items).await?;
    println!(
        "restored {}: state {written} written, {same_values} unchanged; rules {imported} imported, {same_rules} unchanged",
        path.display()
    );
    Ok(())
}

/// PUTs every value that differs from the stored one (bytes or content type); an
/// identical value is left alone, so its version does not move and a re-run is a no-op.
async fn restore_state(
    client: &Client,
    values: Vec<(String, Bytes, String)>,
) -> Result<(usize, usize), String> {
    let listing = json_of(client, "state list", client.get("/api/state", &[]).await)?;
    let stored: HashMap<&str, &str> = listing
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| Some((s["key"].as_str()?, s["content_type"].as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let (mut written, mut same) = (0, 0);
    for (key, bytes, content_type) in values {
        let path = format!("/api/state/{}", path_escape(&key));
        if stored.get(key.as_str()) == Some(&content_type.as_str()) {
            let history = json_of(
                client,
                &format!("state {key:?}"),
                client
                    .get(&path, &[("history", "1".into()), ("limit", "1".into())])
                    .await,
            )?;
            let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            if history["versions"][0]["hash"] == hash.as_str() {
                same += 1;
                continue;
            }
        }
        let outcome = client
            .send(Method::PUT, &path, &[], Some((bytes, &content_type)))
            .await;
        json_of(client, &format!("state {key:?}"), outcome)?;
        written += 1;
    }
    Ok((written, same))
}

/// Imports every rule that is not stored exactly so already, in chunks.
async fn restore_rules(client: &Client, items: Vec<Value>) -> Result<(usize, usize), String> {
    if items.is_empty() {
        return Ok((0, 0));
    }
    let stored = json_of(client, "rules", client.get("/api/rules", &[]).await)
        .or_else(|_| Ok::<_, String>(Value::Array(Vec::new())))?;
    let stored: HashMap<(&str, &str), &Value> = stored
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| Some(((r["project"].as_str()?, r["rule_id"].as_str()?), r)))
                .collect()
        })
        .unwrap_or_default();
    let total = items.len();
    let changed: Vec<Value> = items
        .into_iter()
        .filter(|item| {
            let id = (
                item["project"].as_str().unwrap_or(""),
                item["rule_id"].as_str().unwrap_or(""),
            );
            !stored.get(&id).is_some_and(|cur| same_rule(item, cur))
        })
        .collect();
    let mut imported = 0;
    for chunk in changed.chunks(IMPORT_CHUNK) {
        let outcome = client
            .post_json("/api/rules/import", &Value::Array(chunk.to_vec()))
            .await;
        json_of(client, "rules import", outcome)?;
        imported += chunk.len();
    }
    Ok((imported, total - imported))
}

/// A progress line on standard error for large downloads: rewritten in place on a
/// terminal, one line every few seconds otherwise.
struct Progress {
    total: Option<u64>,
    tty: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new(total: Option<u64>) -> Progress {
        Progress {
            total,
            tty: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            last: None,
        }
    }

    fn enabled(&self) -> bool {
        self.total.is_none_or(|t| t >= PROGRESS_FROM)
    }

    fn line(&self, done: u64) -> String {
        match self.total {
            Some(total) if total > 0 => format!(
                "snapshot: {} of {} ({}%)",
                mib(done),
                mib(total),
                done * 100 / total
            ),
            _ => format!("snapshot: {}", mib(done)),
        }
    }

    fn update(&mut self, done: u64) {
        if !self.enabled() {
            return;
        }
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        self.show(done);
    }

    fn show(&self, done: u64) {
        if self.tty {
            eprint!("\r{}", self.line(done));
        } else {
            eprintln!("{}", self.line(done));
        }
    }

    fn finish(&self, done: u64) {
        if self.enabled() && self.last.is_some() {
            self.show(done);
            if self.tty {
                eprintln!();
            }
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The first bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

async fn snapshot(client: &Client, path: &Path) -> Result<(), String> {
    let mut resp = client.get_unread("/api/admin/snapshot").await?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.bytes().await.unwrap_or_default();
        return Err(format!(
            "snapshot: HTTP {status}: {}",
            String::from_utf8_lossy(&client.render(&body))
        ));
    }
    let total = resp.content_length();
    let mut progress = Progress::new(total);
    let mut file = Partial::create(path)?;
    let mut head = Vec::with_capacity(SQLITE_MAGIC.len());
    let mut done: u64 = 0;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("snapshot: the download broke off: {e}"))?
    {
        if head.len() < SQLITE_MAGIC.len() {
            let want = SQLITE_MAGIC.len() - head.len();
            head.extend_from_slice(&chunk[..chunk.len().min(want)]);
        }
        file.write(&chunk)?;
        done += chunk.len() as u64;
        progress.update(done);
    }
    progress.finish(done);
    if let Some(total) = total
        && total != done
    {
        return Err(format!("snapshot: received {done} of {total} bytes"));
    }
    if head != SQLITE_MAGIC {
        return Err("snapshot: the server did not send an SQLite database".into());
    }
    file.commit()?;
    println!("snapshot written to {} ({})", path.display(), mib(done));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_comes_back_byte_for_byte_with_its_content_type() {
        let cases: [(&[u8], &str, Option<&str>); 6] = [
            (br#"{"a": [1, 2.50, "x"]}"#, JSON, None),
            (b"42", JSON, None),
            (br#"{"a":1}"#, "application/vnd.koor+json", None),
            (b"{\"a\":1}\n", JSON, Some("text")),
            (b"plain text", "text/plain", Some("text")),
            (
                &[0xff, 0x00, 0x80],
                "application/octet-stream",
                Some("base64"),
            ),
        ];
        for (body, content_type, encoding) in cases {
            let (raw, meta) = encode(body, content_type).unwrap();
            assert_eq!(
                meta.as_ref().and_then(|m| m.encoding.as_deref()),
                encoding,
                "{body:?}"
            );
            assert_eq!(meta.is_none(), content_type == JSON && encoding.is_none());
            // Through the file's text and back.
            let text = serde_json::to_string(&raw).unwrap();
            let raw: Box<RawValue> = serde_json::from_str(&text).unwrap();
            let (bytes, ct) = decode("k", &raw, meta.as_ref()).unwrap();
            assert_eq!(&bytes[..], body);
            assert_eq!(ct, content_type);
        }
    }

    #[test]
    fn progress_shows_from_8_mib_or_when_the_length_is_unknown() {
        let small = Progress::new(Some(PROGRESS_FROM - 1));
        assert!(!small.enabled());
        let large = Progress::new(Some(40 * 1024 * 1024));
        assert!(large.enabled());
        assert_eq!(
            large.line(10 * 1024 * 1024),
            "snapshot: 10.0 MiB of 40.0 MiB (25%)"
        );
        let unknown = Progress::new(None);
        assert!(unknown.enabled());
        assert_eq!(unknown.line(3 * 1024 * 1024), "snapshot: 3.0 MiB");
    }

    #[test]
    fn import_items_need_the_three_members_and_get_the_defaults() {
        let item =
            import_item(0, &json!({"project": "p", "rule_id": "r", "pattern": "x"})).unwrap();
        assert_eq!(item["severity"], "error");
        assert_eq!(item["match_type"], "regex");
        assert_eq!(item["applies_to"], json!(["*"]));
        assert_eq!(item["source"], "external");
        let err = import_item(3, &json!({"project": "p", "pattern": "x"})).unwrap_err();
        assert!(err.contains("rules[3]") && err.contains("rule_id"), "{err}");
        let stored = json!({"project": "p", "rule_id": "r", "pattern": "x", "severity": "error",
            "match_type": "regex", "message": "", "applies_to": ["*"], "stack": "",
            "source": "external", "status": "accepted", "created_at": "2026-01-01T00:00:00Z"});
        assert!(same_rule(&item, &stored));
        let mut proposed = stored.clone();
        proposed["status"] = json!("proposed");
        assert!(!same_rule(&item, &proposed));
    }
}
