//! `koor templates …` (API §14).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, path_escape};
use super::specs::{list_arg, usage};

/// `koor templates create …`
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub name: String,
    /// rules, contracts or bundle.
    #[arg(long, default_value = "rules")]
    pub kind: String,
    #[arg(long)]
    pub description: Option<String>,
    /// The template's data: a JSON file (an array of rules for kind rules).
    #[arg(long)]
    pub file: PathBuf,
    /// Comma-separated tags, e.g. "api,strict".
    #[arg(long, value_name = "LIST")]
    pub tags: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCmd {
    /// List templates without their data, newest first.
    List {
        /// Only templates of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only templates with this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Show a template with its data.
    Get { id: String },
    /// Delete a template.
    Delete { id: String },
    /// Create a template from a JSON file.
    Create(CreateArgs),
    /// Apply a template to a project (rules are imported; contracts and bundles become a spec).
    Apply {
        id: String,
        #[arg(long)]
        project: String,
    },
}

/// The body of `POST /api/templates`; `data` is the file's JSON.
pub fn create_body(args: &CreateArgs, file: &[u8]) -> Result<Value, String> {
    let data: Value = serde_json::from_slice(file)
        .map_err(|e| format!("{} is not valid JSON: {e}", args.file.display()))?;
    let mut body = json!({"id": args.id, "name": args.name, "kind": args.kind, "data": data});
    if let Some(d) = &args.description {
        body["description"] = json!(d);
    }
    if let Some(t) = &args.tags {
        body["tags"] = json!(list_arg(t));
    }
    Ok(body)
}

fn template_path(id: &str, suffix: &str) -> String {
    format!("/api/templates/{}{suffix}", path_escape(id))
}

pub async fn run(client: &Client, cmd: TemplatesCmd) -> ExitCode {
    let outcome = match cmd {
        TemplatesCmd::List { kind, tag } => {
            let query: Vec<(&str, String)> = [("kind", kind), ("tag", tag)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
            client.get("/api/templates", &query).await
        }
        TemplatesCmd::Get { id } => client.get(&template_path(&id, ""), &[]).await,
        TemplatesCmd::Delete { id } => {
            client
                .send(Method::DELETE, &template_path(&id, ""), &[], None)
                .await
        }
        TemplatesCmd::Create(args) => {
            let file = match std::fs::read(&args.file) {
                Ok(b) => b,
                Err(e) => return usage(&format!("cannot read {}: {e}", args.file.display())),
            };
            let body = match create_body(&args, &file) {
                Ok(b) => b,
                Err(e) => return usage(&e),
            };
            client.post_json("/api/templates", &body).await
        }
        TemplatesCmd::Apply { id, project } => {
            client
                .post_json(&template_path(&id, "/apply"), &json!({"project": project}))
                .await
        }
    };
    client.print(outcome, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(kind: &str, description: Option<&str>, tags: Option<&str>) -> CreateArgs {
        CreateArgs {
            id: "strict".into(),
            name: "Strict".into(),
            kind: kind.into(),
            description: description.map(String::from),
            file: PathBuf::from("t.json"),
            tags: tags.map(String::from),
        }
    }

    #[test]
    fn create_bodies_carry_the_file_as_data() {
        let cases = [
            (
                args("rules", None, None),
                "[{\"rule_id\": \"r\", \"pattern\": \"x\"}]",
                json!({"id": "strict", "name": "Strict", "kind": "rules",
                       "data": [{"rule_id": "r", "pattern": "x"}]}),
            ),
            (
                args("bundle", Some("all of it"), Some("api, strict,")),
                "{\"kind\": \"contract\"}",
                json!({"id": "strict", "name": "Strict", "kind": "bundle",
                       "data": {"kind": "contract"}, "description": "all of it",
                       "tags": ["api", "strict"]}),
            ),
        ];
        for (a, file, want) in cases {
            assert_eq!(create_body(&a, file.as_bytes()).unwrap(), want, "{file}");
        }
    }

    #[test]
    fn create_refuses_a_file_that_is_not_json() {
        let e = create_body(&args("rules", None, None), b"rule: x").unwrap_err();
        assert!(e.contains("t.json is not valid JSON"), "{e}");
    }
}
