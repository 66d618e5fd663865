//! LLM usage and budget domain types.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::{DomainError, ErrorKind};
use crate::time::format_micros;

/// The request types a usage record may have; the first is the default.
pub const REQUEST_TYPES: &[&str] = &["completion", "embedding"];

/// `source` of every event this domain publishes (the contract's source of
/// `llm.usage.recorded`, API §6).
pub const SOURCE: &str = "llmcost";
/// Published for every committed usage record (data: the record).
pub const TOPIC_RECORDED: &str = "llm.usage.recorded";
/// Published once per period when a budget reaches [`WARNING_PERCENT`] (data: its status).
pub const TOPIC_WARNING: &str = "budget.warning";
/// Published once per period when a budget reaches [`EXCEEDED_PERCENT`] (data: its status).
pub const TOPIC_EXCEEDED: &str = "budget.exceeded";

/// Share of a limit at which a budget is in `warning`.
pub const WARNING_PERCENT: f64 = 80.0;
/// Share of a limit at which a budget is `exceeded`.
pub const EXCEEDED_PERCENT: f64 = 100.0;

/// A stored usage record.
#[derive(Clone, Debug, PartialEq)]
pub struct Usage {
    pub id: i64,
    pub instance_id: String,
    pub project: String,
    pub provider: String,
    pub model: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_usd: f64,
    pub request_type: String,
    pub session_tag: String,
    /// Unix microseconds.
    pub created_at: i64,
}

/// The wire shape of a usage record (API §17), also the data of `llm.usage.recorded`.
#[derive(Serialize)]
pub struct UsageOut<'a> {
    pub id: i64,
    pub instance_id: &'a str,
    pub project: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_usd: f64,
    pub request_type: &'a str,
    pub session_tag: &'a str,
    pub created_at: String,
}

impl Usage {
    /// The wire shape of this record.
    pub fn out(&self) -> UsageOut<'_> {
        UsageOut {
            id: self.id,
            instance_id: &self.instance_id,
            project: &self.project,
            provider: &self.provider,
            model: &self.model,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            cost_usd: self.cost_usd,
            request_type: &self.request_type,
            session_tag: &self.session_tag,
            created_at: format_micros(self.created_at),
        }
    }

    /// The wire shape as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self.out()).unwrap_or(Value::Null)
    }

    /// The budget scopes this record counts against: its project and its instance, when set.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut out = Vec::with_capacity(2);
        if !self.project.is_empty() {
            out.push(Scope::Project(self.project.clone()));
        }
        if !self.instance_id.is_empty() {
            out.push(Scope::Instance(self.instance_id.clone()));
        }
        out
    }
}

/// A validated body of `POST /api/llm/usage`, not yet stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NewUsage {
    pub instance_id: String,
    pub project: String,
    pub provider: String,
    pub model: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_usd: f64,
    pub request_type: String,
    pub session_tag: String,
}

impl NewUsage {
    /// The record as stored with `id` at `created_at`.
    pub fn stored(self, id: i64, created_at: i64) -> Usage {
        Usage {
            id,
            instance_id: self.instance_id,
            project: self.project,
            provider: self.provider,
            model: self.model,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            cost_usd: self.cost_usd,
            request_type: self.request_type,
            session_tag: self.session_tag,
            created_at,
        }
    }
}

/// What a budget limits: one project's or one instance's records.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Project(String),
    Instance(String),
}

impl Scope {
    /// `project:NAME` or `instance:ID` with a non-empty name or id.
    pub fn parse(raw: &str) -> Result<Self, LlmError> {
        match raw.split_once(':') {
            Some(("project", name)) if !name.is_empty() => Ok(Scope::Project(name.to_string())),
            Some(("instance", id)) if !id.is_empty() => Ok(Scope::Instance(id.to_string())),
            _ => Err(LlmError::Invalid(format!(
                "scope must be project:NAME or instance:ID, got {raw:?}"
            ))),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Project(p) => write!(f, "project:{p}"),
            Scope::Instance(i) => write!(f, "instance:{i}"),
        }
    }
}

/// The calendar period (UTC) a budget's spend is counted over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    /// `day` or `month`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "day" => Some(Period::Day),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The first instant (unix microseconds) of the period containing `now`.
    pub fn start(self, now: i64) -> i64 {
        let date = utc_date(now);
        let first = match self {
            Period::Day => Some(date),
            Period::Month => date.with_day(1),
        };
        first
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_micros())
            .unwrap_or(0)
    }

    /// The key of the period containing `now`: `2026-11-21` (day) or `2026-11` (month).
    pub fn key(self, now: i64) -> String {
        let date = utc_date(now);
        match self {
            Period::Day => date.format("%Y-%m-%d").to_string(),
            Period::Month => date.format("%Y-%m").to_string(),
        }
    }
}

fn utc_date(micros: i64) -> NaiveDate {
    Utc.timestamp_micros(micros)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// A validated body of `PUT /api/llm/budgets/{scope}`.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetIn {
    pub period: Period,
    pub max_tokens: Option<i64>,
    pub max_cost_usd: Option<f64>,
}

impl BudgetIn {
    /// The budget for `scope`, set at `now`, with nothing announced yet.
    pub fn budget(self, scope: Scope, now: i64) -> Budget {
        Budget {
            scope,
            period: self.period,
            max_tokens: self.max_tokens,
            max_cost_usd: self.max_cost_usd,
            warned_period: String::new(),
            exceeded_period: String::new(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// A stored budget.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    pub scope: Scope,
    pub period: Period,
    pub max_tokens: Option<i64>,
    pub max_cost_usd: Option<f64>,
    /// Key of the period whose warning has been announced (`""` if none).
    pub warned_period: String,
    /// Key of the period whose exceeded announcement has been made (`""` if none).
    pub exceeded_period: String,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix microseconds.
    pub updated_at: i64,
}

/// What a scope has spent in a period.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spend {
    /// `tokens_in + tokens_out`.
    pub tokens: i64,
    pub cost_usd: f64,
}

impl Spend {
    /// Adds one record.
    pub fn add(&mut self, usage: &Usage) {
        self.tokens = self
            .tokens
            .saturating_add(usage.tokens_in)
            .saturating_add(usage.tokens_out);
        self.cost_usd += usage.cost_usd;
    }
}

/// How much of a budget is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Exceeded,
}

impl Level {
    /// The level of a budget `used_percent` used.
    pub fn of(used_percent: f64) -> Level {
        if used_percent >= EXCEEDED_PERCENT {
            Level::Exceeded
        } else if used_percent >= WARNING_PERCENT {
            Level::Warning
        } else {
            Level::Ok
        }
    }
}

/// A budget with its spend in the current period: the wire shape of a budget and the data
/// of `budget.warning` / `budget.exceeded`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BudgetStatus {
    pub scope: String,
    pub period: &'static str,
    pub period_start: String,
    pub max_tokens: Option<i64>,
    pub max_cost_usd: Option<f64>,
    pub spent_tokens: i64,
    pub spent_cost_usd: f64,
    pub remaining_tokens: Option<i64>,
    pub remaining_cost_usd: Option<f64>,
    /// The largest share of a limit used, in percent.
    pub used_percent: f64,
    pub status: Level,
}

impl Budget {
    /// The budget's status with `spend` in the period containing `now`.
    pub fn status(&self, spend: Spend, now: i64) -> BudgetStatus {
        let mut used_percent: f64 = 0.0;
        if let Some(max) = self.max_tokens.filter(|m| *m > 0) {
            used_percent = used_percent.max(spend.tokens as f64 * 100.0 / max as f64);
        }
        if let Some(max) = self.max_cost_usd.filter(|m| *m > 0.0) {
            used_percent = used_percent.max(spend.cost_usd * 100.0 / max);
        }
        BudgetStatus {
            scope: self.scope.to_string(),
            period: self.period.as_str(),
            period_start: format_micros(self.period.start(now)),
            max_tokens: self.max_tokens,
            max_cost_usd: self.max_cost_usd,
            spent_tokens: spend.tokens,
            spent_cost_usd: spend.cost_usd,
            remaining_tokens: self
                .max_tokens
                .map(|m| m.saturating_sub(spend.tokens).max(0)),
            remaining_cost_usd: self.max_cost_usd.map(|m| (m - spend.cost_usd).max(0.0)),
            used_percent,
            status: Level::of(used_percent),
        }
    }

    /// The topics `status` calls for that have not been announced yet in the period
    /// containing `now`, in order (warning before exceeded); marks them announced.
    pub fn announce(&mut self, status: &BudgetStatus, now: i64) -> Vec<&'static str> {
        let key = self.period.key(now);
        let mut topics = Vec::new();
        if status.status >= Level::Warning && self.warned_period != key {
            self.warned_period.clone_from(&key);
            topics.push(TOPIC_WARNING);
        }
        if status.status >= Level::Exceeded && self.exceeded_period != key {
            self.exceeded_period = key;
            topics.push(TOPIC_EXCEEDED);
        }
        topics
    }
}

/// The answer to a committed usage record.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub usage: Usage,
    /// Scopes whose budget is at or over its limit once this record is counted.
    pub exceeded: Vec<String>,
    /// Budget announcements this record triggered: (topic, status), in order.
    pub announced: Vec<(&'static str, BudgetStatus)>,
}

/// Which records `GET /api/llm/usage` selects (one selector at most).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Selector {
    #[default]
    All,
    Instance(String),
    Project(String),
    SessionTag(String),
}

impl Selector {
    /// The one selector applied, by priority instance > project > session tag; an empty
    /// value counts as not given.
    pub fn pick(
        instance: Option<String>,
        project: Option<String>,
        session_tag: Option<String>,
    ) -> Selector {
        let given = |v: Option<String>| v.filter(|s| !s.is_empty());
        if let Some(i) = given(instance) {
            Selector::Instance(i)
        } else if let Some(p) = given(project) {
            Selector::Project(p)
        } else if let Some(t) = given(session_tag) {
            Selector::SessionTag(t)
        } else {
            Selector::All
        }
    }
}

/// Filters of a usage listing; instants inclusive, unix microseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageFilter {
    pub selector: Selector,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// The column a usage summary groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Project,
    Instance,
    Model,
    SessionTag,
}

impl GroupBy {
    /// `project` (also when absent or empty), `instance`, `model` or `session_tag`.
    pub fn parse(raw: Option<&str>) -> Result<Self, LlmError> {
        match raw.unwrap_or("") {
            "" | "project" => Ok(GroupBy::Project),
            "instance" => Ok(GroupBy::Instance),
            "model" => Ok(GroupBy::Model),
            "session_tag" => Ok(GroupBy::SessionTag),
            other => Err(LlmError::Invalid(format!(
                "group_by must be project, instance, model or session_tag, got {other:?}"
            ))),
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Project => "project",
            GroupBy::Instance => "instance",
            GroupBy::Model => "model",
            GroupBy::SessionTag => "session_tag",
        }
    }
}

/// Sums over a set of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub total_tokens_in: i64,
    pub total_tokens_out: i64,
    pub total_cost_usd: f64,
    pub request_count: i64,
}

impl Totals {
    /// Adds `other` to these sums.
    pub fn add(&mut self, other: &Totals) {
        self.total_tokens_in = self.total_tokens_in.saturating_add(other.total_tokens_in);
        self.total_tokens_out = self.total_tokens_out.saturating_add(other.total_tokens_out);
        self.total_cost_usd += other.total_cost_usd;
        self.request_count += other.request_count;
    }
}

/// `GET /api/llm/usage/summary`: sums per group value and over everything in range.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UsageSummary {
    pub groups: BTreeMap<String, Totals>,
    pub total: Totals,
}

/// What went wrong in the LLM domain.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{0}")]
    Invalid(String),
    #[error("no budget for scope {0}")]
    NotFound(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the LLM ledger is not running")]
    Unavailable,
}

impl DomainError for LlmError {
    fn kind(&self) -> ErrorKind {
        match self {
            LlmError::Invalid(_) => ErrorKind::BadRequest,
            LlmError::NotFound(_) => ErrorKind::NotFound,
            LlmError::Storage(_) => ErrorKind::Internal,
            LlmError::Unavailable => ErrorKind::Unavailable,
        }
    }
}

impl From<sea_orm::DbErr> for LlmError {
    fn from(e: sea_orm::DbErr) -> Self {
        LlmError::Storage(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix microseconds of an RFC 3339 instant.
    fn at(s: &str) -> i64 {
        crate::time::parse_instant(s).unwrap()
    }

    #[test]
    fn periods_start_at_utc_midnight_and_on_the_first_of_the_month() {
        let cases = [
            (
                Period::Day,
                "2026-11-21T17:45:12.5Z",
                "2026-11-21T00:00:00Z",
                "2026-11-21",
            ),
            (
                Period::Day,
                "2026-11-21T00:00:00Z",
                "2026-11-21T00:00:00Z",
                "2026-11-21",
            ),
            (
                Period::Day,
                "2026-11-21T23:59:59.999999Z",
                "2026-11-21T00:00:00Z",
                "2026-11-21",
            ),
            (
                Period::Day,
                "2026-11-22T01:00:00+03:00",
                "2026-11-21T00:00:00Z",
                "2026-11-21",
            ),
            (
                Period::Month,
                "2026-11-21T17:45:12Z",
                "2026-11-01T00:00:00Z",
                "2026-11",
            ),
            (
                Period::Month,
                "2026-12-31T23:59:59.999999Z",
                "2026-12-01T00:00:00Z",
                "2026-12",
            ),
            (
                Period::Month,
                "2027-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
                "2027-01",
            ),
            (
                Period::Day,
                "2027-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
                "2027-01-01",
            ),
            (
                Period::Month,
                "2028-02-29T12:00:00Z",
                "2028-02-01T00:00:00Z",
                "2028-02",
            ),
        ];
        for (period, now, start, key) in cases {
            assert_eq!(period.start(at(now)), at(start), "{period:?} {now}");
            assert_eq!(period.key(at(now)), key, "{period:?} {now}");
        }
    }

    #[test]
    fn periods_and_scopes_parse() {
        assert_eq!(Period::parse("day"), Some(Period::Day));
        assert_eq!(Period::parse("month"), Some(Period::Month));
        assert_eq!(Period::parse("week"), None);
        let cases: [(&str, Option<Scope>); 8] = [
            ("project:p", Some(Scope::Project("p".into()))),
            ("project:a:b", Some(Scope::Project("a:b".into()))),
            ("instance:i-1", Some(Scope::Instance("i-1".into()))),
            ("project:", None),
            ("instance:", None),
            ("team:x", None),
            ("project", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(Scope::parse(raw).ok(), want, "{raw:?}");
        }
        assert_eq!(Scope::Instance("i".into()).to_string(), "instance:i");
    }

    fn budget(max_tokens: Option<i64>, max_cost_usd: Option<f64>) -> Budget {
        BudgetIn {
            period: Period::Day,
            max_tokens,
            max_cost_usd,
        }
        .budget(Scope::Project("p".into()), 0)
    }

    #[test]
    fn status_uses_the_larger_share_and_the_thresholds() {
        let now = at("2026-11-21T12:00:00Z");
        let cases = [
            (Some(1000), None, 0, 0.0, 0.0, Level::Ok),
            (Some(1000), None, 799, 0.0, 79.9, Level::Ok),
            (Some(1000), None, 800, 0.0, 80.0, Level::Warning),
            (Some(1000), None, 999, 0.0, 99.9, Level::Warning),
            (Some(1000), None, 1000, 0.0, 100.0, Level::Exceeded),
            (Some(1000), None, 1500, 0.0, 150.0, Level::Exceeded),
            (None, Some(2.0), 10_000, 1.0, 50.0, Level::Ok),
            (Some(1000), Some(2.0), 100, 1.9, 95.0, Level::Warning),
            (Some(100), Some(2.0), 100, 0.5, 100.0, Level::Exceeded),
        ];
        for (max_tokens, max_cost, tokens, cost, percent, level) in cases {
            let s = budget(max_tokens, max_cost).status(
                Spend {
                    tokens,
                    cost_usd: cost,
                },
                now,
            );
            assert!(
                (s.used_percent - percent).abs() < 1e-9,
                "{tokens} {cost}: {}",
                s.used_percent
            );
            assert_eq!(s.status, level, "{tokens} {cost}");
        }
        let s = budget(Some(1000), None).status(
            Spend {
                tokens: 1500,
                cost_usd: 3.0,
            },
            now,
        );
        assert_eq!(s.remaining_tokens, Some(0));
        assert_eq!(s.remaining_cost_usd, None);
        assert_eq!(s.period_start, "2026-11-21T00:00:00.000000Z");
        let wire = serde_json::to_value(&s).unwrap();
        assert_eq!(wire["status"], "exceeded");
        assert_eq!(wire["max_cost_usd"], Value::Null);
        assert_eq!(wire["scope"], "project:p");
        assert_eq!(wire["period"], "day");
    }

    #[test]
    fn each_crossing_is_announced_once_per_period() {
        let day1 = at("2026-11-21T10:00:00Z");
        let day2 = at("2026-11-22T10:00:00Z");
        let mut b = budget(Some(100), None);
        let spend = |tokens| Spend {
            tokens,
            cost_usd: 0.0,
        };
        let mut announce = |tokens, now| {
            let s = b.status(spend(tokens), now);
            b.announce(&s, now)
        };
        assert!(announce(50, day1).is_empty());
        assert_eq!(announce(85, day1), [TOPIC_WARNING]);
        assert!(announce(90, day1).is_empty());
        assert_eq!(announce(100, day1), [TOPIC_EXCEEDED]);
        assert!(announce(200, day1).is_empty());
        // A new day: a jump straight over the limit announces both, in order.
        assert_eq!(announce(120, day2), [TOPIC_WARNING, TOPIC_EXCEEDED]);
        assert!(announce(130, day2).is_empty());
        assert_eq!(b.warned_period, "2026-11-22");
        assert_eq!(b.exceeded_period, "2026-11-22");
    }

    #[test]
    fn one_selector_applies_by_priority() {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_string());
        let cases = [
            (("i", "p", "t"), Selector::Instance("i".into())),
            (("", "p", "t"), Selector::Project("p".into())),
            (("", "", "t"), Selector::SessionTag("t".into())),
            (("", "", ""), Selector::All),
        ];
        for ((i, p, t), want) in cases {
            assert_eq!(Selector::pick(s(i), s(p), s(t)), want);
        }
        assert_eq!(
            Selector::pick(Some(String::new()), Some("p".into()), None),
            Selector::Project("p".into())
        );
    }

    #[test]
    fn group_by_defaults_to_project() {
        assert_eq!(GroupBy::parse(None).unwrap(), GroupBy::Project);
        assert_eq!(GroupBy::parse(Some("")).unwrap(), GroupBy::Project);
        assert_eq!(GroupBy::parse(Some("instance")).unwrap(), GroupBy::Instance);
        assert_eq!(
            GroupBy::parse(Some("session_tag")).unwrap(),
            GroupBy::SessionTag
        );
        assert!(GroupBy::parse(Some("provider")).is_err());
    }
}
