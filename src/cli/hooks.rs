//! `koor hooks install`: a git pre-commit hook that refuses a commit touching a file
//! another agent has locked (`koor locks check`) or breaking an error-severity rule
//! (`koor validate`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum HooksCmd {
    /// Write .git/hooks/pre-commit running `koor locks check` and `koor validate`.
    Install {
        /// The project whose rules `koor validate` applies (default: the name of the
        /// repository's top folder).
        #[arg(long)]
        project: Option<String>,
        /// Replace a pre-commit hook that koor did not write.
        #[arg(long)]
        force: bool,
    },
}

/// The line that marks a hook as koor's own (rewritten without `--force`).
const MARKER: &str = "# koor pre-commit hook, written by `koor hooks install`";

/// `'text'` for sh.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The hook script for `project`.
pub fn script(project: &str) -> String {
    format!(
        "#!/bin/sh
{MARKER}
# (`--force` replaces any other hook). It refuses the commit when a staged file is locked
# by another agent, or breaks an error-severity rule of the project {project}.
# koor must be on PATH (or KOOR names it); the server and who \"me\" is come from
# ./settings.json or KOOR_SERVER, KOOR_TOKEN and KOOR_INSTANCE.
KOOR=\"${{KOOR:-koor}}\"
\"$KOOR\" locks check || exit 1
git diff --cached --name-only --diff-filter=ACM -z |
  xargs -0 -I{{}} \"$KOOR\" validate {quoted} --file {{}} || exit 1
",
        quoted = sh_quote(project),
    )
}

fn git(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn run(cmd: HooksCmd) -> ExitCode {
    let HooksCmd::Install { project, force } = cmd;
    match install(project, force) {
        Ok((path, project)) => {
            println!(
                "pre-commit hook written to {} (project {project})",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("koor: {e}");
            ExitCode::from(1)
        }
    }
}

fn install(project: Option<String>, force: bool) -> Result<(PathBuf, String), String> {
    let project = match project.filter(|p| !p.is_empty()) {
        Some(p) => p,
        None => {
            let top = git(&["rev-parse", "--show-toplevel"])?;
            Path::new(&top)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| "cannot name the project; give --project".to_string())?
        }
    };
    // Honours core.hooksPath.
    let hooks = PathBuf::from(git(&["rev-parse", "--git-path", "hooks"])?);
    std::fs::create_dir_all(&hooks)
        .map_err(|e| format!("cannot create {}: {e}", hooks.display()))?;
    let path = hooks.join("pre-commit");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.contains(MARKER)
        && !force
    {
        return Err(format!(
            "{} exists and was not written by koor; rerun with --force to replace it",
            path.display()
        ));
    }
    std::fs::write(&path, script(&project))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot make {} executable: {e}", path.display()))?;
    }
    Ok((path, project))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_both_checks_and_quotes_the_project() {
        let s = script("it's");
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(MARKER));
        assert!(s.contains("\"$KOOR\" locks check || exit 1"));
        assert!(s.contains("validate 'it'\\''s' --file {}"), "{s}");
    }
}
