//! Operations (API §26): backup and restore in Go Koor's format, online snapshots, `koor
//! doctor`, `koor init` and the `koor-cli` name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::koor;
use crate::helpers::{TestApp, assert_error, assert_json, koor_bin};

fn out(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every key with its content type, version and value bytes.
async fn state_of(app: &TestApp) -> BTreeMap<String, (String, i64, Vec<u8>)> {
    let list = app.get_json("/api/state").await;
    let mut all = BTreeMap::new();
    for entry in list.as_array().unwrap() {
        let key = entry["key"].as_str().unwrap().to_string();
        let resp = app.get(&format!("/api/state/{key}")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = resp.bytes().await.unwrap().to_vec();
        all.insert(
            key,
            (
                entry["content_type"].as_str().unwrap().to_string(),
                entry["version"].as_i64().unwrap(),
                bytes,
            ),
        );
    }
    all
}

/// Every rule, every status, without its creation time.
async fn rules_of(app: &TestApp) -> Vec<Value> {
    let mut rules = app.get_json("/api/rules").await;
    for rule in rules.as_array_mut().unwrap() {
        rule.as_object_mut().unwrap().remove("created_at");
    }
    rules.as_array().unwrap().clone()
}

async fn put_typed(app: &TestApp, key: &str, body: &[u8], content_type: &str) {
    let resp = app
        .request(Method::PUT, &format!("/api/state/{key}"))
        .header("content-type", content_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_json(resp, StatusCode::OK).await;
}

/// The counts line of `koor restore`.
fn restored(o: &Output) -> String {
    assert!(o.status.success(), "{}", out(o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[actix_web::test]
async fn restore_reads_a_file_laid_out_as_the_go_cli_writes_it_and_a_rerun_changes_nothing() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    // Go's json.MarshalIndent(…, "", "  ") of {"state": map[string]json.RawMessage,
    // "rules": []Rule}: members sorted, each state value re-indented in place, rules as
    // `GET /api/rules/export` gives them for every source.
    let file = r#"{
  "rules": [
    {
      "project": "shop",
      "rule_id": "no-console",
      "severity": "warning",
      "match_type": "regex",
      "pattern": "console\\.log",
      "message": "remove console.log",
      "applies_to": [
        "*.ts",
        "*.js"
      ],
      "stack": "typescript",
      "source": "local",
      "status": "accepted",
      "created_at": "2026-11-02T10:00:00Z"
    },
    {
      "project": "shop",
      "rule_id": "no-todo",
      "severity": "error",
      "match_type": "regex",
      "pattern": "TODO",
      "message": "",
      "applies_to": [
        "*"
      ],
      "stack": "",
      "source": "learned",
      "status": "accepted",
      "proposed_by": "agent-1",
      "context": "seen in review",
      "created_at": "2026-11-02T10:01:00Z"
    }
  ],
  "state": {
    "shop/config": {
      "db": {
        "host": "localhost",
        "port": 5432
      },
      "features": [
        "a",
        "b"
      ]
    },
    "shop/counter": 7,
    "shop/name": "the shop"
  }
}
"#;
    let path = dir.path().join("go-backup.json");
    std::fs::write(&path, file).unwrap();
    let path = path.to_str().unwrap();

    let first = koor(&app.address, dir.path(), &["restore", "--file", path], None).await;
    let line = restored(&first);
    assert!(
        line.contains("state 3 written, 0 unchanged; rules 2 imported, 0 unchanged"),
        "{line}"
    );
    let config: Value = app.get_json("/api/state/shop/config").await;
    assert_eq!(
        config,
        json!({"db": {"host": "localhost", "port": 5432}, "features": ["a", "b"]})
    );
    assert_eq!(app.get_json("/api/state/shop/counter").await, json!(7));
    assert_eq!(
        app.get_json("/api/state/shop/name").await,
        json!("the shop")
    );
    let rules = rules_of(&app).await;
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(rules[0]["rule_id"], "no-console");
    assert_eq!(rules[0]["source"], "local");
    assert_eq!(rules[0]["applies_to"], json!(["*.ts", "*.js"]));
    assert_eq!(rules[1]["source"], "learned");
    assert!(rules.iter().all(|r| r["status"] == "accepted"));
    // The rule fires.
    let checked = app
        .post(
            "/api/validate/shop",
            Some(json!({"filename": "a.ts", "content": "console.log(1)"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        checked["violations"][0]["rule_id"], "no-console",
        "{checked}"
    );

    // Again: nothing is written, no version moves, no rule is re-imported.
    let before = state_of(&app).await;
    let audit_before = app.get_json("/api/audit?limit=500").await;
    let second = koor(&app.address, dir.path(), &["restore", "--file", path], None).await;
    let line = restored(&second);
    assert!(
        line.contains("state 0 written, 3 unchanged; rules 0 imported, 2 unchanged"),
        "{line}"
    );
    assert_eq!(state_of(&app).await, before);
    assert_eq!(app.get_json("/api/audit?limit=500").await, audit_before);

    // Go writes `null` for an empty rule list; a file without rules restores the state.
    let path = dir.path().join("no-rules.json");
    std::fs::write(&path, r#"{"state": {"shop/counter": 8}, "rules": null}"#).unwrap();
    let third = koor(
        &app.address,
        dir.path(),
        &["restore", "--file", path.to_str().unwrap()],
        None,
    )
    .await;
    assert!(
        restored(&third).contains("state 1 written"),
        "{}",
        out(&third)
    );
    assert_eq!(app.get_json("/api/state/shop/counter").await, json!(8));

    // Not a backup: exit 1, nothing written.
    for bad in [
        r#"[1, 2]"#,
        r#"{"other": 1}"#,
        r#"{"rules": [{"project": "p"}]}"#,
    ] {
        std::fs::write(&path, bad).unwrap();
        let o = koor(
            &app.address,
            dir.path(),
            &["restore", "--file", path.to_str().unwrap()],
            None,
        )
        .await;
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", out(&o));
    }
    assert_eq!(rules_of(&app).await.len(), 2);
}

#[actix_web::test]
async fn a_backup_restored_on_a_fresh_server_gives_identical_state_and_rules() {
    let source = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    source
        .put_state("p/config", br#"{"a": 1, "b": [true, null]}"#)
        .await;
    source.put_state("p/config", br#"{"a": 2}"#).await;
    source.put_state("p/deep/key with space", b"[1,2,3]").await;
    source.put_state("p/newline", b"{\"x\":1}\n").await;
    put_typed(&source, "p/readme", b"# Title\n\ntext", "text/markdown").await;
    put_typed(
        &source,
        "p/blob",
        &[0, 159, 146, 150, 255],
        "application/octet-stream",
    )
    .await;
    put_typed(
        &source,
        "p/vendor",
        br#"{"v":1}"#,
        "application/vnd.koor+json",
    )
    .await;
    // Rules of four sources, and a proposal and a rejection that are not backed up.
    source
        .request(Method::PUT, "/api/validate/p/rules")
        .json(&json!([{"rule_id": "local-1", "pattern": "FIXME", "applies_to": ["*.rs"]}]))
        .send()
        .await
        .unwrap();
    for (id, keep) in [
        ("learned-1", true),
        ("learned-2", false),
        ("learned-3", false),
    ] {
        source
            .post(
                "/api/rules/propose",
                Some(json!({"project": "p", "rule_id": id, "pattern": "x", "context": "why"})),
                StatusCode::OK,
            )
            .await;
        if keep {
            source
                .post(&format!("/api/rules/p/{id}/accept"), None, StatusCode::OK)
                .await;
        }
    }
    source
        .post("/api/rules/p/learned-2/reject", None, StatusCode::OK)
        .await;
    source
        .post(
            "/api/rules/import",
            Some(json!([
                {"project": "q", "rule_id": "ext-1", "pattern": "y", "severity": "warning"},
                {"project": "q", "rule_id": "team-1", "pattern": "z", "source": "team"}
            ])),
            StatusCode::OK,
        )
        .await;

    let file = dir.path().join("backup.json");
    let file = file.to_str().unwrap();
    let o = koor(
        &source.address,
        dir.path(),
        &["backup", "--output", file],
        None,
    )
    .await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("6 state keys, 4 rules"),
        "{}",
        out(&o)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a backup is private");
    }
    let written: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    // Go Koor's layout: JSON values as JSON, the rules as an array.
    assert_eq!(written["state"]["p/config"], json!({"a": 2}));
    assert_eq!(written["state"]["p/deep/key with space"], json!([1, 2, 3]));
    assert_eq!(written["rules"].as_array().unwrap().len(), 4);

    let target = TestApp::spawn().await;
    let o = koor(
        &target.address,
        dir.path(),
        &["restore", "--file", file],
        None,
    )
    .await;
    assert!(
        restored(&o).contains("state 6 written, 0 unchanged; rules 4 imported, 0 unchanged"),
        "{}",
        out(&o)
    );
    let values = |s: BTreeMap<String, (String, i64, Vec<u8>)>| {
        s.into_iter()
            .map(|(k, (ct, _, bytes))| (k, (ct, bytes)))
            .collect::<BTreeMap<_, _>>()
    };
    let accepted = |rules: Vec<Value>| {
        rules
            .into_iter()
            .filter(|r| r["status"] == "accepted")
            .map(|mut r| {
                // Who proposed an accepted rule is not part of Go Koor's import.
                let o = r.as_object_mut().unwrap();
                o.remove("proposed_by");
                o.remove("context");
                r
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        values(state_of(&target).await),
        values(state_of(&source).await)
    );
    assert_eq!(
        accepted(rules_of(&target).await),
        accepted(rules_of(&source).await)
    );

    // A second restore is a no-op: every version stays 1.
    let o = koor(
        &target.address,
        dir.path(),
        &["restore", "--file", file],
        None,
    )
    .await;
    assert!(
        restored(&o).contains("state 0 written, 6 unchanged; rules 0 imported, 4 unchanged"),
        "{}",
        out(&o)
    );
    assert!(state_of(&target).await.values().all(|(_, v, _)| *v == 1));

    // And back the other way: the restored server's backup is the same file.
    let again = dir.path().join("again.json");
    let o = koor(
        &target.address,
        dir.path(),
        &["backup", "--output", again.to_str().unwrap()],
        None,
    )
    .await;
    assert!(o.status.success(), "{}", out(&o));
    let mut a: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let mut b: Value = serde_json::from_slice(&std::fs::read(&again).unwrap()).unwrap();
    for v in [&mut a, &mut b] {
        for rule in v["rules"].as_array_mut().unwrap() {
            let o = rule.as_object_mut().unwrap();
            for k in ["created_at", "proposed_by", "context"] {
                o.remove(k);
            }
        }
    }
    assert_eq!(a, b);
}

#[actix_web::test]
async fn the_admin_endpoints_need_the_token_and_answer_json_errors() {
    let app = TestApp::spawn_with_token("s3cret").await;
    for path in ["/api/admin/snapshot", "/api/admin/check"] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_error(resp, StatusCode::UNAUTHORIZED).await;
        let resp = app.request(Method::POST, path).send().await.unwrap();
        assert_error(resp, StatusCode::METHOD_NOT_ALLOWED).await;
    }
    let check = app.get_json("/api/admin/check").await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["integrity"], json!(["ok"]));
    assert_eq!(check["migrations"]["pending"], json!([]));
    assert_eq!(check["migrations"]["applied"], check["migrations"]["known"]);
    assert!(check["database_bytes"].as_u64().unwrap() > 0);
    assert!(check["free_bytes"].as_u64().unwrap() > 0);
    assert!(koor::time::parse_instant(check["time"].as_str().unwrap()).is_some());

    let resp = app.get("/api/admin/snapshot").await;
    if crate::helpers::test_database_url().is_some() {
        // PostgreSQL is backed up with its own tools: a clear refusal, not a 5xx.
        let body = assert_error(resp, StatusCode::CONFLICT).await;
        assert!(
            body["error"].as_str().unwrap().contains("pg_dump"),
            "{body}"
        );
        return;
    }
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/vnd.sqlite3");
    let len: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), len);
    assert!(body.starts_with(b"SQLite format 3\0"));
    // The temporary copy is gone from the data directory.
    let leftovers: Vec<_> = std::fs::read_dir(app.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("snapshot"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Opens `path` as a database and runs `PRAGMA integrity_check`.
async fn integrity_of(path: &Path) -> Vec<String> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let db = koor::db::connect(path, 1).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA integrity_check",
        ))
        .await
        .unwrap();
    let found = rows
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
    db.close().await.unwrap();
    found
}

#[actix_web::test]
async fn a_snapshot_taken_under_16_writers_is_sound_and_holds_every_earlier_write() {
    if crate::helpers::test_database_url().is_some() {
        eprintln!("skipped: snapshots copy a SQLite database");
        return;
    }
    let app = Arc::new(TestApp::spawn().await);
    // Some history first, so the copy takes a moment.
    let filler = vec![b'x'; 64 * 1024];
    for i in 0..32 {
        put_typed(&app, &format!("filler/{i}"), &filler, "text/plain").await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..16 {
        let (app, stop) = (app.clone(), stop.clone());
        writers.push(actix_web::rt::spawn(async move {
            let mut acked: Vec<(String, Instant)> = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}/{n}");
                let resp = app
                    .request(Method::PUT, &format!("/api/state/{key}"))
                    .body(format!("{{\"n\": {n}}}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                acked.push((key, Instant::now()));
                n += 1;
            }
            acked
        }));
    }
    // Let the writers get going, then take the snapshot through the CLI.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("data.db");
    let began = Instant::now();
    let o = koor(
        &app.address,
        dir.path(),
        &["backup", "--snapshot", copy.to_str().unwrap()],
        None,
    )
    .await;
    let ended = Instant::now();
    assert!(o.status.success(), "{}", out(&o));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut before = BTreeSet::new();
    let mut during = 0;
    for w in writers {
        for (key, at) in w.await.unwrap() {
            if at < began {
                before.insert(key);
            } else if at < ended {
                during += 1;
            }
        }
    }
    assert!(
        before.len() >= 16,
        "the writers were writing: {}",
        before.len()
    );
    println!(
        "{} writes acknowledged before the snapshot, {during} while it was taken",
        before.len()
    );
    // Only the finished file is there: no partial download left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["data.db"]);
    assert_eq!(integrity_of(&copy).await, ["ok"]);

    // A server started on the copy has every write acknowledged before it began.
    let restored = TestApp::spawn_with({
        let dir = dir.path().to_path_buf();
        move |c| c.data_dir = dir
    })
    .await;
    let keys: BTreeSet<String> = restored
        .get_json("/api/state")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<_> = before.difference(&keys).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(
        restored.get_json("/api/admin/check").await["integrity"],
        json!(["ok"])
    );
    let audit = restored.get_json("/api/audit/verify").await;
    assert_eq!(audit["ok"], true, "{audit}");
    restored.stop().await;
    app.stop().await;
}

#[actix_web::test]
async fn doctor_exits_0_on_a_healthy_server_and_1_when_it_is_unreachable_or_refuses() {
    let app = TestApp::spawn_with_token("s3cret").await;
    let dir = tempfile::tempdir().unwrap();
    let run = |token: Option<&'static str>, server: String| {
        let dir = dir.path().to_path_buf();
        async move {
            let mut cmd = tokio::process::Command::new(koor_bin());
            cmd.arg("doctor")
                .current_dir(&dir)
                .env("KOOR_SERVER", server)
                .env_remove("KOOR_TOKEN");
            if let Some(t) = token {
                cmd.env("KOOR_TOKEN", t);
            }
            cmd.output().await.unwrap()
        }
    };
    let healthy = run(Some("s3cret"), app.address.clone()).await;
    assert_eq!(healthy.status.code(), Some(0), "{}", out(&healthy));
    let text = String::from_utf8_lossy(&healthy.stdout).to_string();
    let checks: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "reachable",
            "auth",
            "integrity",
            "migrations",
            "wal",
            "disk",
            "clock"
        ],
        "{text}"
    );
    assert!(text.lines().all(|l| l.starts_with("ok ")), "{text}");
    assert!(!text.contains("s3cret"), "the token is never printed");

    let refused = run(Some("wrong"), app.address.clone()).await;
    assert_eq!(refused.status.code(), Some(1), "{}", out(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("FAIL  auth"),
        "{}",
        out(&refused)
    );

    app.stop().await;
    let gone = run(Some("s3cret"), app.address.clone()).await;
    assert_eq!(gone.status.code(), Some(1), "{}", out(&gone));
    let text = String::from_utf8_lossy(&gone.stdout).to_string();
    assert!(text.starts_with("FAIL  reachable"), "{text}");
    assert_eq!(text.lines().count(), 7, "{text}");
}

#[actix_web::test]
async fn init_yes_writes_the_files_and_an_mcp_client_configured_from_them_lists_koors_tools() {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let app = TestApp::spawn_with_token("s3cret").await;
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("shop");
    std::fs::create_dir(&project).unwrap();
    let o = tokio::process::Command::new(koor_bin())
        .args([
            "init", "--yes", "--agents", "3", "--stack", "rust", "--server",
        ])
        .arg(&app.address)
        .current_dir(&project)
        .env_remove("KOOR_SERVER")
        .env("KOOR_TOKEN", "s3cret")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let printed = String::from_utf8_lossy(&o.stdout).to_string();
    for name in [
        ".mcp.json",
        ".cursor/mcp.json",
        "settings.json",
        "AGENTS.md",
        "CLAUDE.md",
    ] {
        assert!(project.join(name).is_file(), "{name} missing");
        assert!(printed.contains(&format!("created   {name}")), "{printed}");
    }
    let read = |name: &str| std::fs::read_to_string(project.join(name)).unwrap();
    for name in [
        ".mcp.json",
        ".cursor/mcp.json",
        "settings.json",
        "AGENTS.md",
    ] {
        assert!(!read(name).contains("s3cret"), "{name} holds the secret");
    }
    let agents = read("AGENTS.md");
    for needle in [
        "koor register shop-agent-1",
        "`shop-agent-3`",
        "--stack rust",
        "koor state",
        "koor events",
        "koor tasks claim --queue shop",
        "koor locks acquire",
        "koor locks check",
        "koor validate shop",
        "koor hooks install --project shop",
    ] {
        assert!(
            agents.contains(needle),
            "{needle} not in AGENTS.md:\n{agents}"
        );
    }
    assert!(read("CLAUDE.md").contains("@AGENTS.md"));
    let settings: Value = serde_json::from_str(&read("settings.json")).unwrap();
    assert_eq!(settings["server"], app.address.as_str());
    let cursor: Value = serde_json::from_str(&read(".cursor/mcp.json")).unwrap();
    assert_eq!(
        cursor["mcpServers"]["koor"]["headers"]["Authorization"],
        "Bearer ${env:KOOR_TOKEN}"
    );

    // Claude Code's reading of .mcp.json: the server's URL and headers, ${VAR} expanded.
    let mcp: Value = serde_json::from_str(&read(".mcp.json")).unwrap();
    let koor_entry = &mcp["mcpServers"]["koor"];
    assert_eq!(koor_entry["type"], "http");
    let env: HashMap<&str, &str> = HashMap::from([("KOOR_TOKEN", "s3cret")]);
    let expand = |s: &str| {
        let mut s = s.to_string();
        for (k, v) in &env {
            s = s.replace(&format!("${{{k}}}"), v);
        }
        s
    };
    let mut config =
        StreamableHttpClientTransportConfig::with_uri(expand(koor_entry["url"].as_str().unwrap()));
    for (name, value) in koor_entry["headers"].as_object().unwrap() {
        let value = expand(value.as_str().unwrap());
        assert_eq!(name, "Authorization");
        config = config.auth_header(value.strip_prefix("Bearer ").unwrap().to_string());
    }
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    let client = ().serve(transport).await.expect("the MCP handshake succeeds");
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"register_instance"), "{names:?}");
    client.cancel().await.unwrap();

    // A second run changes nothing.
    let o = tokio::process::Command::new(koor_bin())
        .args([
            "init", "--yes", "--agents", "3", "--stack", "rust", "--server",
        ])
        .arg(&app.address)
        .current_dir(&project)
        .env("KOOR_TOKEN", "s3cret")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let printed = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(printed.matches("unchanged").count(), 5, "{printed}");
}

#[cfg(unix)]
#[actix_web::test]
async fn the_binary_answers_to_koor_cli_as_go_koor_projects_call_it() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("koor-cli");
    std::os::unix::fs::symlink(koor_bin(), &link).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(&link);
        cmd.args(args)
            .current_dir(dir.path())
            .env("KOOR_SERVER", &app.address)
            .env_remove("KOOR_TOKEN");
        cmd.output()
    };
    let help = run(&["--help"]).await.unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("Usage: koor-cli"),
        "{}",
        out(&help)
    );
    let registered = run(&["register", "agent", "--workspace", "w"])
        .await
        .unwrap();
    assert!(registered.status.success(), "{}", out(&registered));
    let id = app.get_json("/api/instances").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let activated = run(&["activate", &id]).await.unwrap();
    assert!(activated.status.success(), "{}", out(&activated));
    assert_eq!(
        app.get_json(&format!("/api/instances/{id}")).await["status"],
        "active"
    );

    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]).await.unwrap();
        assert!(script.status.success(), "{}", out(&script));
        let text = String::from_utf8_lossy(&script.stdout);
        assert!(
            text.contains("koor-cli") && text.contains("backup"),
            "{shell}: {text}"
        );
    }
}
