//! Validation rules and the validation engine (API §9): rule storage through PUT/GET,
//! regex/missing/custom checks, default messages, rule selection by status, stack,
//! filename globs and `_global` rules.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_json};

/// Replaces `project`'s rules; must answer `{"project", "count"}`.
pub async fn put_rules(app: &TestApp, project: &str, rules: Value) {
    let resp = app
        .request(Method::PUT, &format!("/api/validate/{project}/rules"))
        .json(&rules)
        .send()
        .await
        .unwrap();
    let count = rules.as_array().unwrap().len();
    assert_eq!(
        assert_json(resp, StatusCode::OK).await,
        json!({"project": project, "count": count})
    );
}

/// The stored rules of `project` (all statuses, rule_id ascending).
pub async fn rules_of(app: &TestApp, project: &str) -> Vec<Value> {
    let body = app
        .get_json(&format!("/api/validate/{project}/rules"))
        .await;
    assert_eq!(body["project"], project);
    body["rules"].as_array().unwrap().clone()
}

/// The stored rule `rule_id` of `project`.
pub async fn rule(app: &TestApp, project: &str, rule_id: &str) -> Value {
    rules_of(app, project)
        .await
        .into_iter()
        .find(|r| r["rule_id"] == rule_id)
        .unwrap_or_else(|| panic!("no rule {project}/{rule_id}"))
}

/// Validates `request` against `project`; checks the envelope and returns the violations.
pub async fn validate(app: &TestApp, project: &str, request: Value) -> Vec<Value> {
    let body = app
        .post(
            &format!("/api/validate/{project}"),
            Some(request),
            StatusCode::OK,
        )
        .await;
    assert_eq!(body["project"], project);
    let violations = body["violations"].as_array().unwrap().clone();
    assert_eq!(body["count"], violations.len(), "{body}");
    violations
}

/// The rule ids of `violations`, in order.
pub fn fired(violations: &[Value]) -> Vec<String> {
    violations
        .iter()
        .map(|v| v["rule_id"].as_str().unwrap().to_string())
        .collect()
}

fn ids(rules: &[Value]) -> Vec<String> {
    fired(rules)
}

/// (pattern, content, expected (line, match) pairs)
type RegexCase<'a> = (&'a str, &'a str, &'a [(u64, &'a str)]);

#[actix_web::test]
async fn regex_rules_report_each_line_once_with_its_leftmost_non_empty_match() {
    let app = TestApp::spawn().await;
    // (pattern, content, expected (line, match) pairs)
    let cases: &[RegexCase] = &[
        ("a+b", "xaab ab\nnothing\n\nab", &[(1, "aab"), (4, "ab")]),
        (
            r"style\s*=",
            "<div>\n  <span style = 'x'>",
            &[(2, "style =")],
        ),
        (r"\d+", "v12 and 345", &[(1, "12")]),
        // Empty matches never count.
        ("x*", "abc\nax\nxx\n", &[(2, "x"), (3, "xx")]),
        ("^", "a\nb", &[]),
        ("$", "", &[]),
        // The content is split on \n: anchors apply per line.
        ("^end$", "start\nend\n", &[(2, "end")]),
        (
            "(?i)todo",
            "ToDo\nok\nTODO later",
            &[(1, "ToDo"), (3, "TODO")],
        ),
        ("b", "ab\r\nb", &[(1, "b"), (2, "b")]),
        ("needle", "hay", &[]),
    ];
    for (i, (pattern, content, want)) in cases.iter().enumerate() {
        let project = format!("regex{i}");
        put_rules(
            &app,
            &project,
            json!([{"rule_id": "r", "pattern": pattern}]),
        )
        .await;
        let got = validate(&app, &project, json!({"content": content})).await;
        let expected: Vec<Value> = want
            .iter()
            .map(|(line, m)| {
                json!({"rule_id": "r", "severity": "error",
                       "message": format!("pattern '{pattern}' matched"),
                       "line": line, "match": m})
            })
            .collect();
        assert_eq!(got, expected, "pattern {pattern:?} on {content:?}");
    }
}

#[actix_web::test]
async fn explicit_message_and_severity_are_reported_as_stored() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "p",
        json!([{"rule_id": "no-inline-style", "severity": "warning", "pattern": r"style\s*=",
                "message": "Inline styles are not allowed"}]),
    )
    .await;
    let got = validate(&app, "p", json!({"content": "<a style=\"x\">"})).await;
    assert_eq!(
        got,
        [json!({"rule_id": "no-inline-style", "severity": "warning",
                "message": "Inline styles are not allowed", "line": 1, "match": "style="})]
    );
}

#[actix_web::test]
async fn missing_rules_fire_once_when_the_pattern_matches_nowhere_in_the_whole_content() {
    let app = TestApp::spawn().await;
    // (pattern, content, fires)
    let cases: &[(&str, &str, bool)] = &[
        ("data-ai-id", "<div data-ai-id='x'>", false),
        ("data-ai-id", "<div>\n<span>\n</span>", true),
        ("data-ai-id", "", true),
        // The pattern runs over the whole content, not line by line.
        (r"(?s)begin.*end", "begin\nmiddle\nend", false),
        (r"^footer$", "header\nfooter", true),
    ];
    for (i, (pattern, content, fires)) in cases.iter().enumerate() {
        let project = format!("missing{i}");
        put_rules(
            &app,
            &project,
            json!([{"rule_id": "m", "match_type": "missing", "pattern": pattern}]),
        )
        .await;
        let got = validate(&app, &project, json!({"content": content})).await;
        let expected = if *fires {
            vec![json!({"rule_id": "m", "severity": "error",
                         "message": format!("required pattern '{pattern}' not found")})]
        } else {
            vec![]
        };
        assert_eq!(got, expected, "pattern {pattern:?} on {content:?}");
    }
}

#[actix_web::test]
async fn custom_no_console_log_is_builtin_and_other_names_are_regexes() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "p",
        json!([
            {"rule_id": "a-console", "match_type": "custom", "pattern": "no-console-log",
             "severity": "warning"},
            {"rule_id": "b-println", "match_type": "custom", "pattern": r"fmt\.Println"},
        ]),
    )
    .await;
    let content = "let a = 1;\n  console.log(a); console.log(b)\nconsole.logger\nconsole.error(x)\nfmt.Println(\"x\")";
    let got = validate(&app, "p", json!({"content": content})).await;
    assert_eq!(fired(&got), ["a-console", "b-println"], "{got:?}");
    let console = &got[0];
    assert_eq!(console["severity"], "warning");
    assert_eq!(console["line"], 2);
    assert_eq!(console["match"], "console.log(");
    let message = console["message"].as_str().unwrap();
    assert!(
        message.starts_with("pattern '") && message.ends_with("' matched"),
        "{message}"
    );
    assert_eq!(
        got[1],
        json!({"rule_id": "b-println", "severity": "error",
               "message": r"pattern 'fmt\.Println' matched", "line": 5, "match": "fmt.Println"})
    );
    // The custom check name itself is not a literal pattern.
    let got = validate(&app, "p", json!({"content": "no-console-log"})).await;
    assert_eq!(got, Vec::<Value>::new());
}

#[actix_web::test]
async fn an_invalid_regex_yields_exactly_one_error_violation_whatever_the_match_type() {
    let app = TestApp::spawn().await;
    for match_type in ["regex", "missing", "custom"] {
        let project = format!("bad-{match_type}");
        put_rules(
            &app,
            &project,
            json!([{"rule_id": "broken", "match_type": match_type, "pattern": "([a-z",
                    "severity": "warning", "message": "custom text"}]),
        )
        .await;
        for content in ["", "a\nb\n([a-z", "nothing"] {
            let got = validate(&app, &project, json!({"content": content})).await;
            assert_eq!(got.len(), 1, "{match_type} on {content:?}: {got:?}");
            let v = got[0].as_object().unwrap();
            assert_eq!(v["rule_id"], "broken");
            assert_eq!(v["severity"], "error", "{match_type}");
            assert!(
                v["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("invalid regex pattern"),
                "{v:?}"
            );
            assert!(!v.contains_key("line") && !v.contains_key("match"), "{v:?}");
        }
    }
}

#[actix_web::test]
async fn rules_with_an_unknown_match_type_are_stored_but_never_fire() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "p",
        json!([
            {"rule_id": "fuzzy", "match_type": "fuzzy", "pattern": "x"},
            {"rule_id": "glob", "match_type": "glob", "pattern": "("},
            {"rule_id": "real", "pattern": "x"},
        ]),
    )
    .await;
    assert_eq!(rule(&app, "p", "fuzzy").await["match_type"], "fuzzy");
    let got = validate(&app, "p", json!({"content": "x"})).await;
    assert_eq!(fired(&got), ["real"]);
}

#[actix_web::test]
async fn applies_to_globs_match_the_full_filename_or_its_base_name() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "p",
        json!([
            {"rule_id": "blank", "pattern": "X", "applies_to": [""]},
            {"rule_id": "default", "pattern": "X"},
            {"rule_id": "js", "pattern": "X", "applies_to": ["*.js"]},
            {"rule_id": "literal", "pattern": "X", "applies_to": ["button.templ"]},
            {"rule_id": "multi", "pattern": "X", "applies_to": ["*.templ", "*.go"]},
            {"rule_id": "none", "pattern": "X", "applies_to": []},
            {"rule_id": "one-char", "pattern": "X", "applies_to": ["?.go"]},
            {"rule_id": "src-js", "pattern": "X", "applies_to": ["src/*.js"]},
            {"rule_id": "star", "pattern": "X", "applies_to": ["*"]},
        ]),
    )
    .await;
    let always = ["blank", "default", "none", "star"];
    let cases: &[(Option<&str>, &[&str])] = &[
        (Some("app.js"), &["js"]),
        (Some("src/app.js"), &["js", "src-js"]),
        // `*` never crosses `/`; the base name `app.js` does not match `src/*.js`.
        (Some("src/lib/app.js"), &["js"]),
        (Some("app.jsx"), &[]),
        (Some("x.go"), &["multi", "one-char"]),
        (Some("ab.go"), &["multi"]),
        (Some("components/button.templ"), &["literal", "multi"]),
        (Some("button.templ.bak"), &[]),
        (None, &["js", "literal", "multi", "one-char", "src-js"]),
    ];
    for (filename, extra) in cases {
        let mut want: Vec<String> = always
            .iter()
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect();
        want.sort();
        let mut request = json!({"content": "X"});
        if let Some(f) = filename {
            request["filename"] = json!(f);
        }
        let got = validate(&app, "p", request).await;
        assert_eq!(fired(&got), want, "filename {filename:?}");
    }
}

#[actix_web::test]
async fn stack_filtering_needs_equal_stacks_only_when_both_are_set() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "p",
        json!([
            {"rule_id": "any", "pattern": "X"},
            {"rule_id": "goth", "pattern": "X", "stack": "goth"},
            {"rule_id": "react", "pattern": "X", "stack": "react"},
        ]),
    )
    .await;
    let cases: &[(Option<&str>, &[&str])] = &[
        (None, &["any", "goth", "react"]),
        (Some(""), &["any", "goth", "react"]),
        (Some("goth"), &["any", "goth"]),
        (Some("react"), &["any", "react"]),
        (Some("vue"), &["any"]),
    ];
    for (stack, want) in cases {
        let mut request = json!({"content": "X"});
        if let Some(s) = stack {
            request["stack"] = json!(s);
        }
        let got = validate(&app, "p", request).await;
        assert_eq!(fired(&got), *want, "stack {stack:?}");
    }

    // The rule listing filters the same way: the stack or universal.
    for (query, want) in [
        ("", vec!["any", "goth", "react"]),
        ("?stack=goth", vec!["any", "goth"]),
        ("?stack=vue", vec!["any"]),
    ] {
        let body = app.get_json(&format!("/api/validate/p/rules{query}")).await;
        assert_eq!(ids(body["rules"].as_array().unwrap()), want, "{query}");
    }
}

#[actix_web::test]
async fn global_rules_apply_to_every_project_after_its_own_and_never_twice() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "_global",
        json!([
            {"rule_id": "g-b", "pattern": "X"},
            {"rule_id": "shared", "pattern": "X"},
            {"rule_id": "g-a", "pattern": "X"},
        ]),
    )
    .await;
    put_rules(
        &app,
        "web",
        json!([
            {"rule_id": "p-z", "pattern": "X"},
            {"rule_id": "shared", "pattern": "X", "severity": "warning"},
            {"rule_id": "p-a", "pattern": "X"},
        ]),
    )
    .await;
    let got = validate(&app, "web", json!({"content": "X"})).await;
    assert_eq!(
        fired(&got),
        ["p-a", "p-z", "shared", "g-a", "g-b", "shared"]
    );
    assert_eq!(got[2]["severity"], "warning");
    assert_eq!(got[5]["severity"], "error");

    let got = validate(&app, "elsewhere", json!({"content": "X"})).await;
    assert_eq!(fired(&got), ["g-a", "g-b", "shared"]);
    let got = validate(&app, "_global", json!({"content": "X"})).await;
    assert_eq!(fired(&got), ["g-a", "g-b", "shared"]);

    // The project's listing holds its own rules only.
    assert_eq!(ids(&rules_of(&app, "web").await), ["p-a", "p-z", "shared"]);
    assert_eq!(rules_of(&app, "elsewhere").await, Vec::<Value>::new());
}

#[actix_web::test]
async fn only_accepted_rules_fire() {
    let app = TestApp::spawn().await;
    put_rules(&app, "p", json!([{"rule_id": "local", "pattern": "X"}])).await;
    for (project, rule_id) in [
        ("p", "pending"),
        ("p", "refused"),
        ("p", "yes"),
        ("_global", "global-pending"),
    ] {
        app.post(
            "/api/rules/propose",
            Some(json!({"project": project, "rule_id": rule_id, "pattern": "X"})),
            StatusCode::OK,
        )
        .await;
    }
    app.post("/api/rules/p/refused/reject", None, StatusCode::OK)
        .await;
    app.post("/api/rules/p/yes/accept", None, StatusCode::OK)
        .await;
    let got = validate(&app, "p", json!({"content": "X"})).await;
    assert_eq!(fired(&got), ["local", "yes"]);
    // Every status is listed.
    let statuses: Vec<(String, String)> = rules_of(&app, "p")
        .await
        .iter()
        .map(|r| {
            (
                r["rule_id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("local", "accepted"),
        ("pending", "proposed"),
        ("refused", "rejected"),
        ("yes", "accepted"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(statuses, expected);
}

#[actix_web::test]
async fn put_stores_defaults_forces_the_path_project_and_accepted_status() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "alpha",
        json!([
            {"rule_id": "r2", "pattern": "y", "status": "rejected", "source": "learned",
             "severity": "warning", "match_type": "missing", "message": "m",
             "applies_to": ["*.go"], "stack": "go"},
            {"rule_id": "r1", "pattern": "x", "project": "beta", "status": "proposed"},
        ]),
    )
    .await;
    let rules = rules_of(&app, "alpha").await;
    assert_eq!(ids(&rules), ["r1", "r2"]);
    let r1 = &rules[0];
    assert!(r1["created_at"].as_str().unwrap().ends_with('Z'), "{r1}");
    assert_eq!(
        *r1,
        json!({"project": "alpha", "rule_id": "r1", "severity": "error", "match_type": "regex",
               "pattern": "x", "message": "", "applies_to": ["*"], "stack": "",
               "source": "local", "status": "accepted", "created_at": r1["created_at"]})
    );
    let r2 = &rules[1];
    assert_eq!(
        *r2,
        json!({"project": "alpha", "rule_id": "r2", "severity": "warning",
               "match_type": "missing", "pattern": "y", "message": "m",
               "applies_to": ["*.go"], "stack": "go", "source": "learned",
               "status": "accepted", "created_at": r2["created_at"]})
    );
    assert_eq!(rules_of(&app, "beta").await, Vec::<Value>::new());
    let got = validate(&app, "alpha", json!({"content": "x"})).await;
    assert_eq!(fired(&got), ["r1", "r2"]);
}

#[actix_web::test]
async fn put_replaces_the_whole_set_and_an_empty_array_clears_it() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "p",
        json!([{"rule_id": "old-1", "pattern": "a"}, {"rule_id": "old-2", "pattern": "b"}]),
    )
    .await;
    put_rules(
        &app,
        "p",
        json!([{"rule_id": "new-b", "pattern": "c"}, {"rule_id": "new-a", "pattern": "d"}]),
    )
    .await;
    assert_eq!(ids(&rules_of(&app, "p").await), ["new-a", "new-b"]);
    let got = validate(&app, "p", json!({"content": "a\nb\nc"})).await;
    assert_eq!(fired(&got), ["new-b"]);

    put_rules(&app, "p", json!([])).await;
    assert_eq!(
        app.get_json("/api/validate/p/rules").await,
        json!({"project": "p", "rules": []})
    );
    assert_eq!(
        app.post(
            "/api/validate/p",
            Some(json!({"content": "a c d"})),
            StatusCode::OK
        )
        .await,
        json!({"project": "p", "violations": [], "count": 0})
    );
}

#[actix_web::test]
async fn invalid_rule_sets_are_400_and_leave_the_old_set_untouched() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "p",
        json!([{"rule_id": "keep-a", "pattern": "a"}, {"rule_id": "keep-b", "pattern": "b"}]),
    )
    .await;
    let before = rules_of(&app, "p").await;
    let bodies: &[&str] = &[
        r#"[{"rule_id": "x", "pattern": "1"}, {"rule_id": "x", "pattern": "2"}]"#,
        r#"[{"rule_id": "x", "pattern": "1"}, {"pattern": "2"}]"#,
        r#"[{"rule_id": "", "pattern": "1"}]"#,
        r#"[{"rule_id": "x"}]"#,
        r#"[{"rule_id": "x", "pattern": ""}]"#,
        r#"[{"rule_id": 5, "pattern": "1"}]"#,
        r#"[{"rule_id": "x", "pattern": "1"}, 7]"#,
        r#"{"rule_id": "x", "pattern": "1"}"#,
        "not json",
        "",
    ];
    for body in bodies {
        let resp = app
            .request(Method::PUT, "/api/validate/p/rules")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(rules_of(&app, "p").await, before, "after {body}");
    }
}

#[actix_web::test]
async fn rules_are_listed_by_rule_id() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "p",
        json!([
            {"rule_id": "charlie", "pattern": "1"},
            {"rule_id": "alpha", "pattern": "1"},
            {"rule_id": "bravo", "pattern": "1"},
        ]),
    )
    .await;
    assert_eq!(
        ids(&rules_of(&app, "p").await),
        ["alpha", "bravo", "charlie"]
    );
    assert_eq!(
        app.get_json("/api/validate/empty/rules").await,
        json!({"project": "empty", "rules": []})
    );
}

#[actix_web::test]
async fn validate_requires_a_content_string_and_accepts_empty_content() {
    let app = TestApp::spawn().await;
    put_rules(
        &app,
        "p",
        json!([{"rule_id": "need", "match_type": "missing", "pattern": "x"}]),
    )
    .await;
    let bodies: &[&str] = &[
        "",
        "not json",
        "[]",
        "{}",
        r#"{"filename": "a.js"}"#,
        r#"{"content": 5}"#,
        r#"{"content": null}"#,
    ];
    for body in bodies {
        let resp = app
            .request(Method::POST, "/api/validate/p")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }
    let got = validate(&app, "p", json!({"content": ""})).await;
    assert_eq!(fired(&got), ["need"]);
    assert_eq!(
        app.post(
            "/api/validate/norules",
            Some(json!({"content": ""})),
            StatusCode::OK
        )
        .await,
        json!({"project": "norules", "violations": [], "count": 0})
    );
}
