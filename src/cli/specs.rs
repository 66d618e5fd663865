//! `koor specs …`, and the helpers the spec, contract, rules and template commands share.

use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::client::{Client, Outcome, path_escape, read_input};

#[derive(Debug, Subcommand)]
pub enum SpecsCmd {
    /// List a project's specs with version and update time.
    List { project: String },
    /// Print a spec's current value, raw.
    Get {
        #[arg(value_name = "PROJECT/NAME")]
        spec: String,
    },
    /// Store a new version of a spec (JSON from --data, --file or standard input).
    Set {
        #[arg(value_name = "PROJECT/NAME")]
        spec: String,
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
        /// Only write if the current version is N (0 = only if the spec does not exist).
        #[arg(long, value_name = "N")]
        if_version: Option<i64>,
        /// Validate against the JSON Schema stored as spec PROJECT/OTHER first.
        #[arg(long, value_name = "OTHER")]
        schema: Option<String>,
    },
    /// Delete a spec.
    Delete {
        #[arg(value_name = "PROJECT/NAME")]
        spec: String,
        /// Only delete if the current version is N.
        #[arg(long, value_name = "N")]
        if_version: Option<i64>,
    },
}

/// Splits `PROJECT/NAME` on its first `/`: both parts non-empty, NAME without `/`.
pub fn split_spec(arg: &str) -> Result<(&str, &str), String> {
    match arg.split_once('/') {
        Some((project, name)) if !project.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((project, name))
        }
        _ => Err(format!(
            "expected PROJECT/NAME (two non-empty parts separated by one '/'), got {arg:?}"
        )),
    }
}

/// The path of spec PROJECT/NAME given as one argument, or a printed usage error (exit 2).
pub fn spec_path(arg: &str) -> Result<String, ExitCode> {
    let (project, name) = split_spec(arg).map_err(|e| usage(&e))?;
    Ok(format!(
        "/api/specs/{}/{}",
        path_escape(project),
        path_escape(name)
    ))
}

/// Prints a usage error and returns exit code 2.
pub fn usage(message: &str) -> ExitCode {
    eprintln!("koor: {message}");
    ExitCode::from(2)
}

/// Reads `--data`, `--file` or standard input and parses it as JSON; the bytes are kept
/// so that they can be sent unchanged.
pub fn read_json(data: Option<String>, file: Option<PathBuf>) -> Result<(Bytes, Value), String> {
    let bytes = read_input(data, file)?;
    let value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the input is not valid JSON: {e}"))?;
    Ok((bytes, value))
}

/// The JSON body of a successful response. Otherwise the failure is printed (an HTTP
/// error's body to stderr) and exit code 1 is returned.
pub fn json_body(client: &Client, outcome: Outcome) -> Result<Value, ExitCode> {
    match outcome {
        Ok((status, _, body)) if status.is_success() => {
            serde_json::from_slice(&body).map_err(|e| {
                eprintln!("koor: unexpected response: {e}");
                ExitCode::from(1)
            })
        }
        Ok((status, _, _)) if status.as_u16() == 304 => {
            // Never asked for (no If-None-Match is sent), and there is no body to use.
            eprintln!("koor: unexpected response: HTTP 304");
            Err(ExitCode::from(1))
        }
        other => Err(client.print(other, false)),
    }
}

/// A comma-separated list argument, e.g. "a, b" → ["a", "b"].
pub fn list_arg(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Pretty JSON text of a value.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn if_version_query(if_version: Option<i64>) -> Vec<(&'static str, String)> {
    if_version
        .map(|v| vec![("if_version", v.to_string())])
        .unwrap_or_default()
}

pub async fn run(client: &Client, cmd: SpecsCmd) -> ExitCode {
    let (outcome, raw) = match cmd {
        SpecsCmd::List { project } => {
            let path = format!("/api/specs/{}", path_escape(&project));
            (client.get(&path, &[]).await, false)
        }
        SpecsCmd::Get { spec } => {
            let path = match spec_path(&spec) {
                Ok(p) => p,
                Err(code) => return code,
            };
            (client.get(&path, &[]).await, true)
        }
        SpecsCmd::Set {
            spec,
            data,
            file,
            if_version,
            schema,
        } => {
            let path = match spec_path(&spec) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let value = match read_input(data, file) {
                Ok(v) => v,
                Err(e) => return usage(&e),
            };
            let mut query = if_version_query(if_version);
            if let Some(s) = schema {
                query.push(("schema", s));
            }
            (
                client
                    .send(
                        Method::PUT,
                        &path,
                        &query,
                        Some((value, "application/json")),
                    )
                    .await,
                false,
            )
        }
        SpecsCmd::Delete { spec, if_version } => {
            let path = match spec_path(&spec) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let query = if_version_query(if_version);
            (
                client.send(Method::DELETE, &path, &query, None).await,
                false,
            )
        }
    };
    client.print(outcome, raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_arguments_split_on_the_first_slash() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("proj/api", Some(("proj", "api"))),
            (
                "Truck-Wash/api-contract",
                Some(("Truck-Wash", "api-contract")),
            ),
            ("p/a b", Some(("p", "a b"))),
            ("proj", None),
            ("proj/", None),
            ("/api", None),
            ("/", None),
            ("", None),
            ("p/a/b", None),
        ];
        for (arg, want) in cases {
            assert_eq!(split_spec(arg).ok(), *want, "{arg:?}");
        }
    }

    #[test]
    fn spec_paths_escape_both_parts() {
        assert_eq!(
            spec_path("my proj/a?b").ok().as_deref(),
            Some("/api/specs/my%20proj/a%3Fb")
        );
        assert!(spec_path("nope").is_err());
    }

    #[test]
    fn json_input_keeps_the_bytes() {
        let (bytes, value) = read_json(Some("{\"a\": 1}".into()), None).unwrap();
        assert_eq!(&bytes[..], b"{\"a\": 1}");
        assert_eq!(value["a"], 1);
        assert!(read_json(Some("{nope".into()), None).is_err());
    }

    #[test]
    fn lists_are_comma_separated() {
        let cases: [(&str, &[&str]); 4] = [
            ("*.go,*.templ", &["*.go", "*.templ"]),
            (" *.go , ", &["*.go"]),
            ("", &[]),
            ("a", &["a"]),
        ];
        for (raw, want) in cases {
            assert_eq!(list_arg(raw), want, "{raw:?}");
        }
    }
}
