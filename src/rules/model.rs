//! Rule domain types: the stored rule, its input shape with the contract's defaults, and
//! the error type.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ErrorKind};
use crate::time::format_micros;

/// The project whose rules apply to every project.
pub const GLOBAL: &str = "_global";

/// A stored validation rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub project: String,
    pub rule_id: String,
    pub severity: String,
    pub match_type: String,
    pub pattern: String,
    pub message: String,
    pub applies_to: Vec<String>,
    pub stack: String,
    pub source: String,
    pub status: String,
    pub proposed_by: String,
    pub context: String,
    /// Unix microseconds.
    pub created_at: i64,
}

/// The wire shape of a rule (`proposed_by` and `context` only when non-empty).
#[derive(Serialize)]
pub struct RuleOut<'a> {
    pub project: &'a str,
    pub rule_id: &'a str,
    pub severity: &'a str,
    pub match_type: &'a str,
    pub pattern: &'a str,
    pub message: &'a str,
    pub applies_to: &'a [String],
    pub stack: &'a str,
    pub source: &'a str,
    pub status: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub proposed_by: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub context: &'a str,
    pub created_at: String,
}

impl Rule {
    /// True when the rule applies to `stack`: a universal rule (empty stack) always does,
    /// and no (or an empty) requested stack accepts every rule.
    pub fn fits_stack(&self, stack: Option<&str>) -> bool {
        stack.is_none_or(|s| s.is_empty() || self.stack.is_empty() || self.stack == s)
    }

    /// The wire shape.
    pub fn out(&self) -> RuleOut<'_> {
        RuleOut {
            project: &self.project,
            rule_id: &self.rule_id,
            severity: &self.severity,
            match_type: &self.match_type,
            pattern: &self.pattern,
            message: &self.message,
            applies_to: &self.applies_to,
            stack: &self.stack,
            source: &self.source,
            status: &self.status,
            proposed_by: &self.proposed_by,
            context: &self.context,
            created_at: format_micros(self.created_at),
        }
    }
}

/// A rule as clients send it (every field optional; `parse` applies the defaults).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RuleIn {
    pub project: Option<String>,
    pub rule_id: Option<String>,
    pub severity: Option<String>,
    pub match_type: Option<String>,
    pub pattern: Option<String>,
    pub message: Option<String>,
    pub applies_to: Option<Vec<String>>,
    pub stack: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    pub proposed_by: Option<String>,
    pub context: Option<String>,
}

fn required(value: Option<String>, field: &str) -> Result<String, String> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{field} is required"))
}

impl RuleIn {
    /// The rule with defaults applied: `project` (when given) wins over the item's,
    /// `source` defaults to `default_source`, `status` is `status`.
    pub fn parse(
        self,
        project: Option<&str>,
        default_source: &str,
        status: &str,
    ) -> Result<Rule, String> {
        let project = match project {
            Some(p) => p.to_string(),
            None => required(self.project, "project")?,
        };
        if project.contains('/') {
            return Err("project must not contain '/'".into());
        }
        let rule_id = required(self.rule_id, "rule_id")?;
        if rule_id.contains('/') {
            return Err("rule_id must not contain '/'".into());
        }
        {
            use crate::http::bounds;
            bounds::name("project", &project)?;
            bounds::name("rule_id", &rule_id)?;
            for (field, value) in [
                ("stack", &self.stack),
                ("source", &self.source),
                ("proposed_by", &self.proposed_by),
            ] {
                if let Some(v) = value {
                    bounds::name(field, v)?;
                }
            }
            if let Some(applies_to) = &self.applies_to {
                bounds::names("applies_to", applies_to)?;
            }
        }
        let pattern = required(self.pattern, "pattern")?;
        let severity = self
            .severity
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "error".into());
        if severity != "error" && severity != "warning" {
            return Err(format!(
                "severity must be \"error\" or \"warning\", got {severity:?}"
            ));
        }
        let source = self
            .source
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| default_source.into());
        Ok(Rule {
            project,
            rule_id,
            severity,
            match_type: self
                .match_type
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "regex".into()),
            pattern,
            message: self.message.unwrap_or_default(),
            applies_to: self.applies_to.unwrap_or_else(|| vec!["*".into()]),
            stack: self.stack.unwrap_or_default(),
            source,
            status: status.to_string(),
            proposed_by: self.proposed_by.unwrap_or_default(),
            context: self.context.unwrap_or_default(),
            created_at: 0,
        })
    }
}

/// What went wrong in the rules domain.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{0}")]
    Invalid(String),
    #[error("rule {project}/{rule_id} already exists")]
    Exists { project: String, rule_id: String },
    #[error("no proposed rule {project}/{rule_id}")]
    NotProposed { project: String, rule_id: String },
    #[error("no rule {project}/{rule_id}")]
    NotFound { project: String, rule_id: String },
    #[error("storage failure: {0}")]
    Storage(String),
}

impl DomainError for RuleError {
    fn kind(&self) -> ErrorKind {
        match self {
            RuleError::Invalid(_) => ErrorKind::BadRequest,
            RuleError::Exists { .. } => ErrorKind::Conflict,
            RuleError::NotProposed { .. } | RuleError::NotFound { .. } => ErrorKind::NotFound,
            RuleError::Storage(_) => ErrorKind::Internal,
        }
    }
}

impl From<sea_orm::DbErr> for RuleError {
    fn from(e: sea_orm::DbErr) -> Self {
        RuleError::Storage(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let r = RuleIn {
            project: Some("ignored".into()),
            rule_id: Some("r".into()),
            pattern: Some("x".into()),
            ..Default::default()
        }
        .parse(Some("p"), "local", "accepted")
        .unwrap();
        assert_eq!(
            (
                r.project.as_str(),
                r.severity.as_str(),
                r.match_type.as_str(),
                r.source.as_str()
            ),
            ("p", "error", "regex", "local")
        );
        assert_eq!(r.applies_to, ["*"]);
        assert_eq!(r.status, "accepted");
    }

    #[test]
    fn required_fields_and_severity_are_checked() {
        let base = RuleIn {
            project: Some("p".into()),
            rule_id: Some("r".into()),
            pattern: Some("x".into()),
            ..Default::default()
        };
        for broken in [
            RuleIn {
                rule_id: None,
                ..base.clone()
            },
            RuleIn {
                pattern: Some(String::new()),
                ..base.clone()
            },
            RuleIn {
                project: None,
                ..base.clone()
            },
            RuleIn {
                severity: Some("fatal".into()),
                ..base.clone()
            },
        ] {
            assert!(broken.parse(None, "external", "accepted").is_err());
        }
        assert!(base.parse(None, "external", "accepted").is_ok());
    }
}
