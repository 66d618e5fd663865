//! The validation engine (API §9): rules compiled once, then selection (status, stack,
//! filename globs) and the checks (`regex`, `missing`, `custom`).

use std::sync::Arc;

use regex::Regex;
use serde::Serialize;

use super::model::Rule;
use crate::events::pattern::TopicPattern;

/// Custom check names and the regex each stands for; any other name is used as a regex.
const CUSTOM_CHECKS: &[(&str, &str)] = &[("no-console-log", r"console\.log\(")];

/// Largest compiled program a rule's regex may produce (bounds memory and time).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug)]
enum Check {
    /// Each line with a non-empty match is a violation.
    Lines(Regex),
    /// A violation when the pattern matches nowhere.
    Missing(Regex),
    /// The pattern did not compile: always one error violation.
    Invalid(String),
    /// Unknown match type: never fires.
    Never,
}

/// A rule with its pattern and globs compiled (once per stored rule version).
#[derive(Debug)]
pub struct CompiledRule {
    pub rule: Rule,
    check: Check,
    /// `None` = applies to every file.
    globs: Option<Vec<TopicPattern>>,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub rule_id: String,
    pub severity: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
}

fn compile(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

impl CompiledRule {
    /// Compiles `rule`'s pattern and `applies_to` globs.
    pub fn new(rule: Rule) -> Arc<CompiledRule> {
        let check = match rule.match_type.as_str() {
            "regex" | "custom" | "missing" => {
                let source = if rule.match_type == "custom" {
                    CUSTOM_CHECKS
                        .iter()
                        .find(|(name, _)| *name == rule.pattern)
                        .map_or(rule.pattern.as_str(), |(_, re)| *re)
                } else {
                    rule.pattern.as_str()
                };
                match compile(source) {
                    Ok(re) if rule.match_type == "missing" => Check::Missing(re),
                    Ok(re) => Check::Lines(re),
                    Err(e) => Check::Invalid(e),
                }
            }
            _ => Check::Never,
        };
        let all =
            rule.applies_to.is_empty() || rule.applies_to.iter().any(|g| g.is_empty() || g == "*");
        let globs = (!all).then(|| {
            rule.applies_to
                .iter()
                .map(|g| TopicPattern::segmented(g, '/'))
                .collect()
        });
        Arc::new(CompiledRule { rule, check, globs })
    }

    /// True when the rule is selected for a request with `stack` and `filename`.
    pub fn selected(&self, stack: Option<&str>, filename: Option<&str>) -> bool {
        if self.rule.status != "accepted" {
            return false;
        }
        if !self.rule.fits_stack(stack) {
            return false;
        }
        match (filename, &self.globs) {
            (None, _) | (_, None) => true,
            (Some(name), Some(globs)) => {
                let base = name.rsplit('/').next().unwrap_or(name);
                globs.iter().any(|g| g.matches(name) || g.matches(base))
            }
        }
    }

    fn violation(&self, message: String, line: Option<usize>, matched: Option<&str>) -> Violation {
        Violation {
            rule_id: self.rule.rule_id.clone(),
            severity: self.rule.severity.clone(),
            message,
            line,
            matched: matched.map(String::from),
        }
    }

    fn message_or(&self, default: impl FnOnce() -> String) -> String {
        if self.rule.message.is_empty() {
            default()
        } else {
            self.rule.message.clone()
        }
    }

    /// The violations of `content`.
    pub fn check(&self, content: &str, out: &mut Vec<Violation>) {
        match &self.check {
            Check::Never => {}
            Check::Invalid(e) => out.push(Violation {
                severity: "error".into(),
                ..self.violation(
                    format!("invalid regex pattern '{}': {e}", self.rule.pattern),
                    None,
                    None,
                )
            }),
            Check::Missing(re) => {
                if !re.is_match(content) {
                    let message = self.message_or(|| {
                        format!("required pattern '{}' not found", self.rule.pattern)
                    });
                    out.push(self.violation(message, None, None));
                }
            }
            Check::Lines(re) => {
                for (i, line) in content.split('\n').enumerate() {
                    if let Some(m) = re.find_iter(line).find(|m| !m.as_str().is_empty()) {
                        let message =
                            self.message_or(|| format!("pattern '{}' matched", self.rule.pattern));
                        out.push(self.violation(message, Some(i + 1), Some(m.as_str())));
                    }
                }
            }
        }
    }
}

/// Runs `rules` (already selected and ordered) over `content`.
pub fn validate(rules: &[Arc<CompiledRule>], content: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    for rule in rules {
        rule.check(content, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        match_type: &str,
        pattern: &str,
        applies_to: &[&str],
        stack: &str,
    ) -> Arc<CompiledRule> {
        CompiledRule::new(Rule {
            project: "p".into(),
            rule_id: "r".into(),
            severity: "warning".into(),
            match_type: match_type.into(),
            pattern: pattern.into(),
            message: String::new(),
            applies_to: applies_to.iter().map(|s| s.to_string()).collect(),
            stack: stack.into(),
            source: "local".into(),
            status: "accepted".into(),
            proposed_by: String::new(),
            context: String::new(),
            created_at: 0,
        })
    }

    fn run(r: &Arc<CompiledRule>, content: &str) -> Vec<String> {
        validate(std::slice::from_ref(r), content)
            .into_iter()
            .map(|v| {
                format!(
                    "{}|{}|{}|{}",
                    v.severity,
                    v.line.map(|l| l.to_string()).unwrap_or_default(),
                    v.matched.unwrap_or_default(),
                    v.message
                )
            })
            .collect()
    }

    #[test]
    fn checks_table() {
        let cases: &[(&str, &str, &str, &[&str])] = &[
            (
                "regex",
                r"style\s*=",
                "a\n<p style = 1 style=2>\nb",
                &["warning|2|style =|pattern 'style\\s*=' matched"],
            ),
            ("regex", "x", "", &[]),
            (
                "regex",
                "a*",
                "b\nba",
                &["warning|2|a|pattern 'a*' matched"],
            ),
            (
                "missing",
                "LICENSE",
                "no licence here",
                &["warning|||required pattern 'LICENSE' not found"],
            ),
            ("missing", "LICENSE", "MIT LICENSE", &[]),
            (
                "custom",
                "no-console-log",
                "ok\nconsole.log(1)",
                &["warning|2|console.log(|pattern 'no-console-log' matched"],
            ),
            (
                "custom",
                "TODO",
                "// TODO",
                &["warning|1|TODO|pattern 'TODO' matched"],
            ),
            ("fuzzy", "x", "x", &[]),
        ];
        for (match_type, pattern, content, want) in cases {
            let got = run(&rule(match_type, pattern, &[], ""), content);
            assert_eq!(got, *want, "{match_type} {pattern:?} on {content:?}");
        }
    }

    #[test]
    fn an_invalid_pattern_is_one_error() {
        let got = run(&rule("regex", "(", &[], ""), "a\nb");
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("error|||invalid regex pattern"),
            "{got:?}"
        );
    }

    #[test]
    fn selection_by_glob_and_stack() {
        let cases: &[(&[&str], Option<&str>, bool)] = &[
            (&["*.templ"], Some("button.templ"), true),
            (&["*.templ"], Some("ui/button.templ"), true),
            (&["ui/*.templ"], Some("ui/button.templ"), true),
            (&["*/*.templ"], Some("a/b/button.templ"), false),
            (&["*.templ"], Some("button.go"), false),
            (&["*.go", "*.templ"], Some("x.go"), true),
            (&["*"], Some("a/b/c"), true),
            (&[""], Some("a/b/c"), true),
            (&[], Some("a/b/c"), true),
            (&["*.templ"], None, true),
            (&["[a-c]?.md"], Some("bx.md"), true),
        ];
        for (globs, filename, want) in cases {
            let r = rule("regex", "x", globs, "");
            assert_eq!(r.selected(None, *filename), *want, "{globs:?} {filename:?}");
        }
        let goth = rule("regex", "x", &[], "goth");
        assert!(goth.selected(None, None));
        assert!(goth.selected(Some("goth"), None));
        assert!(!goth.selected(Some("react"), None));
        assert!(rule("regex", "x", &[], "").selected(Some("react"), None));
    }
}
