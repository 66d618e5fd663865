//! Template domain types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DomainError, ErrorKind};
use crate::time::format_micros;

/// The kinds of template.
pub const KINDS: &[&str] = &["rules", "contracts", "bundle"];

/// A stored template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub description: String,
    pub kind: String,
    pub data: Value,
    pub tags: Vec<String>,
    pub version: i64,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix microseconds.
    pub updated_at: i64,
}

/// The wire shape; `data` only in full views.
#[derive(Serialize)]
pub struct TemplateOut<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a Value>,
    pub tags: &'a [String],
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl Template {
    /// The full wire shape (with `data`) or a summary.
    pub fn out(&self, with_data: bool) -> TemplateOut<'_> {
        TemplateOut {
            id: &self.id,
            name: &self.name,
            description: &self.description,
            kind: &self.kind,
            data: with_data.then_some(&self.data),
            tags: &self.tags,
            version: self.version,
            created_at: format_micros(self.created_at),
            updated_at: format_micros(self.updated_at),
        }
    }
}

/// Body of `POST /api/templates`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TemplateIn {
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub data: Option<Value>,
    pub tags: Option<Vec<String>>,
}

impl TemplateIn {
    /// The template with the contract's defaults, created at `now`.
    pub fn parse(self, now: i64) -> Result<Template, TemplateError> {
        let id = self
            .id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| TemplateError::Invalid("id is required".into()))?;
        if id.contains('/') {
            return Err(TemplateError::Invalid("id must not contain '/'".into()));
        }
        let name = self
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| TemplateError::Invalid("name is required".into()))?;
        let kind = self
            .kind
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "rules".into());
        if !KINDS.contains(&kind.as_str()) {
            return Err(TemplateError::Invalid(format!(
                "kind must be one of rules, contracts, bundle; got {kind:?}"
            )));
        }
        let data = match (kind.as_str(), self.data) {
            ("rules", None | Some(Value::Null)) => Value::Array(vec![]),
            ("rules", Some(d @ Value::Array(_))) => d,
            ("rules", Some(_)) => {
                return Err(TemplateError::Invalid(
                    "data of a rules template must be an array of rules".into(),
                ));
            }
            (_, None | Some(Value::Null)) => Value::Object(Default::default()),
            (_, Some(d)) => d,
        };
        Ok(Template {
            id,
            name,
            description: self.description.unwrap_or_default(),
            kind,
            data,
            tags: self.tags.unwrap_or_default(),
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }
}

/// What went wrong in the templates domain.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    Invalid(String),
    #[error("template not found: {0}")]
    NotFound(String),
    #[error("template {0} already exists")]
    Exists(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("a domain templates need is not running")]
    Unavailable,
}

impl DomainError for TemplateError {
    fn kind(&self) -> ErrorKind {
        match self {
            TemplateError::Invalid(_) => ErrorKind::BadRequest,
            TemplateError::NotFound(_) => ErrorKind::NotFound,
            TemplateError::Exists(_) => ErrorKind::Conflict,
            TemplateError::Storage(_) => ErrorKind::Internal,
            TemplateError::Unavailable => ErrorKind::Unavailable,
        }
    }
}

impl From<sea_orm::DbErr> for TemplateError {
    fn from(e: sea_orm::DbErr) -> Self {
        TemplateError::Storage(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(kind: Option<&str>, data: Option<Value>) -> TemplateIn {
        TemplateIn {
            id: Some("t".into()),
            name: Some("T".into()),
            kind: kind.map(Into::into),
            data,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_kind_checks() {
        let t = input(None, None).parse(1).unwrap();
        assert_eq!((t.kind.as_str(), &t.data), ("rules", &json!([])));
        let t = input(Some("bundle"), None).parse(1).unwrap();
        assert_eq!(t.data, json!({}));
        let t = input(Some("contracts"), Some(json!("text")))
            .parse(1)
            .unwrap();
        assert_eq!(t.data, json!("text"));
        assert!(input(Some("rules"), Some(json!({}))).parse(1).is_err());
        assert!(input(Some("other"), None).parse(1).is_err());
        assert!(TemplateIn::default().parse(1).is_err());
    }
}
