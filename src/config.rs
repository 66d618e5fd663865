//! Server configuration: one `Config`, loaded once from defaults < config file < `KOOR_*`
//! environment < command-line flags, validated before anything starts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Ten MiB, the contract's limit for values and request bodies.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// A secret string whose `Debug` output is redacted.
#[derive(Clone, Default, PartialEq, Eq)]
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
        }
    }
}

/// Events kept by default: far more than a day of a busy team's traffic.
pub const DEFAULT_EVENT_RETENTION: u64 = 100_000;

impl Config {
    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("data.db")
    }
}

/// One layer of optional settings: the config file, the environment or the flags.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Overrides {
    pub bind: Option<String>,
    pub dashboard_bind: Option<String>,
    pub data_dir: Option<String>,
    pub auth_token: Option<String>,
    pub log_level: Option<String>,
    pub stale_after_seconds: Option<f64>,
    pub liveness_interval_seconds: Option<f64>,
    pub compliance_interval_seconds: Option<f64>,
    pub prune_interval_seconds: Option<f64>,
    pub event_retention: Option<u64>,
    pub webhook_timeout_seconds: Option<f64>,
    pub max_body_bytes: Option<u64>,
    pub write_batch_max: Option<u64>,
    pub db_pool_size: Option<u64>,
    pub subscriber_buffer: Option<u64>,
    pub webhook_retry_schedule: Option<String>,
    pub webhook_block_private: Option<bool>,
    pub mcp_allowed_hosts: Option<String>,
}

impl Overrides {
    /// Fills every unset field of `self` from `lower` (so `self` wins).
    fn or(self, lower: Overrides) -> Overrides {
        Overrides {
            bind: self.bind.or(lower.bind),
            dashboard_bind: self.dashboard_bind.or(lower.dashboard_bind),
            data_dir: self.data_dir.or(lower.data_dir),
            auth_token: self.auth_token.or(lower.auth_token),
            log_level: self.log_level.or(lower.log_level),
            stale_after_seconds: self.stale_after_seconds.or(lower.stale_after_seconds),
            liveness_interval_seconds: self
                .liveness_interval_seconds
                .or(lower.liveness_interval_seconds),
            compliance_interval_seconds: self
                .compliance_interval_seconds
                .or(lower.compliance_interval_seconds),
            prune_interval_seconds: self.prune_interval_seconds.or(lower.prune_interval_seconds),
            event_retention: self.event_retention.or(lower.event_retention),
            webhook_timeout_seconds: self
                .webhook_timeout_seconds
                .or(lower.webhook_timeout_seconds),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            write_batch_max: self.write_batch_max.or(lower.write_batch_max),
            db_pool_size: self.db_pool_size.or(lower.db_pool_size),
            subscriber_buffer: self.subscriber_buffer.or(lower.subscriber_buffer),
            webhook_retry_schedule: self.webhook_retry_schedule.or(lower.webhook_retry_schedule),
            webhook_block_private: self.webhook_block_private.or(lower.webhook_block_private),
            mcp_allowed_hosts: self.mcp_allowed_hosts.or(lower.mcp_allowed_hosts),
        }
    }

    /// Reads the `KOOR_*` variables through `get` (empty values count as unset).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Overrides, ConfigError> {
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        let num = |name: &str| -> Result<Option<f64>, ConfigError> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map_err(|_| ConfigError::invalid(name, &v, "a number of seconds"))
                })
                .transpose()
        };
        let int = |name: &str| -> Result<Option<u64>, ConfigError> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| ConfigError::invalid(name, &v, "a whole number"))
                })
                .transpose()
        };
        Ok(Overrides {
            bind: var("KOOR_BIND"),
            dashboard_bind: get("KOOR_DASHBOARD_BIND").filter(|v| !v.is_empty()),
            data_dir: var("KOOR_DATA_DIR"),
            auth_token: var("KOOR_AUTH_TOKEN"),
            log_level: var("KOOR_LOG_LEVEL"),
            stale_after_seconds: num("KOOR_STALE_AFTER_SECONDS")?,
            liveness_interval_seconds: num("KOOR_LIVENESS_INTERVAL_SECONDS")?,
            compliance_interval_seconds: num("KOOR_COMPLIANCE_INTERVAL_SECONDS")?,
            prune_interval_seconds: num("KOOR_PRUNE_INTERVAL_SECONDS")?,
            event_retention: int("KOOR_EVENT_RETENTION")?,
            webhook_timeout_seconds: num("KOOR_WEBHOOK_TIMEOUT_SECONDS")?,
            max_body_bytes: int("KOOR_MAX_BODY_BYTES")?,
            write_batch_max: int("KOOR_WRITE_BATCH_MAX")?,
            db_pool_size: int("KOOR_DB_POOL_SIZE")?,
            subscriber_buffer: int("KOOR_SUBSCRIBER_BUFFER")?,
            webhook_retry_schedule: var("KOOR_WEBHOOK_RETRY_SCHEDULE"),
            webhook_block_private: var("KOOR_WEBHOOK_BLOCK_PRIVATE")
                .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => Ok(true),
                    "0" | "false" | "no" | "off" => Ok(false),
                    _ => Err(ConfigError::invalid(
                        "KOOR_WEBHOOK_BLOCK_PRIVATE",
                        &v,
                        "true or false",
                    )),
                })
                .transpose()?,
            mcp_allowed_hosts: var("KOOR_MCP_ALLOWED_HOSTS"),
        })
    }

    /// Reads a JSON config file. `required` is true for an explicit `--config` path.
    pub fn from_file(path: &Path, required: bool) -> Result<Overrides, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Overrides::default());
            }
            Err(e) => {
                return Err(ConfigError(format!(
                    "cannot read config file {}: {e}",
                    path.display()
                )));
            }
        };
        serde_json::from_str::<Overrides>(&text)
            .map_err(|e| ConfigError(format!("invalid config file {}: {e}", path.display())))
    }
}

/// A configuration problem, reported as one line before the server starts.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn invalid(name: &str, value: &str, expected: &str) -> Self {
        ConfigError(format!("{name}: {value:?} is not {expected}"))
    }
}

fn seconds(name: &str, value: f64, allow_zero: bool) -> Result<Duration, ConfigError> {
    if !value.is_finite() || value < 0.0 || (!allow_zero && value == 0.0) || value > 1e9 {
        let expected = if allow_zero {
            "a number of seconds >= 0"
        } else {
            "a number of seconds > 0"
        };
        return Err(ConfigError::invalid(name, &value.to_string(), expected));
    }
    Ok(Duration::from_secs_f64(value))
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

fn optional_period(name: &str, value: f64) -> Result<Option<Duration>, ConfigError> {
    let period = seconds(name, value, true)?;
    Ok((!period.is_zero()).then_some(period))
}

impl Config {
    /// Layers flags over environment over file over defaults and validates the result.
    pub fn resolve(
        flags: Overrides,
        env: Overrides,
        file: Overrides,
    ) -> Result<Config, ConfigError> {
        let o = flags.or(env).or(file);
        let d = Config::default();
        let log_level = match o.log_level {
            Some(v) => LogLevel::parse(&v).ok_or_else(|| {
                ConfigError::invalid("log_level", &v, "one of debug, info, warn, error")
            })?,
            None => d.log_level,
        };
        let stale_after = match o.stale_after_seconds {
            Some(v) => seconds("stale_after_seconds", v, false)?,
            None => d.stale_after,
        };
        let liveness_interval = match o.liveness_interval_seconds {
            Some(v) => optional_period("liveness_interval_seconds", v)?,
            // 60 s, or the stale threshold when that is shorter, but at least 1 s.
            None => Some(
                Duration::from_secs(60)
                    .min(stale_after)
                    .max(Duration::from_secs(1)),
            ),
        };
        let compliance_interval = match o.compliance_interval_seconds {
            Some(v) => optional_period("compliance_interval_seconds", v)?,
            None => d.compliance_interval,
        };
        let prune_interval = match o.prune_interval_seconds {
            Some(v) => seconds("prune_interval_seconds", v, false)?,
            None => d.prune_interval,
        };
        let event_retention = match o.event_retention {
            Some(0) => return Err(ConfigError::invalid("event_retention", "0", "at least 1")),
            Some(v) => v,
            None => d.event_retention,
        };
        let webhook_timeout = match o.webhook_timeout_seconds {
            Some(v) => seconds("webhook_timeout_seconds", v, false)?,
            None => d.webhook_timeout,
        };
        let max_body_bytes = match o.max_body_bytes {
            Some(v) if v == 0 || v > (1 << 30) => {
                return Err(ConfigError::invalid(
                    "max_body_bytes",
                    &v.to_string(),
                    "between 1 and 1073741824",
                ));
            }
            Some(v) => v as usize,
            None => d.max_body_bytes,
        };
        let write_batch_max = match o.write_batch_max {
            Some(v) if v == 0 || v > 100_000 => {
                return Err(ConfigError::invalid(
                    "write_batch_max",
                    &v.to_string(),
                    "between 1 and 100000",
                ));
            }
            Some(v) => v as usize,
            None => d.write_batch_max,
        };
        let db_pool_size = match o.db_pool_size {
            Some(v) if v == 0 || v > 64 => {
                return Err(ConfigError::invalid(
                    "db_pool_size",
                    &v.to_string(),
                    "between 1 and 64",
                ));
            }
            Some(v) => v as u32,
            None => d.db_pool_size,
        };
        let subscriber_buffer = match o.subscriber_buffer {
            Some(v) if v == 0 || v > 1_000_000 => {
                return Err(ConfigError::invalid(
                    "subscriber_buffer",
                    &v.to_string(),
                    "between 1 and 1000000",
                ));
            }
            Some(v) => v as usize,
            None => d.subscriber_buffer,
        };
        let webhook_retry_schedule = match o.webhook_retry_schedule {
            Some(raw) => parse_schedule(&raw)?,
            None => d.webhook_retry_schedule,
        };
        let data_dir = match o.data_dir {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => d.data_dir,
        };
        let bind = o.bind.filter(|b| !b.is_empty()).unwrap_or(d.bind);
        Ok(Config {
            bind,
            dashboard_bind_explicit: o.dashboard_bind.is_some(),
            dashboard_bind: o.dashboard_bind.unwrap_or(d.dashboard_bind),
            data_dir,
            auth_token: Secret::new(o.auth_token.unwrap_or_default()),
            log_level,
            stale_after,
            liveness_interval,
            compliance_interval,
            prune_interval,
            event_retention,
            webhook_timeout,
            max_body_bytes,
            write_batch_max,
            db_pool_size,
            subscriber_buffer,
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Overrides {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Overrides::from_env(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::resolve(
            Overrides::default(),
            Overrides::default(),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.bind, "localhost:9800");
        assert_eq!(c.dashboard_bind, "localhost:9847");
        assert_eq!(c.data_dir, PathBuf::from("."));
        assert!(c.auth_token.is_empty());
        assert_eq!(c.stale_after, Duration::from_secs(300));
        assert_eq!(c.liveness_interval, Some(Duration::from_secs(60)));
        assert_eq!(c.compliance_interval, Some(Duration::from_secs(300)));
        assert_eq!(c.webhook_timeout, Duration::from_secs(10));
        assert_eq!(c.max_body_bytes, 10 * 1024 * 1024);
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let file: Overrides = serde_json::from_str(
            r#"{"bind":"file:1","log_level":"warn","event_retention":7,"server":"ignored"}"#,
        )
        .unwrap();
        let env = env(&[("KOOR_BIND", "env:2"), ("KOOR_LOG_LEVEL", "error")]);
        let flags = Overrides {
            bind: Some("flag:3".into()),
            ..Default::default()
        };
        let c = Config::resolve(flags, env, file).unwrap();
        assert_eq!(c.bind, "flag:3");
        assert_eq!(c.log_level, LogLevel::Error);
        assert_eq!(c.event_retention, 7);
    }

    #[test]
    fn empty_env_values_are_ignored() {
        let file: Overrides = serde_json::from_str(r#"{"bind":"file:1"}"#).unwrap();
        let c = Config::resolve(Overrides::default(), env(&[("KOOR_BIND", "")]), file).unwrap();
        assert_eq!(c.bind, "file:1");
    }

    #[test]
    fn fractional_stale_threshold_and_derived_liveness_interval() {
        let c = Config::resolve(
            Overrides::default(),
            env(&[("KOOR_STALE_AFTER_SECONDS", "2.5")]),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.stale_after, Duration::from_millis(2500));
        assert_eq!(c.liveness_interval, Some(Duration::from_millis(2500)));

        let tiny = Config::resolve(
            Overrides {
                stale_after_seconds: Some(0.2),
                ..Default::default()
            },
            Overrides::default(),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(tiny.liveness_interval, Some(Duration::from_secs(1)));
    }

    #[test]
    fn zero_interval_disables_the_worker() {
        let c = Config::resolve(
            Overrides {
                compliance_interval_seconds: Some(0.0),
                liveness_interval_seconds: Some(0.0),
                ..Default::default()
            },
            Overrides::default(),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.compliance_interval, None);
        assert_eq!(c.liveness_interval, None);
    }

    #[test]
    fn bad_values_are_errors() {
        let bad_env =
            Overrides::from_env(|n| (n == "KOOR_STALE_AFTER_SECONDS").then(|| "soon".into()));
        assert!(bad_env.is_err());
        let bad_level = Config::resolve(
            Overrides {
                log_level: Some("loud".into()),
                ..Default::default()
            },
            Overrides::default(),
            Overrides::default(),
        );
        assert!(bad_level.is_err());
        let negative = Config::resolve(
            Overrides {
                stale_after_seconds: Some(-1.0),
                ..Default::default()
            },
            Overrides::default(),
            Overrides::default(),
        );
        assert!(negative.is_err());
        assert!(serde_json::from_str::<Overrides>(r#"{"event_retention":"many"}"#).is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = Config::resolve(
            Overrides {
                auth_token: Some("hunter2".into()),
                ..Default::default()
            },
            Overrides::default(),
            Overrides::default(),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
