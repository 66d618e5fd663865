//! `koor validate …` (a pre-commit check) and `koor rules …` (API §9, §10).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, path_escape};
use super::specs::{json_body, list_arg, pretty, read_json, usage};

/// `koor validate PROJECT --file F …`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The project whose rules apply (plus the `_global` rules).
    pub project: String,
    /// A file to check (repeat for several).
    #[arg(long, required = true, value_name = "PATH")]
    pub file: Vec<PathBuf>,
    /// Only apply rules of this stack (and universal ones).
    #[arg(long)]
    pub stack: Option<String>,
}

/// `koor rules propose …`
#[derive(Debug, Args)]
pub struct ProposeArgs {
    #[arg(long)]
    pub project: String,
    #[arg(long)]
    pub rule_id: String,
    /// A regex, or a custom check name with --match-type custom.
    #[arg(long)]
    pub pattern: String,
    /// error (the server's default) or warning.
    #[arg(long)]
    pub severity: Option<String>,
    /// regex (the server's default), missing or custom.
    #[arg(long)]
    pub match_type: Option<String>,
    #[arg(long)]
    pub message: Option<String>,
    /// Comma-separated filename globs, e.g. "*.go,*.templ".
    #[arg(long, value_name = "LIST")]
    pub applies_to: Option<String>,
    #[arg(long)]
    pub stack: Option<String>,
    /// Who proposes the rule (recorded as the audit actor).
    #[arg(long, value_name = "NAME")]
    pub proposed_by: Option<String>,
    /// Why the rule is proposed.
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RulesCmd {
    /// Propose a rule; it does not fire until accepted.
    Propose(Box<ProposeArgs>),
    /// Accept a proposed rule, so that it fires.
    Accept { project: String, rule_id: String },
    /// Reject a proposed rule.
    Reject { project: String, rule_id: String },
    /// Delete one rule, whatever its status; the project's other rules stay.
    Delete { project: String, rule_id: String },
    /// List a project's rules, every status; without a project, every project's rules
    /// (optionally only those with --status, e.g. `koor rules list --status proposed`).
    List {
        project: Option<String>,
        /// Only rules of this stack (and universal ones); needs a project.
        #[arg(long, requires = "project")]
        stack: Option<String>,
        /// Only rules with this status (accepted, proposed, rejected); without a project.
        #[arg(long, conflicts_with = "project")]
        status: Option<String>,
    },
    /// Replace a project's rules with a JSON array (from --data, --file or standard input).
    Set {
        project: String,
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Import rules from a JSON array; each item needs project, rule_id and pattern.
    Import {
        #[arg(long)]
        file: PathBuf,
    },
    /// Export the accepted rules of every project as pretty JSON.
    Export {
        /// Comma-separated sources (the server's default: local,learned).
        #[arg(long, value_name = "LIST")]
        source: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

/// The line printed for one violation in `file`, and whether it blocks (severity error).
pub fn violation_line(file: &str, v: &Value) -> (String, bool) {
    let rule = v["rule_id"].as_str().unwrap_or("?");
    let message = v["message"].as_str().unwrap_or("");
    let severity = v["severity"].as_str().unwrap_or("error");
    let place = match v["line"].as_u64() {
        Some(line) => format!("{file}:{line}"),
        None => file.to_string(),
    };
    let blocks = severity == "error";
    let tag = if blocks {
        String::new()
    } else {
        format!(" [{severity}]")
    };
    (format!("{place} {rule} {message}{tag}"), blocks)
}

/// `koor validate`: exit 1 when any violation is an error, 0 otherwise.
pub async fn validate(client: &Client, args: ValidateArgs) -> ExitCode {
    let mut files = Vec::new();
    for path in &args.file {
        match std::fs::read(path) {
            Ok(bytes) => files.push((
                path.to_string_lossy().into_owned(),
                String::from_utf8_lossy(&bytes).into_owned(),
            )),
            Err(e) => return usage(&format!("cannot read {}: {e}", path.display())),
        }
    }
    let path = format!("/api/validate/{}", path_escape(&args.project));
    let mut blocked = false;
    for (name, content) in files {
        let mut body = json!({"content": content, "filename": name});
        if let Some(s) = &args.stack {
            body["stack"] = json!(s);
        }
        let result = match json_body(client, client.post_json(&path, &body).await) {
            Ok(v) => v,
            Err(code) => return code,
        };
        for v in result["violations"].as_array().into_iter().flatten() {
            let (line, blocks) = violation_line(&name, v);
            println!("{line}");
            blocked |= blocks;
        }
    }
    if blocked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A JSON array from --data/--file/standard input, sent unchanged; else a usage error.
fn array_body(data: Option<String>, file: Option<PathBuf>) -> Result<bytes::Bytes, ExitCode> {
    let (bytes, value) = read_json(data, file).map_err(|e| usage(&e))?;
    if !value.is_array() {
        return Err(usage("the rules must be a JSON array"));
    }
    Ok(bytes)
}

fn rule_path(project: &str, rule_id: &str) -> String {
    format!(
        "/api/rules/{}/{}",
        path_escape(project),
        path_escape(rule_id)
    )
}

/// `koor rules …`.
pub async fn run(client: &Client, cmd: RulesCmd) -> ExitCode {
    let outcome = match cmd {
        RulesCmd::Propose(args) => {
            let ProposeArgs {
                project,
                rule_id,
                pattern,
                severity,
                match_type,
                message,
                applies_to,
                stack,
                proposed_by,
                context,
            } = *args;
            let mut body = json!({"project": project, "rule_id": rule_id, "pattern": pattern});
            for (key, value) in [
                ("severity", severity),
                ("match_type", match_type),
                ("message", message),
                ("stack", stack),
                ("proposed_by", proposed_by),
                ("context", context),
            ] {
                if let Some(v) = value {
                    body[key] = json!(v);
                }
            }
            if let Some(globs) = applies_to {
                body["applies_to"] = json!(list_arg(&globs));
            }
            client.post_json("/api/rules/propose", &body).await
        }
        RulesCmd::Accept { project, rule_id } => {
            let path = format!("{}/accept", rule_path(&project, &rule_id));
            client.send(Method::POST, &path, &[], None).await
        }
        RulesCmd::Reject { project, rule_id } => {
            let path = format!("{}/reject", rule_path(&project, &rule_id));
            client.send(Method::POST, &path, &[], None).await
        }
        RulesCmd::Delete { project, rule_id } => {
            let path = rule_path(&project, &rule_id);
            client.send(Method::DELETE, &path, &[], None).await
        }
        RulesCmd::List {
            project: Some(project),
            stack,
            ..
        } => {
            let path = format!("/api/validate/{}/rules", path_escape(&project));
            let query: Vec<(&str, String)> = stack.map(|s| vec![("stack", s)]).unwrap_or_default();
            client.get(&path, &query).await
        }
        RulesCmd::List {
            project: None,
            status,
            ..
        } => {
            let query: Vec<(&str, String)> =
                status.map(|s| vec![("status", s)]).unwrap_or_default();
            client.get("/api/rules", &query).await
        }
        RulesCmd::Set {
            project,
            data,
            file,
        } => {
            let bytes = match array_body(data, file) {
                Ok(b) => b,
                Err(code) => return code,
            };
            let path = format!("/api/validate/{}/rules", path_escape(&project));
            client
                .send(Method::PUT, &path, &[], Some((bytes, "application/json")))
                .await
        }
        RulesCmd::Import { file } => {
            let bytes = match array_body(None, Some(file)) {
                Ok(b) => b,
                Err(code) => return code,
            };
            client
                .send(
                    Method::POST,
                    "/api/rules/import",
                    &[],
                    Some((bytes, "application/json")),
                )
                .await
        }
        RulesCmd::Export { source, output } => {
            let query: Vec<(&str, String)> =
                source.map(|s| vec![("source", s)]).unwrap_or_default();
            let rules = match json_body(client, client.get("/api/rules/export", &query).await) {
                Ok(v) => v,
                Err(code) => return code,
            };
            let text = pretty(&rules);
            return match output {
                None => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Some(path) => match std::fs::write(&path, format!("{text}\n")) {
                    Ok(()) => {
                        let count = rules.as_array().map_or(0, Vec::len);
                        eprintln!("wrote {count} rules to {}", path.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("koor: cannot write {}: {e}", path.display());
                        ExitCode::from(1)
                    }
                },
            };
        }
    };
    client.print(outcome, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_print_file_line_rule_and_message() {
        let cases = [
            (
                json!({"rule_id": "no-inline-style", "severity": "error", "message": "no style=", "line": 3, "match": "style="}),
                "a/b.templ:3 no-inline-style no style=",
                true,
            ),
            (
                json!({"rule_id": "no-console", "severity": "warning", "message": "console.log", "line": 12}),
                "a/b.templ:12 no-console console.log [warning]",
                false,
            ),
            (
                json!({"rule_id": "needs-license", "severity": "error", "message": "required pattern 'MIT' not found"}),
                "a/b.templ needs-license required pattern 'MIT' not found",
                true,
            ),
            (
                json!({"rule_id": "soft", "severity": "warning", "message": "m"}),
                "a/b.templ soft m [warning]",
                false,
            ),
            (
                json!({"rule_id": "r", "message": "m", "line": 1}),
                "a/b.templ:1 r m",
                true,
            ),
        ];
        for (v, want_line, want_blocks) in cases {
            assert_eq!(
                violation_line("a/b.templ", &v),
                (want_line.to_string(), want_blocks),
                "{v}"
            );
        }
    }
}
