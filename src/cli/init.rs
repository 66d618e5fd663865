//! `koor init` (API §26): sets up the project in the working directory for agents.
//!
//! It writes `.mcp.json` (Claude Code) and `.cursor/mcp.json` (Cursor) with a `koor` MCP
//! server at `{server}/mcp`, a koor section in `AGENTS.md` that teaches the CLI-first
//! workflow, a `CLAUDE.md` section pointing to it, and the client's `settings.json`. It
//! only adds: an entry or section that is missing is added, an identical one is left
//! alone, and a different one is replaced only after a yes (on a terminal) or with
//! `--force`. The token itself is never written: the MCP configs reference `KOOR_TOKEN`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::{Map, Value, json};

use super::client::Client;

/// `koor init`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project's name, used for state keys, queues and rules (default: this folder's
    /// name).
    #[arg(long)]
    pub project: Option<String>,
    /// How many agents will work on the project (1..64, default 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub agents: Option<u32>,
    /// The project's stack (e.g. go, rust, typescript), for registration and validation.
    #[arg(long)]
    pub stack: Option<String>,
    /// Take every default and ask nothing (a changed file is then skipped unless --force).
    #[arg(long)]
    pub yes: bool,
    /// Replace koor's entries and sections that differ, without asking.
    #[arg(long)]
    pub force: bool,
}

/// The answers `koor init` works from.
#[derive(Debug, Clone)]
pub struct Plan {
    pub server: String,
    pub project: String,
    pub agents: u32,
    pub stack: Option<String>,
    /// Whether the server needs a credential (then the MCP configs send `KOOR_TOKEN`).
    pub auth: bool,
}

const BEGIN: &str = "<!-- koor:begin -->";
const END: &str = "<!-- koor:end -->";

/// What happened to one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    /// Left as it was: it differs and the change was not confirmed.
    Skipped,
}

/// Decides whether a differing koor entry may be replaced.
pub trait Consent {
    fn replace(&mut self, what: &str) -> bool;
}

/// `--force` says yes, `--yes` (or no terminal) says no, a terminal asks.
struct Ask {
    force: bool,
    interactive: bool,
}

impl Consent for Ask {
    fn replace(&mut self, what: &str) -> bool {
        if self.force {
            return true;
        }
        if !self.interactive {
            return false;
        }
        dialoguer::Confirm::new()
            .with_prompt(format!(
                "{what} differs from what koor would write; replace it?"
            ))
            .default(false)
            .interact()
            .unwrap_or(false)
    }
}

pub fn run(client: &Client, args: InitArgs) -> ExitCode {
    let interactive =
        !args.yes && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let plan = match plan(client, &args, interactive) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("koor: {e}");
            return ExitCode::from(1);
        }
    };
    let mut consent = Ask {
        force: args.force,
        interactive,
    };
    match write_all(Path::new("."), &plan, &mut consent) {
        Ok(done) => {
            for (path, outcome) in &done {
                let what = match outcome {
                    Outcome::Created => "created",
                    Outcome::Updated => "updated",
                    Outcome::Unchanged => "unchanged",
                    Outcome::Skipped => "skipped (differs; rerun with --force to replace)",
                };
                println!("{what:<9} {}", path.display());
            }
            if plan.auth {
                println!(
                    "The MCP configs send the token from KOOR_TOKEN: export it where your agents run."
                );
            }
            println!(
                "Next: `koor hooks install --project {}` adds the pre-commit check.",
                plan.project
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("koor: {e}");
            ExitCode::from(1)
        }
    }
}

/// The answers: flags and settings, then the defaults, asked on a terminal.
fn plan(client: &Client, args: &InitArgs, interactive: bool) -> Result<Plan, String> {
    let folder = std::env::current_dir()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "project".into());
    let mut plan = Plan {
        server: client.base().to_string(),
        project: args.project.clone().unwrap_or(folder),
        agents: args.agents.unwrap_or(2),
        stack: args.stack.clone().filter(|s| !s.is_empty()),
        auth: client.token().is_some(),
    };
    if interactive {
        let err = |e: dialoguer::Error| format!("cannot read the answer: {e}");
        plan.server = dialoguer::Input::<String>::new()
            .with_prompt("koor server")
            .default(plan.server)
            .interact_text()
            .map_err(err)?;
        plan.project = dialoguer::Input::<String>::new()
            .with_prompt("project name")
            .default(plan.project)
            .interact_text()
            .map_err(err)?;
        plan.agents = dialoguer::Input::<u32>::new()
            .with_prompt("how many agents")
            .default(plan.agents)
            .validate_with(|n: &u32| {
                if (1..=64).contains(n) {
                    Ok(())
                } else {
                    Err("between 1 and 64")
                }
            })
            .interact_text()
            .map_err(err)?;
        let stack = dialoguer::Input::<String>::new()
            .with_prompt("stack (empty for none)")
            .default(plan.stack.clone().unwrap_or_default())
            .allow_empty(true)
            .interact_text()
            .map_err(err)?;
        plan.stack = Some(stack.trim().to_string()).filter(|s| !s.is_empty());
        plan.auth = dialoguer::Confirm::new()
            .with_prompt("does the server need a token (sent from KOOR_TOKEN)?")
            .default(plan.auth)
            .interact()
            .map_err(err)?;
    }
    plan.server = plan.server.trim().trim_end_matches('/').to_string();
    if !plan.server.contains("://") {
        plan.server = format!("http://{}", plan.server);
    }
    if plan.project.trim().is_empty() || plan.project.contains('/') {
        return Err(format!(
            "the project name {:?} must be non-empty and without '/'",
            plan.project
        ));
    }
    Ok(plan)
}

/// Writes every file under `root`, returning what happened to each.
pub fn write_all(
    root: &Path,
    plan: &Plan,
    consent: &mut dyn Consent,
) -> Result<Vec<(PathBuf, Outcome)>, String> {
    let url = format!("{}/mcp", plan.server);
    let mut claude = json!({"type": "http", "url": url});
    let mut cursor = json!({"url": url});
    if plan.auth {
        // Claude Code expands ${VAR}, Cursor ${env:VAR}: the secret stays in the environment.
        claude["headers"] = json!({"Authorization": "Bearer ${KOOR_TOKEN}"});
        cursor["headers"] = json!({"Authorization": "Bearer ${env:KOOR_TOKEN}"});
    }
    let mut done = Vec::new();
    let files: [(&str, &[&str], Value); 3] = [
        (".mcp.json", &["mcpServers", "koor"], claude),
        (".cursor/mcp.json", &["mcpServers", "koor"], cursor),
        (
            "settings.json",
            &["server"],
            Value::String(plan.server.clone()),
        ),
    ];
    for (name, at, value) in files {
        let path = root.join(name);
        done.push((PathBuf::from(name), merge_json(&path, at, value, consent)?));
    }
    let sections = [
        ("AGENTS.md", agents_section(plan)),
        ("CLAUDE.md", claude_section()),
    ];
    for (name, body) in sections {
        let path = root.join(name);
        done.push((PathBuf::from(name), merge_section(&path, &body, consent)?));
    }
    Ok(done)
}

fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Sets the member at `at` (a path of object keys) of the JSON object in `path` to
/// `value`, keeping everything else in the file.
fn merge_json(
    path: &Path,
    at: &[&str],
    value: Value,
    consent: &mut dyn Consent,
) -> Result<Outcome, String> {
    let existing = read_optional(path)?;
    let mut root = match &existing {
        None => Value::Object(Map::new()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(format!(
                    "{} exists and is not a JSON object",
                    path.display()
                ));
            }
        },
    };
    let (last, parents) = at.split_last().ok_or("empty JSON path")?;
    let mut node = &mut root;
    for key in parents {
        let Value::Object(map) = node else {
            return Err(format!("{}: {key} is not a JSON object", path.display()));
        };
        node = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let Value::Object(map) = node else {
        return Err(format!(
            "{}: {} is not a JSON object",
            path.display(),
            at.join(".")
        ));
    };
    let outcome = match map.get(*last) {
        None if existing.is_none() => Outcome::Created,
        None => Outcome::Updated,
        Some(current) if *current == value => return Ok(Outcome::Unchanged),
        Some(_) => {
            if !consent.replace(&format!("{} in {}", at.join("."), path.display())) {
                return Ok(Outcome::Skipped);
            }
            Outcome::Updated
        }
    };
    map.insert(last.to_string(), value);
    let text = serde_json::to_string_pretty(&root).map_err(|e| e.to_string())?;
    write(path, &(text + "\n"))?;
    Ok(outcome)
}

/// Puts `body` between koor's markers in the Markdown file `path`: appended when the file
/// has no koor section, replaced (with consent) when its section differs.
fn merge_section(path: &Path, body: &str, consent: &mut dyn Consent) -> Result<Outcome, String> {
    let section = format!("{BEGIN}\n{}\n{END}\n", body.trim_end());
    let Some(text) = read_optional(path)? else {
        write(path, &section)?;
        return Ok(Outcome::Created);
    };
    let span = text.find(BEGIN).and_then(|start| {
        text[start..]
            .find(END)
            .map(|end| (start, start + end + END.len()))
    });
    let new = match span {
        None => {
            let gap = if text.is_empty() || text.ends_with("\n\n") {
                ""
            } else if text.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{text}{gap}{section}")
        }
        Some((start, end)) => {
            let current = &text[start..end];
            if current == section.trim_end() {
                return Ok(Outcome::Unchanged);
            }
            if !consent.replace(&format!("the koor section of {}", path.display())) {
                return Ok(Outcome::Skipped);
            }
            format!("{}{}{}", &text[..start], section.trim_end(), &text[end..])
        }
    };
    write(path, &new)?;
    Ok(Outcome::Updated)
}

/// `CLAUDE.md`'s section: Claude Code reads AGENTS.md through the `@` import.
fn claude_section() -> String {
    "## koor\n\nThis project's agents coordinate through koor: follow the workflow in @AGENTS.md \
     (the `koor` section)."
        .to_string()
}

/// The koor section of `AGENTS.md`: the CLI-first workflow.
pub fn agents_section(plan: &Plan) -> String {
    let p = &plan.project;
    let stack = plan
        .stack
        .as_ref()
        .map(|s| format!(" --stack {s}"))
        .unwrap_or_default();
    let names: Vec<String> = (1..=plan.agents)
        .map(|i| format!("`{p}-agent-{i}`"))
        .collect();
    let auth = if plan.auth {
        "The server needs a credential: `KOOR_TOKEN` must hold it (the CLI and the MCP \
         configs read it from there).\n"
    } else {
        ""
    };
    format!(
        "## koor: how agents coordinate here

This project's agents share state, events, tasks and locks through the koor server at
{server} (project `{p}`). Use the `koor` command line first: its answers are short, and
every command below is one call. The `koor` MCP server (`.mcp.json`, `.cursor/mcp.json`)
offers the same for clients without a shell.
{auth}
**Who you are.** This project runs {n} agent(s): {names}. Take the first name that
`koor instances list` does not show as active, then:

```sh
koor register {p}-agent-1 --workspace \"$PWD\" --intent \"what you are about to do\"{stack}
koor activate ID                 # the id printed by register
koor config set instance ID      # so locks and tasks know who you are
koor heartbeat ID                # now and then, or you are marked stale
```

**Shared state** (versioned; write with the version you read to avoid lost updates):

```sh
koor state get {p}/plan
koor state set {p}/plan --data '{{\"step\": 2}}' --if-version 1
```

**Events** (tell the others what changed; read what they did):

```sh
koor events publish {p}.progress --data '{{\"done\": \"api tests\"}}'
koor events history --topic '{p}.*' --last 20
```

**Tasks** (the work queue `{p}`: claim, do, complete):

```sh
koor tasks add --queue {p} --data '{{\"do\": \"write the migration\"}}'
koor tasks claim --queue {p}     # prints the task with its id and lease token
koor tasks complete ID TOKEN --result '\"done\"'
```

**Locks** (reserve files before editing them; release when done):

```sh
koor locks acquire 'src/api/**' --reason \"refactoring the handlers\"
koor locks release LOCK_ID TOKEN
koor locks check                 # is any staged file locked by someone else?
```

**Before every commit** `koor locks check` and `koor validate {p} --file F` must pass;
`koor hooks install --project {p}` installs both as a git pre-commit hook.",
        server = plan.server,
        n = plan.agents,
        names = names.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Always(bool);

    impl Consent for Always {
        fn replace(&mut self, _: &str) -> bool {
            self.0
        }
    }

    fn plan() -> Plan {
        Plan {
            server: "http://localhost:9800".into(),
            project: "shop".into(),
            agents: 3,
            stack: Some("rust".into()),
            auth: true,
        }
    }

    #[test]
    fn a_second_run_changes_nothing_and_keeps_other_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("AGENTS.md"), "# Rules\n\nBe kind.\n").unwrap();
        std::fs::write(
            dir.path().join(".mcp.json"),
            r#"{"mcpServers": {"other": {"url": "http://x"}}}"#,
        )
        .unwrap();
        let first = write_all(dir.path(), &plan(), &mut Always(false)).unwrap();
        let outcomes: Vec<&Outcome> = first.iter().map(|(_, o)| o).collect();
        assert_eq!(
            outcomes,
            [
                &Outcome::Updated,
                &Outcome::Created,
                &Outcome::Created,
                &Outcome::Updated,
                &Outcome::Created
            ]
        );
        let agents = std::fs::read_to_string(dir.path().join("AGENTS.md")).unwrap();
        assert!(
            agents.starts_with("# Rules\n\nBe kind.\n\n<!-- koor:begin -->"),
            "{agents}"
        );
        assert!(agents.contains("`shop-agent-3`") && agents.contains("--stack rust"));
        let mcp: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(".mcp.json")).unwrap())
                .unwrap();
        assert_eq!(mcp["mcpServers"]["other"]["url"], "http://x");
        assert_eq!(
            mcp["mcpServers"]["koor"]["url"],
            "http://localhost:9800/mcp"
        );
        assert_eq!(
            mcp["mcpServers"]["koor"]["headers"]["Authorization"],
            "Bearer ${KOOR_TOKEN}"
        );

        let again = write_all(dir.path(), &plan(), &mut Always(false)).unwrap();
        assert!(
            again.iter().all(|(_, o)| *o == Outcome::Unchanged),
            "{again:?}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("AGENTS.md")).unwrap(),
            agents
        );
    }

    #[test]
    fn a_differing_entry_is_replaced_only_with_consent() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path(), &plan(), &mut Always(false)).unwrap();
        let other = Plan {
            server: "http://koor.internal:9800".into(),
            agents: 1,
            ..plan()
        };
        let refused = write_all(dir.path(), &other, &mut Always(false)).unwrap();
        assert!(
            refused
                .iter()
                .all(|(p, o)| *o == Outcome::Skipped || p.ends_with("CLAUDE.md")),
            "{refused:?}"
        );
        let settings = std::fs::read_to_string(dir.path().join("settings.json")).unwrap();
        assert!(settings.contains("http://localhost:9800"), "{settings}");

        let forced = write_all(dir.path(), &other, &mut Always(true)).unwrap();
        assert!(
            forced
                .iter()
                .all(|(p, o)| *o == Outcome::Updated || p.ends_with("CLAUDE.md")),
            "{forced:?}"
        );
        let agents = std::fs::read_to_string(dir.path().join("AGENTS.md")).unwrap();
        assert_eq!(agents.matches(BEGIN).count(), 1);
        assert!(agents.contains("http://koor.internal:9800") && !agents.contains("shop-agent-2"));
    }
}
