//! The scope table of API §25 and the project a path touches: pure functions of the
//! method, the path and the query, applied by the gate before routing.

use actix_web::http::Method;

use crate::keys::Scope;

/// The scope a request needs (API §25).
pub fn required_scope(method: &Method, path: &str, query: &str) -> Scope {
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = *method == Method::GET || *method == Method::HEAD;
    match seg.as_slice() {
        ["api", "keys", ..] | ["api", "admin", ..] => Scope::Admin,
        ["mcp", ..] => Scope::Write,
        _ if get => Scope::Read,
        // The POSTs that only read.
        ["api", "validate", _]
        | ["api", "contracts", _, _, "validate"]
        | ["api", "locks", "check"]
            if *method == Method::POST =>
        {
            Scope::Read
        }
        ["api", "webhooks", ..] | ["api", "templates", ..] => Scope::Admin,
        ["api", "rules", "import"] | ["api", "rules", _, _, "accept" | "reject"] => Scope::Admin,
        ["api", "rules", _, _] if *method == Method::DELETE => Scope::Admin,
        ["api", "metrics", "reset"] => Scope::Admin,
        // A lock released without its token is a forced release.
        ["api", "locks", _] if *method == Method::DELETE && !has_param(query, "token") => {
            Scope::Admin
        }
        _ => Scope::Write,
    }
}

fn has_param(query: &str, name: &str) -> bool {
    query
        .split('&')
        .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == name)
}

/// What a path tells of the project it touches, for a key restricted to some projects.
#[derive(Debug, PartialEq, Eq)]
pub enum Touches {
    /// Nothing project-specific (events, instances, LLM usage, metrics, …).
    Nothing,
    /// This project (percent-decoded).
    Project(String),
    /// A listing or a request whose projects are in its body or its target: the handler
    /// filters or checks.
    Handler,
    /// Projects a restricted key cannot be checked against: refused.
    Unrestricted,
}

/// The project a request to `path` touches (API §25 "Projects").
pub fn touches(path: &str) -> Touches {
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let project = |raw: &str| {
        Touches::Project(
            percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned(),
        )
    };
    match seg.as_slice() {
        ["api", "state"] | ["api", "state", ""] => Touches::Handler,
        ["api", "state", key, ..] => project(key),
        ["api", "specs", p, ..]
        | ["api", "validate", p, ..]
        | ["api", "contracts", p, ..]
        | ["api", "rules", p, _, ..]
            if !p.is_empty() && *p != "propose" =>
        {
            project(p)
        }
        ["api", "rules", "propose"] | ["api", "tasks", ..] | ["api", "locks", ..] => {
            Touches::Handler
        }
        ["api", "rules", ..] | ["api", "templates", ..] | ["api", "compliance", ..] => {
            Touches::Unrestricted
        }
        ["mcp", ..] => Touches::Unrestricted,
        _ => Touches::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_table() {
        let cases: &[(&str, &str, &str, Scope)] = &[
            ("GET", "/api/state/a/b", "", Scope::Read),
            ("GET", "/api/events/subscribe", "", Scope::Read),
            ("GET", "/api/keys", "", Scope::Admin),
            ("GET", "/api/admin/snapshot", "", Scope::Admin),
            ("POST", "/api/validate/p", "", Scope::Read),
            ("PUT", "/api/validate/p/rules", "", Scope::Write),
            ("POST", "/api/contracts/p/n/validate", "", Scope::Read),
            ("POST", "/api/contracts/p/n/test", "", Scope::Write),
            ("POST", "/api/locks/check", "", Scope::Read),
            ("PUT", "/api/state/k", "", Scope::Write),
            ("POST", "/api/events/publish", "", Scope::Write),
            ("POST", "/api/tasks/claim", "", Scope::Write),
            ("POST", "/api/rules/propose", "", Scope::Write),
            ("POST", "/api/rules/p/r/accept", "", Scope::Admin),
            ("DELETE", "/api/rules/p/r", "", Scope::Admin),
            ("POST", "/api/rules/import", "", Scope::Admin),
            ("POST", "/api/webhooks/w/test", "", Scope::Admin),
            ("POST", "/api/templates/t/apply", "", Scope::Admin),
            ("POST", "/api/metrics/reset", "", Scope::Admin),
            ("DELETE", "/api/locks/l", "token=3", Scope::Write),
            ("DELETE", "/api/locks/l", "", Scope::Admin),
            ("POST", "/api/keys", "", Scope::Admin),
            ("POST", "/mcp", "", Scope::Write),
            ("GET", "/mcp", "", Scope::Write),
            ("POST", "/api/liveness/check", "", Scope::Write),
            ("GET", "/api/topology", "format=dot", Scope::Read),
        ];
        for (m, p, q, want) in cases {
            let m = Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(required_scope(&m, p, q), *want, "{m} {p}?{q}");
        }
    }

    #[test]
    fn the_project_a_path_touches() {
        let p = |s: &str| Touches::Project(s.into());
        assert_eq!(touches("/api/state/Proj/x"), p("Proj"));
        assert_eq!(touches("/api/state/a%20b/x"), p("a b"));
        assert_eq!(touches("/api/state"), Touches::Handler);
        assert_eq!(touches("/api/specs/P"), p("P"));
        assert_eq!(touches("/api/specs/P/n"), p("P"));
        assert_eq!(touches("/api/validate/P/rules"), p("P"));
        assert_eq!(touches("/api/rules/P/r/accept"), p("P"));
        assert_eq!(touches("/api/rules/propose"), Touches::Handler);
        assert_eq!(touches("/api/rules/export"), Touches::Unrestricted);
        assert_eq!(touches("/api/contracts/P/n/test"), p("P"));
        assert_eq!(touches("/api/tasks/claim"), Touches::Handler);
        assert_eq!(touches("/api/events/history"), Touches::Nothing);
        assert_eq!(touches("/api/instances"), Touches::Nothing);
        assert_eq!(touches("/api/topology"), Touches::Nothing);
    }
}
