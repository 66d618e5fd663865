//! Server configuration. Each setting is defined once, in [`ServerSettings`]: a `koor serve`
//! flag, its `KOOR_*` variable and its config-file key. Layers are merged defaults < config
//! file < environment < flags (clap merges the last two) and validated once into [`Config`];
//! every numeric setting's range is in one table, `RANGES`.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::{StringValueParser, TypedValueParser};
use clap::parser::ValueSource;
use clap::{Arg, Args, Command, FromArgMatches};
use serde::Deserialize;

/// Ten MiB, the contract's limit for values and request bodies.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// A secret string whose `Debug` output is redacted.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is compared or sent.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(\"\")")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

/// Log verbosity (`--log-level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "debug" => Some(Self::Debug),
            "info" => Some(Self::Info),
            "warn" | "warning" => Some(Self::Warn),
            "error" => Some(Self::Error),
            _ => None,
        }
    }

    /// The `tracing` filter directive for this level.
    pub fn as_filter(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// The validated configuration of `koor serve`.
#[derive(Clone, Debug)]
pub struct Config {
    /// API listen address (`host:port`).
    pub bind: String,
    /// Dashboard listen address; empty disables the dashboard.
    pub dashboard_bind: String,
    /// True when the dashboard address was configured (flag, environment or file) rather
    /// than defaulted: failing to bind it is then a startup error, not a warning.
    pub dashboard_bind_explicit: bool,
    /// Storage directory; the database is `{data_dir}/data.db`.
    pub data_dir: PathBuf,
    /// Server bearer token; empty turns auth off.
    pub auth_token: Secret,
    /// Log verbosity.
    pub log_level: LogLevel,
    /// An active instance silent for longer than this becomes stale.
    pub stale_after: Duration,
    /// Period of the background liveness check; `None` disables it.
    pub liveness_interval: Option<Duration>,
    /// Period of the background compliance pass; `None` disables it.
    pub compliance_interval: Option<Duration>,
    /// Period of the event pruning worker.
    pub prune_interval: Duration,
    /// Number of newest events kept in history.
    pub event_retention: u64,
    /// Per-delivery webhook timeout.
    pub webhook_timeout: Duration,
    /// Largest accepted request body (and state value) in bytes.
    pub max_body_bytes: usize,
    /// Most queued writes committed together in one transaction (1 = no batching).
    pub write_batch_max: usize,
    /// Number of SQLite connections in the pool.
    pub db_pool_size: u32,
    /// Events a WebSocket subscriber may have queued before it is closed with `koor.lagged`.
    pub subscriber_buffer: usize,
    /// Delay before each webhook delivery attempt (the first is usually 0); its length is
    /// the most attempts per delivery.
    pub webhook_retry_schedule: Vec<Duration>,
    /// Refuse webhook targets on loopback, private, link-local and unique-local addresses.
    pub webhook_block_private: bool,
    /// Extra `Host` names (or `host:port`) MCP accepts besides loopback and the bind host;
    /// `*` accepts any host.
    pub mcp_allowed_hosts: Vec<String>,
    /// Where the data lives: `sqlite://…` or `postgres://…` (it may hold a password, so it
    /// is kept as a [`Secret`]); `None` is `data.db` in the data directory.
    pub database_url: Option<Secret>,
    /// The URL other cluster members forward mutations to (default: the bind address).
    pub advertise_url: Option<String>,
    /// How long a cluster leader may be silent before another member takes over.
    pub failover: Duration,
    /// Only verified credentials attribute requests (API §25): a bare `X-Koor-Instance`
    /// attributes nothing, and lease operations for another holder are refused.
    pub strict_identity: bool,
    /// Requests per second per principal (per client IP when anonymous); 0 turns it off.
    pub rate_limit: f64,
    /// Requests a principal may send at once before the rate applies (default 2 x rate).
    pub rate_burst: f64,
    /// Roots trusted by outgoing HTTPS (webhooks, contract tests): the system's plus the
    /// PEM file of `--webhook-ca-file`, read once at startup.
    pub outgoing_trust: crate::tls::Trust,
    /// State and spec versions kept per key, the current one included; `None` keeps all.
    pub history_keep_versions: Option<u64>,
    /// Age past which state and spec versions are pruned (never a key's current version);
    /// `None` keeps them forever.
    pub history_retention: Option<Duration>,
    /// Age past which LLM usage records are pruned; `None` keeps them forever.
    pub llm_usage_retention: Option<Duration>,
    /// Age past which audit entries are pruned behind a checkpoint; `None` keeps them forever.
    pub audit_retention: Option<Duration>,
}

/// The Standard Webhooks retry schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_WEBHOOK_RETRY_SCHEDULE: &[u64] = &[0, 5, 300, 1800, 7200, 18000, 36000, 36000];

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "localhost:9800".into(),
            dashboard_bind: "localhost:9847".into(),
            dashboard_bind_explicit: false,
            data_dir: PathBuf::from("."),
            auth_token: Secret::default(),
            log_level: LogLevel::Info,
            stale_after: Duration::from_secs(300),
            liveness_interval: Some(Duration::from_secs(60)),
            compliance_interval: Some(Duration::from_secs(300)),
            prune_interval: Duration::from_secs(60),
            event_retention: DEFAULT_EVENT_RETENTION,
            webhook_timeout: Duration::from_secs(10),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            write_batch_max: 256,
            db_pool_size: 4,
            subscriber_buffer: 1024,
            webhook_retry_schedule: DEFAULT_WEBHOOK_RETRY_SCHEDULE
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            webhook_block_private: false,
            mcp_allowed_hosts: Vec::new(),
            database_url: None,
            advertise_url: None,
            failover: Duration::from_secs(10),
            strict_identity: false,
            rate_limit: 0.0,
            rate_burst: 0.0,
            outgoing_trust: crate::tls::Trust::system(),
            history_keep_versions: None,
            history_retention: None,
            llm_usage_retention: None,
            audit_retention: None,
        }
    }
}

/// Events kept by default: far more than a day of a busy team's traffic.
pub const DEFAULT_EVENT_RETENTION: u64 = 100_000;

impl Config {
    /// The SQLite database file of the default storage.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("data.db")
    }

    /// Where the data lives: `database_url` (checked when the configuration was resolved),
    /// else the SQLite file [`Config::database_path`].
    pub fn database(&self) -> crate::db::Target {
        self.database_url
            .as_ref()
            .and_then(|url| crate::db::Target::parse(url.expose(), &self.data_dir).ok())
            .unwrap_or_else(|| crate::db::Target::Sqlite(self.database_path()))
    }
}

/// Declares [`ServerSettings`] from one list of fields, each with its flag, variable and
/// help line, and derives from the same list the field-by-field merge of two layers.
macro_rules! server_settings {
    ($($(#[$attr:meta])* $field:ident: $ty:ty,)*) => {
        /// One layer of raw server settings, every one optional: the command line (clap reads
        /// each flag and, when the flag is absent, its `KOOR_*` variable) or the config file
        /// (serde reads the same field names as JSON keys; unknown keys are ignored).
        #[derive(Clone, Debug, Default, Args, Deserialize)]
        #[serde(default)]
        #[command(mut_args = ignore_empty_env)]
        pub struct ServerSettings {
            $($(#[$attr])* pub $field: Option<$ty>,)*
        }

        impl ServerSettings {
            /// Fills every unset field of `self` from `lower` (so `self` wins).
            pub fn or(self, lower: ServerSettings) -> ServerSettings {
                ServerSettings {
                    $($field: self.$field.or(lower.$field),)*
                }
            }
        }
    };
}

server_settings! {
    /// API listen address (default localhost:9800; port 0 picks a free port).
    #[arg(long, env = "KOOR_BIND", value_name = "ADDR")]
    bind: String,
    /// Dashboard listen address, "" disables it (default localhost:9847).
    #[arg(long, env = "KOOR_DASHBOARD_BIND", value_name = "ADDR")]
    dashboard_bind: String,
    /// Storage directory (default ".").
    #[arg(long, env = "KOOR_DATA_DIR", value_name = "DIR")]
    data_dir: String,
    /// Bearer token required on every request but GET /health (default none: auth off).
    #[arg(
        long,
        env = "KOOR_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = StringValueParser::new().map(Secret::new)
    )]
    auth_token: Secret,
    /// debug, info, warn or error (default info).
    #[arg(long, env = "KOOR_LOG_LEVEL", value_name = "LEVEL")]
    log_level: String,
    /// Seconds without contact before an active instance is stale (default 300).
    #[arg(
        long = "stale-after",
        env = "KOOR_STALE_AFTER_SECONDS",
        value_name = "SECONDS",
        value_parser = seconds()
    )]
    stale_after_seconds: f64,
    /// Background liveness check period, 0 disables (default 60, or the stale threshold when
    /// shorter).
    #[arg(
        long = "liveness-interval",
        env = "KOOR_LIVENESS_INTERVAL_SECONDS",
        value_name = "SECONDS",
        value_parser = seconds()
    )]
    liveness_interval_seconds: f64,
    /// Background compliance pass period, 0 disables (default 300).
    #[arg(
        long = "compliance-interval",
        env = "KOOR_COMPLIANCE_INTERVAL_SECONDS",
        value_name = "SECONDS",
        value_parser = seconds()
    )]
    compliance_interval_seconds: f64,
    /// Pruning period of events and of the retention settings (default 60).
    #[arg(
        long = "prune-interval",
        env = "KOOR_PRUNE_INTERVAL_SECONDS",
        value_name = "SECONDS",
        value_parser = seconds()
    )]
    prune_interval_seconds: f64,
    /// Events kept in history (default 100000).
    #[arg(long, env = "KOOR_EVENT_RETENTION", value_name = "N", value_parser = whole())]
    event_retention: u64,
    /// Per-delivery webhook timeout (default 10).
    #[arg(
        long = "webhook-timeout",
        env = "KOOR_WEBHOOK_TIMEOUT_SECONDS",
        value_name = "SECONDS",
        value_parser = seconds()
    )]
    webhook_timeout_seconds: f64,
    /// Largest request body in bytes (default 10485760).
    #[arg(long, env = "KOOR_MAX_BODY_BYTES", value_name = "BYTES", value_parser = whole())]
    max_body_bytes: u64,
    /// Most writes committed in one transaction, 1 = no batching (default 256).
    #[arg(long, env = "KOOR_WRITE_BATCH_MAX", value_name = "N", value_parser = whole())]
    write_batch_max: u64,
    /// SQLite connection pool size (default 4).
    #[arg(long, env = "KOOR_DB_POOL_SIZE", value_name = "N", value_parser = whole())]
    db_pool_size: u64,
    /// Events a WebSocket subscriber may have queued before it is closed with koor.lagged
    /// (default 1024).
    #[arg(long, env = "KOOR_SUBSCRIBER_BUFFER", value_name = "N", value_parser = whole())]
    subscriber_buffer: u64,
    /// Webhook retry delays in seconds, one per attempt, comma-separated (default
    /// 0,5,300,1800,7200,18000,36000,36000).
    #[arg(long, env = "KOOR_WEBHOOK_RETRY_SCHEDULE", value_name = "LIST")]
    webhook_retry_schedule: String,
    /// Refuse webhook targets on loopback, private, link-local and unique-local addresses
    /// (default off).
    #[arg(
        long,
        env = "KOOR_WEBHOOK_BLOCK_PRIVATE",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = switch()
    )]
    webhook_block_private: bool,
    /// Extra Host names MCP accepts (comma-separated; `*` for any) besides loopback and the
    /// bind host.
    #[arg(long, env = "KOOR_MCP_ALLOWED_HOSTS", value_name = "LIST")]
    mcp_allowed_hosts: String,
    /// Where the data lives: sqlite://PATH or postgres://USER@HOST/DB (default: data.db in
    /// the data directory).
    #[arg(
        long,
        env = "KOOR_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL",
        value_parser = StringValueParser::new().map(Secret::new)
    )]
    database_url: Secret,
    /// The URL other cluster members forward mutations to (default: the bind address).
    #[arg(long, env = "KOOR_ADVERTISE_URL", value_name = "URL")]
    advertise_url: String,
    /// Seconds a cluster leader may be unreachable before another member takes over
    /// (default 10).
    #[arg(
        long = "failover-seconds",
        env = "KOOR_FAILOVER_SECONDS",
        value_name = "SECONDS",
        value_parser = seconds()
    )]
    failover_seconds: f64,
    /// Attribute requests only by verified credentials, and refuse lease operations for
    /// another holder unless admin (default off).
    #[arg(
        long,
        env = "KOOR_STRICT_IDENTITY",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = switch()
    )]
    strict_identity: bool,
    /// Requests per second per principal, per client IP when anonymous; 0 = off (default 0).
    #[arg(long, env = "KOOR_RATE_LIMIT", value_name = "PER_SECOND", value_parser = seconds())]
    rate_limit: f64,
    /// Requests a principal may send in a burst (default 2 x --rate-limit).
    #[arg(long, env = "KOOR_RATE_BURST", value_name = "N", value_parser = seconds())]
    rate_burst: f64,
    /// PEM file of extra root certificates for outgoing HTTPS (webhooks, contract tests),
    /// trusted besides the system's.
    #[arg(long, env = "KOOR_WEBHOOK_CA_FILE", value_name = "FILE")]
    webhook_ca_file: String,
    /// State and spec versions kept per key, the current one included (default: all).
    #[arg(long, env = "KOOR_HISTORY_KEEP_VERSIONS", value_name = "N", value_parser = whole())]
    history_keep_versions: u64,
    /// Days state and spec versions are kept; a key's current version is always kept
    /// (default: forever).
    #[arg(
        long = "history-retention-days",
        env = "KOOR_HISTORY_RETENTION_DAYS",
        value_name = "DAYS",
        value_parser = days()
    )]
    history_retention_days: f64,
    /// Days LLM usage records are kept; never those of the current month, which budgets
    /// count (default: forever).
    #[arg(
        long = "llm-usage-retention-days",
        env = "KOOR_LLM_USAGE_RETENTION_DAYS",
        value_name = "DAYS",
        value_parser = days()
    )]
    llm_usage_retention_days: f64,
    /// Days audit entries are kept; pruning records a checkpoint the chain is verified from
    /// (default: forever).
    #[arg(
        long = "audit-retention-days",
        env = "KOOR_AUDIT_RETENTION_DAYS",
        value_name = "DAYS",
        value_parser = days()
    )]
    audit_retention_days: f64,
}

impl ServerSettings {
    /// The `KOOR_*` layer alone, for commands that take no server flags (`koor migrate`).
    pub fn from_env() -> Result<ServerSettings, ConfigError> {
        let cmd = ServerSettings::augment_args(Command::new("koor").no_binary_name(true));
        cmd.try_get_matches_from(std::iter::empty::<&str>())
            .and_then(|m| ServerSettings::from_arg_matches(&m))
            .map_err(|e| ConfigError::from_clap(&e))
    }

    /// Reads a JSON config file: `path` when given (it must exist), else `./settings.json`
    /// when it exists.
    pub fn from_file(path: Option<&Path>) -> Result<ServerSettings, ConfigError> {
        let (path, required) = match path {
            Some(path) => (path, true),
            None => (Path::new("settings.json"), false),
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ServerSettings::default());
            }
            Err(e) => {
                return Err(ConfigError(format!(
                    "cannot read config file {}: {e}",
                    path.display()
                )));
            }
        };
        serde_json::from_str::<ServerSettings>(&text)
            .map_err(|e| ConfigError(format!("invalid config file {}: {e}", path.display())))
    }
}

/// Drops the `KOOR_*` variable of `arg` when it is set but empty, so that an empty variable
/// counts as unset (clap would otherwise parse `""` as the value).
pub fn ignore_empty_env(arg: Arg) -> Arg {
    let empty = arg
        .get_env()
        .and_then(std::env::var_os)
        .is_some_and(|value| value.is_empty());
    if empty { arg.env(None) } else { arg }
}

/// Parses the text of one flag or `KOOR_*` variable (surrounding blanks ignored); a bad value
/// is a [`ConfigError`] naming the variable or the flag it came from.
#[derive(Clone, Copy)]
struct SettingParser<T> {
    parse: fn(&str) -> Option<T>,
    expected: &'static str,
}

/// Seconds, fractions allowed.
fn seconds() -> SettingParser<f64> {
    SettingParser {
        parse: |v| v.parse().ok(),
        expected: "a number of seconds",
    }
}

/// Days, fractions allowed.
fn days() -> SettingParser<f64> {
    SettingParser {
        parse: |v| v.parse().ok(),
        expected: "a number of days",
    }
}

/// A whole number.
fn whole() -> SettingParser<u64> {
    SettingParser {
        parse: |v| v.parse().ok(),
        expected: "a whole number",
    }
}

/// A boolean: 1, true, yes, on or 0, false, no, off (any case).
fn switch() -> SettingParser<bool> {
    SettingParser {
        parse: |v| match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => None,
        },
        expected: "true or false",
    }
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for SettingParser<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        self.parse_ref_(cmd, arg, value, ValueSource::CommandLine)
    }

    fn parse_ref_(
        &self,
        cmd: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
        source: ValueSource,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        if let Some(parsed) = (self.parse)(text.trim()) {
            return Ok(parsed);
        }
        let name = match (source, arg) {
            (ValueSource::EnvVariable, Some(arg)) => arg
                .get_env()
                .map(|name| name.to_string_lossy().into_owned()),
            (_, Some(arg)) => arg.get_long().map(|long| format!("--{long}")),
            _ => None,
        };
        let problem =
            ConfigError::invalid(name.as_deref().unwrap_or("value"), &text, self.expected);
        // A function parser's error becomes the source of clap's error, where
        // `ConfigError::in_clap_error` finds it again.
        let fail = move |_: &str| Err::<T, ConfigError>(problem.clone());
        fail.parse_ref(cmd, arg, value)
    }
}

/// A configuration problem, reported as one line before the server starts.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn invalid(name: &str, value: &str, expected: &str) -> Self {
        ConfigError(format!("{name}: {value:?} is not {expected}"))
    }

    /// The bad setting behind a command-line error, if that is what it is (a usage error,
    /// such as an unknown flag, is not).
    pub fn in_clap_error(error: &clap::Error) -> Option<&ConfigError> {
        std::error::Error::source(error)?.downcast_ref::<ConfigError>()
    }

    /// A command-line error as one line.
    fn from_clap(error: &clap::Error) -> ConfigError {
        if let Some(problem) = ConfigError::in_clap_error(error) {
            return problem.clone();
        }
        let text = error.to_string();
        let line = text.lines().next().unwrap_or_default();
        ConfigError(line.trim_start_matches("error: ").to_string())
    }
}

/// What a numeric setting counts.
#[derive(Clone, Copy, Debug)]
enum Unit {
    Seconds,
    Days,
    Count,
    Rate,
}

/// The accepted values of one numeric setting.
#[derive(Clone, Copy, Debug)]
struct Range {
    /// The config-file key, also the name in error messages.
    key: &'static str,
    unit: Unit,
    /// The lowest accepted value, or the bound just below it when `above` is true.
    min: f64,
    above: bool,
    /// The highest accepted value, if any.
    max: Option<f64>,
    /// The setting's value in a layer.
    value: fn(&ServerSettings) -> Option<f64>,
}

/// Longest accepted period or timeout: about 31 years.
const MAX_SECONDS: f64 = 1e9;

/// Every numeric setting: its key, unit and bounds. Checked by [`Config::resolve`] before any
/// value is used, and quoted in its error messages.
const RANGES: &[Range] = &[
    Range::seconds("stale_after_seconds", true, |s| s.stale_after_seconds),
    Range::seconds("liveness_interval_seconds", false, |s| {
        s.liveness_interval_seconds
    }),
    Range::seconds("compliance_interval_seconds", false, |s| {
        s.compliance_interval_seconds
    }),
    Range::seconds("prune_interval_seconds", true, |s| s.prune_interval_seconds),
    Range::seconds("webhook_timeout_seconds", true, |s| {
        s.webhook_timeout_seconds
    }),
    Range::count("event_retention", None, |s| count(s.event_retention)),
    Range::count("max_body_bytes", Some(1 << 30), |s| count(s.max_body_bytes)),
    Range::count("write_batch_max", Some(100_000), |s| {
        count(s.write_batch_max)
    }),
    Range::count("db_pool_size", Some(64), |s| count(s.db_pool_size)),
    Range::count("subscriber_buffer", Some(1_000_000), |s| {
        count(s.subscriber_buffer)
    }),
    Range::seconds("failover_seconds", true, |s| s.failover_seconds),
    Range::rate("rate_limit", 0.0, |s| s.rate_limit),
    Range::rate("rate_burst", 1.0, |s| s.rate_burst),
    Range::count("history_keep_versions", None, |s| {
        count(s.history_keep_versions)
    }),
    Range::days("history_retention_days", |s| s.history_retention_days),
    Range::days("llm_usage_retention_days", |s| s.llm_usage_retention_days),
    Range::days("audit_retention_days", |s| s.audit_retention_days),
];

/// Longest accepted retention: about 2,700 years.
const MAX_DAYS: f64 = 1e6;

/// A retention in days as a duration (the range check bounds it).
fn days_duration(days: f64) -> Duration {
    Duration::from_secs_f64(days * 86_400.0)
}

/// A count as the range check compares it (exact up to 2^53, far beyond every bound).
fn count(value: Option<u64>) -> Option<f64> {
    value.map(|v| v as f64)
}

impl Range {
    /// Seconds up to [`MAX_SECONDS`]: more than 0 when `positive`, else 0 or more (0 turns
    /// the worker off).
    const fn seconds(
        key: &'static str,
        positive: bool,
        value: fn(&ServerSettings) -> Option<f64>,
    ) -> Range {
        Range {
            key,
            unit: Unit::Seconds,
            min: 0.0,
            above: positive,
            max: Some(MAX_SECONDS),
            value,
        }
    }

    /// Days, more than 0, up to [`MAX_DAYS`].
    const fn days(key: &'static str, value: fn(&ServerSettings) -> Option<f64>) -> Range {
        Range {
            key,
            unit: Unit::Days,
            min: 0.0,
            above: true,
            max: Some(MAX_DAYS),
            value,
        }
    }

    /// A whole number from 1 up to `max`.
    const fn count(
        key: &'static str,
        max: Option<u64>,
        value: fn(&ServerSettings) -> Option<f64>,
    ) -> Range {
        Range {
            key,
            unit: Unit::Count,
            min: 1.0,
            above: false,
            max: match max {
                Some(max) => Some(max as f64),
                None => None,
            },
            value,
        }
    }

    /// A request rate or burst from `min` up to one million.
    const fn rate(key: &'static str, min: f64, value: fn(&ServerSettings) -> Option<f64>) -> Range {
        Range {
            key,
            unit: Unit::Rate,
            min,
            above: false,
            max: Some(1e6),
            value,
        }
    }

    fn contains(&self, value: f64) -> bool {
        let low = if self.above {
            value > self.min
        } else {
            value >= self.min
        };
        value.is_finite() && low && self.max.is_none_or(|max| value <= max)
    }

    /// What the setting accepts, for error messages.
    fn expected(&self) -> String {
        let unit = match self.unit {
            Unit::Seconds => "a number of seconds",
            Unit::Days => "a number of days",
            Unit::Count => "a whole number",
            Unit::Rate => "a number of requests",
        };
        match (self.above, self.max) {
            (true, Some(max)) => format!("{unit} > {} and <= {max}", self.min),
            (true, None) => format!("{unit} > {}", self.min),
            (false, Some(max)) => format!("{unit} between {} and {max}", self.min),
            (false, None) => format!("{unit} >= {}", self.min),
        }
    }

    /// Checks the setting's value in `settings`, if it is set.
    fn check(&self, settings: &ServerSettings) -> Result<(), ConfigError> {
        match (self.value)(settings) {
            Some(v) if !self.contains(v) => Err(ConfigError::invalid(
                self.key,
                &v.to_string(),
                &self.expected(),
            )),
            _ => Ok(()),
        }
    }
}

/// A retry schedule: comma-separated non-negative seconds, 1 to 50 entries.
fn parse_schedule(raw: &str) -> Result<Vec<Duration>, ConfigError> {
    let expected = "a comma-separated list of 1 to 50 delays in seconds, e.g. 0,5,300";
    let delays = raw
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 1e7)
                .map(Duration::from_secs_f64)
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ConfigError::invalid("webhook_retry_schedule", raw, expected))?;
    if delays.is_empty() || delays.len() > 50 {
        return Err(ConfigError::invalid(
            "webhook_retry_schedule",
            raw,
            expected,
        ));
    }
    Ok(delays)
}

/// A period where 0 turns the worker off.
fn optional_period(seconds: f64) -> Option<Duration> {
    let period = Duration::from_secs_f64(seconds);
    (!period.is_zero()).then_some(period)
}

impl Config {
    /// Layers the command line (flags over `KOOR_*` variables) over the config file over the
    /// defaults, and validates the result.
    pub fn resolve(
        command_line: ServerSettings,
        file: ServerSettings,
    ) -> Result<Config, ConfigError> {
        let o = command_line.or(file);
        for range in RANGES {
            range.check(&o)?;
        }
        let d = Config::default();
        let log_level = match o.log_level {
            Some(v) => LogLevel::parse(&v).ok_or_else(|| {
                ConfigError::invalid("log_level", &v, "one of debug, info, warn, error")
            })?,
            None => d.log_level,
        };
        let stale_after = o
            .stale_after_seconds
            .map_or(d.stale_after, Duration::from_secs_f64);
        let liveness_interval = match o.liveness_interval_seconds {
            Some(v) => optional_period(v),
            // 60 s, or the stale threshold when that is shorter, but at least 1 s.
            None => Some(
                Duration::from_secs(60)
                    .min(stale_after)
                    .max(Duration::from_secs(1)),
            ),
        };
        let database_url = o.database_url.filter(|u| !u.is_empty());
        if let Some(url) = &database_url {
            crate::db::Target::parse(url.expose(), Path::new(".")).map_err(|expected| {
                ConfigError::invalid("database_url", &crate::db::redact(url.expose()), &expected)
            })?;
        }
        let outgoing_trust = match o.webhook_ca_file.as_deref().map(str::trim) {
            Some(path) if !path.is_empty() => crate::tls::Trust::with_ca_file(Path::new(path))
                .map_err(|e| ConfigError(format!("webhook_ca_file: {e}")))?,
            _ => d.outgoing_trust,
        };
        let webhook_retry_schedule = match o.webhook_retry_schedule {
            Some(raw) => parse_schedule(&raw)?,
            None => d.webhook_retry_schedule,
        };
        Ok(Config {
            bind: o.bind.filter(|b| !b.is_empty()).unwrap_or(d.bind),
            dashboard_bind_explicit: o.dashboard_bind.is_some(),
            dashboard_bind: o.dashboard_bind.unwrap_or(d.dashboard_bind),
            data_dir: o
                .data_dir
                .filter(|v| !v.is_empty())
                .map_or(d.data_dir, PathBuf::from),
            auth_token: o.auth_token.unwrap_or_default(),
            log_level,
            stale_after,
            liveness_interval,
            compliance_interval: o
                .compliance_interval_seconds
                .map_or(d.compliance_interval, optional_period),
            prune_interval: o
                .prune_interval_seconds
                .map_or(d.prune_interval, Duration::from_secs_f64),
            event_retention: o.event_retention.unwrap_or(d.event_retention),
            webhook_timeout: o
                .webhook_timeout_seconds
                .map_or(d.webhook_timeout, Duration::from_secs_f64),
            // The casts are within the ranges checked above.
            max_body_bytes: o.max_body_bytes.map_or(d.max_body_bytes, |v| v as usize),
            write_batch_max: o.write_batch_max.map_or(d.write_batch_max, |v| v as usize),
            db_pool_size: o.db_pool_size.map_or(d.db_pool_size, |v| v as u32),
            subscriber_buffer: o
                .subscriber_buffer
                .map_or(d.subscriber_buffer, |v| v as usize),
            webhook_retry_schedule,
            webhook_block_private: o.webhook_block_private.unwrap_or(d.webhook_block_private),
            mcp_allowed_hosts: o
                .mcp_allowed_hosts
                .map(|raw| {
                    raw.split(',')
                        .map(|h| h.trim().to_string())
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or(d.mcp_allowed_hosts),
            database_url,
            advertise_url: o.advertise_url.filter(|u| !u.is_empty()),
            failover: o
                .failover_seconds
                .map_or(d.failover, Duration::from_secs_f64),
            strict_identity: o.strict_identity.unwrap_or(d.strict_identity),
            rate_limit: o.rate_limit.unwrap_or(d.rate_limit),
            rate_burst: o
                .rate_burst
                .unwrap_or(2.0 * o.rate_limit.unwrap_or(d.rate_limit))
                .max(1.0),
            outgoing_trust,
            history_keep_versions: o.history_keep_versions,
            history_retention: o.history_retention_days.map(days_duration),
            llm_usage_retention: o.llm_usage_retention_days.map(days_duration),
            audit_retention: o.audit_retention_days.map(days_duration),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The command line of a test: these flags, with whatever `KOOR_*` variables the test
    /// process has (none are set by the tests).
    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        settings: ServerSettings,
    }

    fn flags(args: &[&str]) -> ServerSettings {
        Flags::try_parse_from(std::iter::once("koor").chain(args.iter().copied()))
            .unwrap()
            .settings
    }

    fn flag_error(args: &[&str]) -> ConfigError {
        let e =
            Flags::try_parse_from(std::iter::once("koor").chain(args.iter().copied())).unwrap_err();
        ConfigError::in_clap_error(&e)
            .cloned()
            .unwrap_or_else(|| panic!("{args:?} is not a setting error: {e}"))
    }

    fn file(json: &str) -> ServerSettings {
        serde_json::from_str(json).unwrap()
    }

    fn resolve(command_line: ServerSettings) -> Result<Config, ConfigError> {
        Config::resolve(command_line, ServerSettings::default())
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = resolve(ServerSettings::default()).unwrap();
        assert_eq!(c.bind, "localhost:9800");
        assert_eq!(c.dashboard_bind, "localhost:9847");
        assert!(!c.dashboard_bind_explicit);
        assert_eq!(c.data_dir, PathBuf::from("."));
        assert!(c.auth_token.is_empty());
        assert_eq!(c.stale_after, Duration::from_secs(300));
        assert_eq!(c.liveness_interval, Some(Duration::from_secs(60)));
        assert_eq!(c.compliance_interval, Some(Duration::from_secs(300)));
        assert_eq!(c.webhook_timeout, Duration::from_secs(10));
        assert_eq!(c.max_body_bytes, 10 * 1024 * 1024);
    }

    #[test]
    fn the_command_line_beats_the_file() {
        let file =
            file(r#"{"bind":"file:1","log_level":"warn","event_retention":7,"server":"ignored"}"#);
        let c = Config::resolve(flags(&["--bind", "flag:3"]), file).unwrap();
        assert_eq!(c.bind, "flag:3");
        assert_eq!(c.log_level, LogLevel::Warn);
        assert_eq!(c.event_retention, 7);
    }

    #[test]
    fn every_flag_and_file_key_reaches_the_config() {
        let from_flags = resolve(flags(&[
            "--bind=127.0.0.1:1",
            "--dashboard-bind=",
            "--data-dir=d",
            "--auth-token=t",
            "--log-level=DEBUG",
            "--stale-after=7",
            "--liveness-interval=2",
            "--compliance-interval=3",
            "--prune-interval=4",
            "--event-retention=5",
            "--webhook-timeout=6",
            "--max-body-bytes=1024",
            "--write-batch-max=1",
            "--db-pool-size=8",
            "--subscriber-buffer=9",
            "--webhook-retry-schedule=0, 1.5",
            "--webhook-block-private",
            "--mcp-allowed-hosts=a, b,",
        ]))
        .unwrap();
        let from_file = resolve(file(
            r#"{"bind":"127.0.0.1:1","dashboard_bind":"","data_dir":"d","auth_token":"t",
                "log_level":"DEBUG","stale_after_seconds":7,"liveness_interval_seconds":2,
                "compliance_interval_seconds":3,"prune_interval_seconds":4,
                "event_retention":5,"webhook_timeout_seconds":6,"max_body_bytes":1024,
                "write_batch_max":1,"db_pool_size":8,"subscriber_buffer":9,
                "webhook_retry_schedule":"0, 1.5","webhook_block_private":true,
                "mcp_allowed_hosts":"a, b,"}"#,
        ))
        .unwrap();
        for c in [from_flags, from_file] {
            assert_eq!(c.bind, "127.0.0.1:1");
            assert_eq!(c.dashboard_bind, "");
            assert!(c.dashboard_bind_explicit);
            assert_eq!(c.data_dir, PathBuf::from("d"));
            assert_eq!(c.auth_token.expose(), "t");
            assert_eq!(c.log_level, LogLevel::Debug);
            assert_eq!(c.stale_after, Duration::from_secs(7));
            assert_eq!(c.liveness_interval, Some(Duration::from_secs(2)));
            assert_eq!(c.compliance_interval, Some(Duration::from_secs(3)));
            assert_eq!(c.prune_interval, Duration::from_secs(4));
            assert_eq!(c.event_retention, 5);
            assert_eq!(c.webhook_timeout, Duration::from_secs(6));
            assert_eq!(c.max_body_bytes, 1024);
            assert_eq!(c.write_batch_max, 1);
            assert_eq!(c.db_pool_size, 8);
            assert_eq!(c.subscriber_buffer, 9);
            assert_eq!(
                c.webhook_retry_schedule,
                [Duration::ZERO, Duration::from_millis(1500)]
            );
            assert!(c.webhook_block_private);
            assert_eq!(c.mcp_allowed_hosts, ["a", "b"]);
        }
    }

    #[test]
    fn empty_bind_and_data_dir_mean_the_default() {
        let c = resolve(file(r#"{"bind":"","data_dir":""}"#)).unwrap();
        assert_eq!(c.bind, "localhost:9800");
        assert_eq!(c.data_dir, PathBuf::from("."));
    }

    #[test]
    fn fractional_stale_threshold_and_derived_liveness_interval() {
        let c = resolve(flags(&["--stale-after", " 2.5 "])).unwrap();
        assert_eq!(c.stale_after, Duration::from_millis(2500));
        assert_eq!(c.liveness_interval, Some(Duration::from_millis(2500)));

        let tiny = resolve(flags(&["--stale-after", "0.2"])).unwrap();
        assert_eq!(tiny.liveness_interval, Some(Duration::from_secs(1)));
    }

    #[test]
    fn zero_interval_disables_the_worker() {
        let c = resolve(flags(&["--compliance-interval=0", "--liveness-interval=0"])).unwrap();
        assert_eq!(c.compliance_interval, None);
        assert_eq!(c.liveness_interval, None);
    }

    #[test]
    fn switches_take_the_usual_spellings() {
        assert_eq!(flags(&[]).webhook_block_private, None);
        assert_eq!(
            flags(&["--webhook-block-private"]).webhook_block_private,
            Some(true)
        );
        for (text, want) in [("on", true), ("YES", true), ("1", true), ("Off", false)] {
            let arg = format!("--webhook-block-private={text}");
            assert_eq!(flags(&[&arg]).webhook_block_private, Some(want), "{text}");
        }
        let e = flag_error(&["--webhook-block-private=maybe"]);
        assert_eq!(
            e.0,
            r#"--webhook-block-private: "maybe" is not true or false"#
        );
    }

    #[test]
    fn bad_values_are_errors() {
        let e = flag_error(&["--stale-after", "soon"]);
        assert_eq!(e.0, r#"--stale-after: "soon" is not a number of seconds"#);
        let e = flag_error(&["--db-pool-size=-1"]);
        assert!(e.0.contains("--db-pool-size"), "{e}");
        assert!(resolve(flags(&["--log-level", "loud"])).is_err());
        let negative = resolve(flags(&["--stale-after=-1"])).unwrap_err();
        assert_eq!(
            negative.0,
            r#"stale_after_seconds: "-1" is not a number of seconds > 0 and <= 1000000000"#
        );
        for odd in ["NaN", "inf"] {
            assert!(
                resolve(flags(&["--webhook-timeout", odd])).is_err(),
                "{odd}"
            );
        }
        assert!(resolve(flags(&["--webhook-retry-schedule", "0,soon"])).is_err());
        assert!(resolve(flags(&["--webhook-retry-schedule", ""])).is_err());
        assert!(serde_json::from_str::<ServerSettings>(r#"{"event_retention":"many"}"#).is_err());
    }

    #[test]
    fn every_range_is_checked_at_both_ends() {
        for range in RANGES {
            let below = if range.above {
                range.min
            } else {
                range.min - 1.0
            };
            let mut outside = vec![below];
            outside.extend(range.max.map(|max| max + 1.0));
            for value in outside {
                let json = format!(r#"{{"{}": {value}}}"#, range.key);
                let settings: ServerSettings = serde_json::from_str(&json).unwrap();
                let e = resolve(settings).unwrap_err();
                assert!(e.0.starts_with(range.key), "{e}");
                assert!(e.0.contains(&range.expected()), "{e}");
            }
            let mut inside = vec![range.min + 1.0];
            inside.extend(range.max);
            for value in inside {
                let json = format!(r#"{{"{}": {value}}}"#, range.key);
                let settings: ServerSettings = serde_json::from_str(&json).unwrap();
                assert!(resolve(settings).is_ok(), "{json}");
            }
        }
        let expected: Vec<String> = RANGES.iter().map(Range::expected).collect();
        assert_eq!(expected[0], "a number of seconds > 0 and <= 1000000000");
        assert_eq!(expected[1], "a number of seconds between 0 and 1000000000");
        assert_eq!(expected[5], "a whole number >= 1");
        assert_eq!(expected[8], "a whole number between 1 and 64");
    }

    #[test]
    fn database_urls_are_checked_and_never_echo_a_password() {
        let c = resolve(flags(&["--database-url", "postgres://k:pw@db/koor"])).unwrap();
        assert!(!format!("{c:?}").contains("pw"));
        assert_eq!(
            c.database(),
            crate::db::Target::Postgres("postgres://k:pw@db/koor".into())
        );
        let e = resolve(flags(&["--database-url", "mysql://k:pw@db/koor"])).unwrap_err();
        assert!(e.0.starts_with("database_url"), "{e}");
        assert!(!e.0.contains("pw"), "{e}");
        let c = resolve(flags(&["--database-url", ""])).unwrap();
        assert_eq!(c.database(), crate::db::Target::Sqlite(c.database_path()));
        let c = resolve(flags(&["--failover-seconds", "2.5"])).unwrap();
        assert_eq!(c.failover, Duration::from_millis(2500));
        assert!(resolve(flags(&["--failover-seconds", "0"])).is_err());
    }

    #[test]
    fn retention_is_off_by_default_and_set_in_days() {
        let d = resolve(ServerSettings::default()).unwrap();
        assert_eq!(
            (
                d.history_keep_versions,
                d.history_retention,
                d.llm_usage_retention,
                d.audit_retention
            ),
            (None, None, None, None)
        );
        let c = resolve(flags(&[
            "--history-keep-versions",
            "10",
            "--history-retention-days",
            "0.5",
            "--llm-usage-retention-days",
            "90",
            "--audit-retention-days",
            "365",
        ]))
        .unwrap();
        assert_eq!(c.history_keep_versions, Some(10));
        assert_eq!(c.history_retention, Some(Duration::from_secs(43_200)));
        assert_eq!(
            c.llm_usage_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(c.audit_retention, Some(Duration::from_secs(365 * 86_400)));
        let e = resolve(flags(&["--audit-retention-days", "0"])).unwrap_err();
        assert!(e.0.contains("a number of days > 0"), "{e}");
        let e = flag_error(&["--history-keep-versions", "many"]);
        assert!(e.0.contains("--history-keep-versions"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let settings = flags(&["--auth-token", "hunter2"]);
        assert!(!format!("{settings:?}").contains("hunter2"));
        let c = resolve(settings).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
