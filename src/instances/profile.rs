//! What an instance says about itself beyond its name: the agent that started it, labels,
//! the build it runs, its endpoints, and (from heartbeats) its health and progress.
//!
//! Parsed from a JSON object field by field so that every mistake is a 400 naming the
//! field; every map and string is bounded (documented in docs/api.md, "Instances").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::http::bounds::{self, MAX_NAME_BYTES, MAX_URL_BYTES, OutOfBounds};

/// Most labels on one instance.
pub const MAX_LABELS: usize = 32;
/// Longest label value, in bytes (keys are names: at most 256 bytes).
pub const MAX_LABEL_VALUE_BYTES: usize = 512;
/// Most endpoints on one instance.
pub const MAX_ENDPOINTS: usize = 16;
/// Most health components in one heartbeat.
pub const MAX_COMPONENTS: usize = 32;

/// The code an instance runs; every field at most 256 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    #[serde(default)]
    pub commit: String,
    #[serde(default)]
    pub branch: String,
    #[serde(default)]
    pub version: String,
}

/// How an instance or one of its components is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Degraded,
    Failing,
}

impl HealthStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Failing => "failing",
        }
    }

    fn parse(field: &str, v: &Value) -> Result<HealthStatus, OutOfBounds> {
        match v.as_str() {
            Some("ok") => Ok(HealthStatus::Ok),
            Some("degraded") => Ok(HealthStatus::Degraded),
            Some("failing") => Ok(HealthStatus::Failing),
            _ => Err(OutOfBounds(format!(
                "{field} must be \"ok\", \"degraded\" or \"failing\""
            ))),
        }
    }
}

/// The health an instance reported in its last heartbeat that carried one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    #[serde(default)]
    pub components: BTreeMap<String, HealthStatus>,
}

/// How far an instance is with its current work.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub done: u64,
    #[serde(default)]
    pub total: Option<u64>,
}

/// Everything an instance says about itself, stored as one JSON column.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

/// A change to a [`Profile`]: `None` leaves a field alone, `Some(None)` (JSON `null`)
/// clears it, `Some(Some(v))` replaces it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    pub parent_id: Option<Option<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub build: Option<Option<Build>>,
    pub endpoints: Option<BTreeMap<String, String>>,
    pub health: Option<Option<Health>>,
    pub progress: Option<Option<Progress>>,
}

impl ProfileUpdate {
    /// The profile fields of a request body. `live` admits `health` and `progress` (a
    /// heartbeat); without it they are ignored like any unknown field (a registration).
    pub fn parse(body: &Map<String, Value>, live: bool) -> Result<ProfileUpdate, OutOfBounds> {
        let field = |name: &str| body.get(name);
        let mut up = ProfileUpdate {
            parent_id: field("parent_id").map(parent_id).transpose()?,
            labels: field("labels").map(labels).transpose()?,
            build: field("build").map(build).transpose()?,
            endpoints: field("endpoints").map(endpoints).transpose()?,
            ..Default::default()
        };
        if live {
            up.health = field("health").map(health).transpose()?;
            up.progress = field("progress").map(progress).transpose()?;
        }
        Ok(up)
    }

    /// True when the update changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == ProfileUpdate::default()
    }

    /// `profile` with this update applied.
    pub fn apply_to(&self, profile: &Profile) -> Profile {
        let mut next = profile.clone();
        if let Some(v) = &self.parent_id {
            next.parent_id = v.clone();
        }
        if let Some(v) = &self.labels {
            next.labels = v.clone();
        }
        if let Some(v) = &self.build {
            next.build = v.clone();
        }
        if let Some(v) = &self.endpoints {
            next.endpoints = v.clone();
        }
        if let Some(v) = &self.health {
            next.health = v.clone();
        }
        if let Some(v) = &self.progress {
            next.progress = v.clone();
        }
        next
    }
}

fn is_null(v: &Value) -> bool {
    v.is_null()
}

fn parent_id(v: &Value) -> Result<Option<String>, OutOfBounds> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => {
            bounds::name("parent_id", s)?;
            Ok(Some(s.clone()))
        }
        _ => Err(OutOfBounds(
            "parent_id must be a string (an instance id)".into(),
        )),
    }
}

/// A JSON object of strings, at most `max` entries, keys bounded as names and values by
/// `check`; `null` is the empty map.
fn string_map(
    field: &str,
    v: &Value,
    max: usize,
    check: impl Fn(&str, &str) -> Result<(), OutOfBounds>,
) -> Result<BTreeMap<String, String>, OutOfBounds> {
    if is_null(v) {
        return Ok(BTreeMap::new());
    }
    let Some(obj) = v.as_object() else {
        return Err(OutOfBounds(format!("{field} must be an object of strings")));
    };
    if obj.len() > max {
        return Err(OutOfBounds(format!("{field} has more than {max} entries")));
    }
    let mut out = BTreeMap::new();
    for (k, val) in obj {
        if k.is_empty() {
            return Err(OutOfBounds(format!("{field} keys must not be empty")));
        }
        bounds::name(&format!("{field} key"), k)?;
        let Some(s) = val.as_str() else {
            return Err(OutOfBounds(format!("{field}.{k} must be a string")));
        };
        check(&format!("{field}.{k}"), s)?;
        out.insert(k.clone(), s.to_string());
    }
    Ok(out)
}

fn labels(v: &Value) -> Result<BTreeMap<String, String>, OutOfBounds> {
    string_map("labels", v, MAX_LABELS, |f, s| {
        bounds::bounded(f, s, MAX_LABEL_VALUE_BYTES)
    })
}

fn endpoints(v: &Value) -> Result<BTreeMap<String, String>, OutOfBounds> {
    string_map("endpoints", v, MAX_ENDPOINTS, |f, s| {
        bounds::bounded(f, s, MAX_URL_BYTES)?;
        let url = reqwest::Url::parse(s)
            .map_err(|e| OutOfBounds(format!("{f} is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") || !url.has_host() {
            return Err(OutOfBounds(format!(
                "{f} must be an http(s) or ws(s) URL with a host"
            )));
        }
        Ok(())
    })
}

fn short(field: &str, v: Option<&Value>) -> Result<String, OutOfBounds> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => {
            bounds::bounded(field, s, MAX_NAME_BYTES)?;
            Ok(s.clone())
        }
        Some(_) => Err(OutOfBounds(format!("{field} must be a string"))),
    }
}

fn build(v: &Value) -> Result<Option<Build>, OutOfBounds> {
    if is_null(v) {
        return Ok(None);
    }
    let Some(obj) = v.as_object() else {
        return Err(OutOfBounds(
            "build must be an object {\"commit\", \"branch\", \"version\"}".into(),
        ));
    };
    Ok(Some(Build {
        commit: short("build.commit", obj.get("commit"))?,
        branch: short("build.branch", obj.get("branch"))?,
        version: short("build.version", obj.get("version"))?,
    }))
}

fn health(v: &Value) -> Result<Option<Health>, OutOfBounds> {
    if is_null(v) {
        return Ok(None);
    }
    let Some(obj) = v.as_object() else {
        return Err(OutOfBounds(
            "health must be an object {\"status\", \"components\"}".into(),
        ));
    };
    let status = HealthStatus::parse("health.status", obj.get("status").unwrap_or(&Value::Null))?;
    let mut components = BTreeMap::new();
    match obj.get("components") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            if map.len() > MAX_COMPONENTS {
                return Err(OutOfBounds(format!(
                    "health.components has more than {MAX_COMPONENTS} entries"
                )));
            }
            for (name, st) in map {
                if name.is_empty() {
                    return Err(OutOfBounds(
                        "health.components keys must not be empty".into(),
                    ));
                }
                bounds::name("health.components key", name)?;
                components.insert(
                    name.clone(),
                    HealthStatus::parse(&format!("health.components.{name}"), st)?,
                );
            }
        }
        Some(_) => {
            return Err(OutOfBounds(
                "health.components must be an object of statuses".into(),
            ));
        }
    }
    Ok(Some(Health { status, components }))
}

fn count(field: &str, v: Option<&Value>) -> Result<Option<u64>, OutOfBounds> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| OutOfBounds(format!("{field} must be an integer >= 0"))),
    }
}

fn progress(v: &Value) -> Result<Option<Progress>, OutOfBounds> {
    if is_null(v) {
        return Ok(None);
    }
    let Some(obj) = v.as_object() else {
        return Err(OutOfBounds(
            "progress must be an object {\"phase\", \"done\", \"total\"}".into(),
        ));
    };
    let done = count("progress.done", obj.get("done"))?.unwrap_or(0);
    let total = count("progress.total", obj.get("total"))?;
    if total.is_some_and(|t| done > t) {
        return Err(OutOfBounds(
            "progress.done must not exceed progress.total".into(),
        ));
    }
    Ok(Some(Progress {
        phase: short("progress.phase", obj.get("phase"))?,
        done,
        total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value, live: bool) -> Result<ProfileUpdate, String> {
        ProfileUpdate::parse(v.as_object().unwrap(), live).map_err(|e| e.0)
    }

    #[test]
    fn every_field_parses_and_applies() {
        let up = parse(
            json!({
                "parent_id": "p",
                "labels": {"team": "core"},
                "build": {"commit": "abc", "branch": "main"},
                "endpoints": {"health": "http://localhost:8080/health"},
                "health": {"status": "degraded", "components": {"db": "failing"}},
                "progress": {"phase": "tests", "done": 3, "total": 10},
            }),
            true,
        )
        .unwrap();
        let p = up.apply_to(&Profile::default());
        assert_eq!(p.parent_id.as_deref(), Some("p"));
        assert_eq!(p.labels["team"], "core");
        assert_eq!(p.build.as_ref().unwrap().version, "");
        assert_eq!(p.health.as_ref().unwrap().status, HealthStatus::Degraded);
        assert_eq!(p.progress.as_ref().unwrap().total, Some(10));
        // Null clears, absence keeps.
        let cleared = parse(json!({"health": null, "labels": null}), true)
            .unwrap()
            .apply_to(&p);
        assert!(cleared.health.is_none() && cleared.labels.is_empty());
        assert_eq!(cleared.progress, p.progress);
    }

    #[test]
    fn registration_ignores_live_fields() {
        let up = parse(json!({"health": {"status": "bad"}}), false).unwrap();
        assert!(up.is_empty());
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (json!({"labels": ["a"]}), "labels must be an object"),
            (json!({"labels": {"a": 1}}), "labels.a must be a string"),
            (json!({"labels": {"": "x"}}), "keys must not be empty"),
            (json!({"parent_id": 7}), "parent_id must be a string"),
            (json!({"build": "x"}), "build must be an object"),
            (
                json!({"build": {"commit": 1}}),
                "build.commit must be a string",
            ),
            (json!({"endpoints": {"h": "not a url"}}), "not a valid URL"),
            (json!({"endpoints": {"h": "file:///etc"}}), "http(s)"),
            (
                json!({"health": {"status": "fine"}}),
                "health.status must be",
            ),
            (
                json!({"health": {"status": "ok", "components": {"db": "x"}}}),
                "health.components.db",
            ),
            (json!({"progress": {"done": -1}}), "progress.done must be"),
            (
                json!({"progress": {"done": 5, "total": 2}}),
                "must not exceed",
            ),
        ];
        for (body, want) in cases {
            let err = parse(body.clone(), true).unwrap_err();
            assert!(err.contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn maps_are_bounded() {
        let many: Map<String, Value> = (0..=MAX_LABELS)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect();
        let err = parse(json!({"labels": many}), false).unwrap_err();
        assert!(err.contains("more than 32 entries"), "{err}");
        let long = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        assert!(parse(json!({"labels": {"k": long}}), false).is_err());
        let eps: Map<String, Value> = (0..=MAX_ENDPOINTS)
            .map(|i| (format!("e{i}"), json!("http://h/")))
            .collect();
        assert!(parse(json!({"endpoints": eps}), false).is_err());
    }

    #[test]
    fn the_stored_form_round_trips_and_is_small_when_empty() {
        assert_eq!(serde_json::to_string(&Profile::default()).unwrap(), "{}");
        let p = parse(
            json!({"labels": {"a": "b"}, "health": {"status": "ok"}}),
            true,
        )
        .unwrap()
        .apply_to(&Profile::default());
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Profile>(&text).unwrap(), p);
    }
}
