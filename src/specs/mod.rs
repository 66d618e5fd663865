//! Specs (API §5): per-project JSON documents, versioned like state.
//!
//! Owns: the `spec_versions` table, through `SpecRegistry` — the same `VersionedStore`
//! actor as state (one implementation of versions, hashes, ETags, preconditions and group
//! commit), keyed `project/name`. Messages in: the state messages, plus `ListPrefix` for
//! a project's specs. Events out: `spec.updated` / `spec.deleted` (project, name, version;
//! never the body). Extension: `PUT …?schema=OTHER` validates the body against the JSON
//! Schema stored as spec `project/OTHER` first (422 with violations, nothing stored).

mod routes;
mod schema;

use serde_json::{Value, json};

use crate::state::{DocKind, Tables, VersionedStore};

pub use routes::routes;
pub use schema::{SchemaCache, SchemaError, SchemaViolation};

/// Specs as a kind of versioned document.
pub struct SpecDocs;

/// The specs domain actor.
pub type SpecRegistry = VersionedStore<SpecDocs>;

/// The store key of spec `name` in `project`.
pub fn spec_key(project: &str, name: &str) -> String {
    format!("{project}/{name}")
}

/// `(project, name)` of a store key.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or((key, ""))
}

impl DocKind for SpecDocs {
    const TABLES: Tables = Tables {
        versions: "spec_versions",
        heads: "spec_heads",
        marks: "spec_marks",
    };
    const SOURCE: &'static str = "specs";
    const UPDATED: &'static str = "spec.updated";
    const DELETED: &'static str = "spec.deleted";
    const AUDIT: [&'static str; 3] = ["spec.put", "spec.rollback", "spec.delete"];

    fn updated(key: &str, version: i64, _hash: &str) -> Value {
        let (project, name) = split_key(key);
        json!({"project": project, "name": name, "version": version})
    }

    fn deleted(key: &str, version: i64) -> Value {
        let (project, name) = split_key(key);
        json!({"project": project, "name": name, "version": version})
    }

    fn key_of(data: &Value) -> Option<String> {
        let project = data.get("project")?.as_str()?;
        let name = data.get("name")?.as_str()?;
        Some(spec_key(project, name))
    }
}
