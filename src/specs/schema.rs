//! JSON Schema checks for spec writes (`?schema=OTHER`): Draft 2020-12, formats asserted,
//! no remote `$ref` (the validator is built without any retriever of files or URLs).
//! Compiled validators are cached by schema key and content hash, so a schema is compiled
//! once per version (a deleted and re-created schema restarts at version 1, so the version
//! alone would not do), not on every write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use crate::error::{DomainError, ErrorKind};
use crate::state::StateEntry;

/// One failed schema assertion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaViolation {
    /// JSON Pointer to the failing location in the document (`""` = the root).
    pub path: String,
    pub message: String,
}

/// Why a document could not be checked, or failed the check.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema spec {0} not found")]
    SchemaNotFound(String),
    #[error("spec {0} is not a valid JSON Schema: {1}")]
    InvalidSchema(String, String),
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the document does not match schema {schema}: {} violation(s)", .violations.len())]
    Violations {
        schema: String,
        violations: Vec<SchemaViolation>,
    },
}

impl DomainError for SchemaError {
    fn kind(&self) -> ErrorKind {
        match self {
            SchemaError::SchemaNotFound(_) => ErrorKind::NotFound,
            SchemaError::InvalidSchema(..) | SchemaError::NotJson(_) => ErrorKind::BadRequest,
            SchemaError::Violations { .. } => ErrorKind::Unprocessable,
        }
    }

    fn details(&self) -> Option<serde_json::Map<String, Value>> {
        match self {
            SchemaError::Violations { violations, .. } => {
                let mut m = serde_json::Map::new();
                m.insert(
                    "violations".into(),
                    serde_json::to_value(violations).unwrap_or_default(),
                );
                Some(m)
            }
            _ => None,
        }
    }
}

/// Compiled validators by schema key, each tagged with the hash it was built from.
#[derive(Default)]
pub struct SchemaCache {
    compiled: Mutex<HashMap<String, (String, Arc<jsonschema::Validator>)>>,
}

impl SchemaCache {
    /// The validator of `schema` (the current entry of the schema spec), compiled at most
    /// once per version.
    fn validator(&self, schema: &StateEntry) -> Result<Arc<jsonschema::Validator>, SchemaError> {
        if let Ok(cache) = self.compiled.lock()
            && let Some((hash, v)) = cache.get(&schema.key)
            && *hash == schema.hash
        {
            return Ok(v.clone());
        }
        let doc: Value = serde_json::from_slice(&schema.value)
            .map_err(|e| SchemaError::InvalidSchema(schema.key.clone(), e.to_string()))?;
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&doc)
            .map_err(|e| SchemaError::InvalidSchema(schema.key.clone(), e.to_string()))?;
        let validator = Arc::new(validator);
        if let Ok(mut cache) = self.compiled.lock() {
            cache.insert(schema.key.clone(), (schema.hash.clone(), validator.clone()));
        }
        Ok(validator)
    }

    /// Checks `body` against `schema`; `Violations` lists every failure.
    pub fn check(&self, schema: &StateEntry, body: &[u8]) -> Result<(), SchemaError> {
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| SchemaError::NotJson(e.to_string()))?;
        let validator = self.validator(schema)?;
        let violations: Vec<SchemaViolation> = validator
            .iter_errors(&doc)
            .map(|e| SchemaViolation {
                path: e.instance_path().as_str().to_string(),
                message: e.to_string(),
            })
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(SchemaError::Violations {
                schema: schema.key.clone(),
                violations,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, version: i64, value: &str) -> StateEntry {
        StateEntry {
            id: version,
            fencing_token: None,
            key: key.into(),
            version,
            hash: format!("{version}-{value}"),
            content_type: "application/json".into(),
            updated_at: 0,
            value: bytes::Bytes::from(value.to_string()),
        }
    }

    const SCHEMA: &str = r#"{"type": "object", "required": ["email"],
        "properties": {"email": {"type": "string", "format": "email"},
                       "age": {"type": "integer", "minimum": 0}}}"#;

    #[test]
    fn violations_name_json_pointers_and_formats_are_checked() {
        let cache = SchemaCache::default();
        let s = entry("p/person", 1, SCHEMA);
        assert!(
            cache
                .check(&s, br#"{"email": "a@b.example", "age": 3}"#)
                .is_ok()
        );
        let Err(SchemaError::Violations { violations, .. }) =
            cache.check(&s, br#"{"email": "not-an-email", "age": -1}"#)
        else {
            panic!("expected violations");
        };
        let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
        assert!(
            paths.contains(&"/email") && paths.contains(&"/age"),
            "{paths:?}"
        );
        let Err(SchemaError::Violations { violations, .. }) = cache.check(&s, b"{}") else {
            panic!("expected violations");
        };
        assert_eq!(violations[0].path, "");
        assert!(matches!(
            cache.check(&s, b"nope"),
            Err(SchemaError::NotJson(_))
        ));
    }

    #[test]
    fn a_new_schema_version_is_recompiled_and_bad_schemas_are_rejected() {
        let cache = SchemaCache::default();
        let v1 = entry("p/s", 1, r#"{"type": "string"}"#);
        assert!(cache.check(&v1, br#""x""#).is_ok());
        let v2 = entry("p/s", 2, r#"{"type": "number"}"#);
        assert!(cache.check(&v2, br#""x""#).is_err());
        let bad = entry("p/bad", 1, r#"{"type": 12}"#);
        assert!(matches!(
            cache.check(&bad, b"1"),
            Err(SchemaError::InvalidSchema(..))
        ));
        let remote = entry("p/remote", 1, r#"{"$ref": "https://example.com/s.json"}"#);
        assert!(
            cache.check(&remote, b"1").is_err(),
            "remote refs are never fetched"
        );
    }
}
