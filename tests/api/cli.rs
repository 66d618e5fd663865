//! The `koor` binary as a client of a spawned server, and its start-up errors.

use std::process::Output;

use serde_json::Value;

use crate::helpers::{TestApp, koor_bin};

/// Runs `koor ARGS` against `server` with `stdin`, in `cwd`.
pub async fn koor(
    server: &str,
    cwd: &std::path::Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(koor_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env("KOOR_SERVER", server)
        .env_remove("KOOR_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).await.unwrap();
    }
    drop(input);
    child.wait_with_output().await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[actix_web::test]
async fn state_commands_round_trip() {
    let app = TestApp::spawn().await;
    let cwd = app.dir.path();
    let set = koor(
        &app.address,
        cwd,
        &["state", "set", "proj/cfg", "--data", "{\"v\":1}"],
        None,
    )
    .await;
    assert!(set.status.success(), "{set:?}");
    let meta: Value = serde_json::from_slice(&set.stdout).unwrap();
    assert_eq!(meta["version"], 1);

    // A value from standard input.
    let set = koor(
        &app.address,
        cwd,
        &["state", "set", "proj/cfg"],
        Some(b"{\"v\":2}"),
    )
    .await;
    assert!(set.status.success(), "{set:?}");

    // `get` prints the raw value only, byte for byte.
    let get = koor(&app.address, cwd, &["state", "get", "proj/cfg"], None).await;
    assert!(get.status.success());
    assert_eq!(get.stdout, b"{\"v\":2}");

    let list = koor(&app.address, cwd, &["state", "list"], None).await;
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["key"], "proj/cfg");

    let hist = koor(
        &app.address,
        cwd,
        &["state", "history", "proj/cfg", "--limit", "1"],
        None,
    )
    .await;
    let hist: Value = serde_json::from_slice(&hist.stdout).unwrap();
    assert_eq!(hist["versions"].as_array().unwrap().len(), 1);

    let diff = koor(
        &app.address,
        cwd,
        &["state", "diff", "proj/cfg", "--v1", "1", "--v2", "2"],
        None,
    )
    .await;
    let diff: Value = serde_json::from_slice(&diff.stdout).unwrap();
    assert_eq!(diff["diffs"][0]["path"], "/v");

    let rb = koor(
        &app.address,
        cwd,
        &["state", "rollback", "proj/cfg", "--version", "1"],
        None,
    )
    .await;
    let rb: Value = serde_json::from_slice(&rb.stdout).unwrap();
    assert_eq!(rb["version"], 3);
    let get = koor(&app.address, cwd, &["state", "get", "proj/cfg"], None).await;
    assert_eq!(get.stdout, b"{\"v\":1}");

    let pretty = koor(&app.address, cwd, &["state", "list", "--pretty"], None).await;
    assert!(stdout(&pretty).contains("\n  {"), "{}", stdout(&pretty));

    let del = koor(&app.address, cwd, &["state", "delete", "proj/cfg"], None).await;
    assert!(del.status.success());
    let get = koor(&app.address, cwd, &["state", "get", "proj/cfg"], None).await;
    assert_eq!(get.status.code(), Some(1));
    assert!(get.stdout.is_empty());
    assert!(String::from_utf8_lossy(&get.stderr).contains("\"code\":404"));
}

#[actix_web::test]
async fn set_with_a_stale_if_version_fails_with_exit_1() {
    let app = TestApp::spawn().await;
    let cwd = app.dir.path();
    koor(
        &app.address,
        cwd,
        &["state", "set", "k", "--data", "1"],
        None,
    )
    .await;
    let stale = koor(
        &app.address,
        cwd,
        &["state", "set", "k", "--data", "2", "--if-version", "0"],
        None,
    )
    .await;
    assert_eq!(stale.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("412"));
    let ok = koor(
        &app.address,
        cwd,
        &["state", "set", "k", "--data", "2", "--if-version", "1"],
        None,
    )
    .await;
    assert!(ok.status.success());
    let file = cwd.join("value.json");
    std::fs::write(&file, b"{\"from\":\"file\"}").unwrap();
    let ok = koor(
        &app.address,
        cwd,
        &["state", "set", "k", "--file", file.to_str().unwrap()],
        None,
    )
    .await;
    assert!(ok.status.success());
    let get = koor(&app.address, cwd, &["state", "get", "k"], None).await;
    assert_eq!(get.stdout, b"{\"from\":\"file\"}");
}

#[actix_web::test]
async fn usage_errors_exit_2_and_connection_failures_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let usage = koor(
        "http://127.0.0.1:9",
        dir.path(),
        &["state", "frobnicate"],
        None,
    )
    .await;
    assert_eq!(usage.status.code(), Some(2));
    let down = koor("http://127.0.0.1:9", dir.path(), &["status"], None).await;
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot reach"));
}

#[actix_web::test]
async fn status_and_events_commands() {
    let app = TestApp::spawn().await;
    let cwd = app.dir.path();
    let status = koor(&app.address, cwd, &["status"], None).await;
    assert!(status.status.success());
    assert!(stdout(&status).starts_with("koor ok at "), "{status:?}");
    let publ = koor(
        &app.address,
        cwd,
        &["events", "publish", "api.change", "--data", "{\"x\":1}"],
        None,
    )
    .await;
    assert!(publ.status.success(), "{publ:?}");
    let hist = koor(
        &app.address,
        cwd,
        &["events", "history", "--topic", "api.*", "--last", "5"],
        None,
    )
    .await;
    let hist: Value = serde_json::from_slice(&hist.stdout).unwrap();
    assert_eq!(hist[0]["data"]["x"], 1);
}

#[actix_web::test]
async fn config_set_writes_settings_and_the_token_is_used() {
    let app = TestApp::spawn_with_token("tok3n").await;
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("settings.json"), "{\"bind\":\"keep-me\"}").unwrap();
    let set = koor(
        "unused",
        cwd.path(),
        &["config", "set", "token", "tok3n"],
        None,
    )
    .await;
    assert!(set.status.success());
    assert!(!stdout(&set).contains("tok3n"), "the token is not echoed");
    let settings: Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.path().join("settings.json")).unwrap())
            .unwrap();
    assert_eq!(settings["bind"], "keep-me");
    assert_eq!(settings["token"], "tok3n");

    // Server from settings.json too (KOOR_SERVER is empty, so the file applies).
    koor(
        "",
        cwd.path(),
        &["config", "set", "server", &app.address],
        None,
    )
    .await;
    let list = koor("", cwd.path(), &["state", "list"], None).await;
    assert!(list.status.success(), "{list:?}");
    assert_eq!(stdout(&list).trim(), "[]");
}

/// Runs `koor serve ARGS` with `env` and expects it to refuse to start.
async fn refuses_to_start(args: &[&str], env: &[(&str, &str)], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(koor_bin());
    cmd.arg("serve");
    if !args.contains(&"--bind") {
        cmd.arg("--bind").arg("127.0.0.1:0");
    }
    cmd.arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .current_dir(dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), cmd.output())
        .await
        .expect("a bad config stops start-up at once")
        .unwrap();
    assert!(!out.status.success(), "{args:?} {env:?} started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(expect), "{err}");
}

#[actix_web::test]
async fn a_taken_port_stops_start_up_with_one_line_and_no_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    refuses_to_start(&["--bind", &addr], &[], "cannot listen").await;
    refuses_to_start(&["--dashboard-bind", &addr], &[], "cannot listen").await;
}

#[actix_web::test]
async fn bad_configuration_stops_start_up_with_one_line() {
    refuses_to_start(
        &["--config", "/definitely/missing.json"],
        &[],
        "missing.json",
    )
    .await;
    refuses_to_start(&["--log-level", "loud"], &[], "log_level").await;
    refuses_to_start(
        &[],
        &[("KOOR_STALE_AFTER_SECONDS", "soon")],
        "KOOR_STALE_AFTER_SECONDS",
    )
    .await;
    refuses_to_start(&["--stale-after=-1"], &[], "stale_after").await;
    refuses_to_start(&["--stale-after", "soon"], &[], "--stale-after").await;
    refuses_to_start(
        &[],
        &[("KOOR_WEBHOOK_BLOCK_PRIVATE", "maybe")],
        "KOOR_WEBHOOK_BLOCK_PRIVATE",
    )
    .await;
    refuses_to_start(&[], &[("KOOR_DB_POOL_SIZE", "65")], "db_pool_size").await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    refuses_to_start(&["--config", bad.to_str().unwrap()], &[], "bad.json").await;
}

/// Runs `koor migrate status ARGS` in `cwd` with `env` and returns the folders it made there
/// (the data directory it resolved, holding `data.db`).
async fn data_dirs_made_by_migrate(
    cwd: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Vec<String> {
    let mut cmd = tokio::process::Command::new(koor_bin());
    cmd.arg("migrate").arg("status").args(args).current_dir(cwd);
    for name in ["KOOR_DATA_DIR", "KOOR_CONFIG"] {
        cmd.env_remove(name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{args:?} {env:?}: {out:?}");
    let mut made: Vec<String> = std::fs::read_dir(cwd)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("data.db").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    made
}

#[actix_web::test]
async fn settings_layer_flags_over_env_over_the_file_and_empty_env_is_unset() {
    let cwd = tempfile::tempdir().unwrap();
    let cwd = cwd.path();
    std::fs::write(cwd.join("settings.json"), r#"{"data_dir":"file"}"#).unwrap();
    std::fs::write(cwd.join("other.json"), r#"{"data_dir":"other"}"#).unwrap();
    let made = data_dirs_made_by_migrate(cwd, &[], &[("KOOR_DATA_DIR", "")]).await;
    assert_eq!(made, ["file"]);
    let made = data_dirs_made_by_migrate(cwd, &[], &[("KOOR_DATA_DIR", "env")]).await;
    assert_eq!(made, ["env", "file"]);
    let made =
        data_dirs_made_by_migrate(cwd, &["--data-dir", "flag"], &[("KOOR_DATA_DIR", "env")]).await;
    assert_eq!(made, ["env", "file", "flag"]);
    let made = data_dirs_made_by_migrate(cwd, &[], &[("KOOR_CONFIG", "other.json")]).await;
    assert_eq!(made, ["env", "file", "flag", "other"]);
}

#[actix_web::test]
async fn instance_commands_and_the_status_overview() {
    let app = TestApp::spawn().await;
    let cwd = app.dir.path();
    let run = |args: &'static [&'static str]| koor(&app.address, cwd, args, None);

    let reg = run(&[
        "register",
        "cli-agent",
        "--workspace",
        "w",
        "--capabilities",
        "review, testing",
    ])
    .await;
    assert!(reg.status.success(), "{reg:?}");
    let reg: Value = serde_json::from_str(&stdout(&reg)).unwrap();
    assert_eq!(
        reg["capabilities"],
        serde_json::json!(["review", "testing"])
    );
    assert!(reg["token"].is_string());
    let id = reg["id"].as_str().unwrap().to_string();
    let with_id = |cmd: &'static [&'static str]| {
        let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        args.push(id.clone());
        args
    };
    for cmd in [&["activate"][..], &["heartbeat"][..]] {
        let args = with_id(cmd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = koor(&app.address, cwd, &args, None).await;
        assert!(out.status.success(), "{out:?}");
    }
    let listed = run(&["instances", "list", "--capability", "testing"]).await;
    let listed: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "active");
    assert!(listed[0].get("token").is_none());

    let status = run(&["status"]).await;
    let text = stdout(&status);
    assert!(
        text.contains("instances: 1 active, 0 pending, 0 stale"),
        "{text}"
    );
    let status = run(&["status", "--json"]).await;
    let o: Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(o["status"], "ok");
    assert_eq!(o["instances"]["active"], 1);
    let role = crate::helpers::expected_role();
    assert_eq!(o["role"], role);
    assert!(
        text.contains(&format!("role: {role}, leader {}", app.address)),
        "{text}"
    );

    let metrics = run(&["metrics"]).await;
    let m: Value = serde_json::from_str(&stdout(&metrics)).unwrap();
    assert_eq!(m["instances"], 1);
    let args = with_id(&["metrics", "agents"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rows = koor(&app.address, cwd, &args, None).await;
    let rows: Value = serde_json::from_str(&stdout(&rows)).unwrap();
    assert_eq!(rows[0]["metric_name"], "heartbeats");

    let args = with_id(&["instances", "delete"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(koor(&app.address, cwd, &args, None).await.status.success());
    let args = with_id(&["instances", "get"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let gone = koor(&app.address, cwd, &args, None).await;
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("404"));
}

#[actix_web::test]
async fn koor_validate_is_a_pre_commit_check() {
    let app = TestApp::spawn().await;
    let cwd = app.dir.path();
    let set = koor(
        &app.address,
        cwd,
        &[
            "rules",
            "set",
            "web",
            "--data",
            r#"[{"rule_id": "no-console", "match_type": "custom", "pattern": "no-console-log",
                 "message": "remove console.log"},
                {"rule_id": "license", "match_type": "missing", "severity": "warning",
                 "pattern": "SPDX-License-Identifier", "applies_to": ["*.js"]}]"#,
        ],
        None,
    )
    .await;
    assert!(set.status.success(), "{set:?}");
    std::fs::write(cwd.join("bad.js"), "const a = 1;\nconsole.log(a);\n").unwrap();
    std::fs::write(cwd.join("good.js"), "// SPDX-License-Identifier: MIT\n").unwrap();
    std::fs::write(cwd.join("notes.md"), "no license here\n").unwrap();

    let bad = koor(
        &app.address,
        cwd,
        &["validate", "web", "--file", "bad.js"],
        None,
    )
    .await;
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let mut lines: Vec<String> = stdout(&bad).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "bad.js license required pattern 'SPDX-License-Identifier' not found [warning]",
            "bad.js:2 no-console remove console.log",
        ]
    );
    let good = koor(
        &app.address,
        cwd,
        &["validate", "web", "--file", "good.js", "--file", "notes.md"],
        None,
    )
    .await;
    assert_eq!(good.status.code(), Some(0), "{good:?}");
    assert_eq!(stdout(&good), "");
    let missing = koor(
        &app.address,
        cwd,
        &["validate", "web", "--file", "nope.js"],
        None,
    )
    .await;
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
}

#[actix_web::test]
async fn audit_commands_list_summarize_and_verify() {
    let app = TestApp::spawn().await;
    let cwd = app.dir.path();
    app.put_state("a/1", b"1").await;
    app.put_state("a/2", b"2").await;
    app.register("auditor", Value::Null).await;

    let listed = koor(
        &app.address,
        cwd,
        &["audit", "--action", "state.put", "--limit", "1"],
        None,
    )
    .await;
    assert!(listed.status.success(), "{listed:?}");
    let entries: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 1);
    assert_eq!(entries[0]["resource"], "a/2");

    let by_actor = koor(&app.address, cwd, &["audit", "--actor", "auditor"], None).await;
    let entries: Value = serde_json::from_slice(&by_actor.stdout).unwrap();
    assert_eq!(entries[0]["action"], "instance.register");

    let summary = koor(&app.address, cwd, &["audit", "summary"], None).await;
    assert!(summary.status.success(), "{summary:?}");
    let body: Value = serde_json::from_slice(&summary.stdout).unwrap();
    assert_eq!(body["total_entries"], 3);

    let verify = koor(&app.address, cwd, &["audit", "verify"], None).await;
    assert!(verify.status.success(), "{verify:?}");
    assert_eq!(
        serde_json::from_slice::<Value>(&verify.stdout).unwrap(),
        serde_json::json!({"ok": true, "entries": 3})
    );

    // A broken chain makes `verify` fail, for scripts and cron jobs.
    let db = app.open_db().await;
    use sea_orm::ConnectionTrait;
    let drop_trigger = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => "DROP TRIGGER audit_log_no_update ON audit_log",
        _ => "DROP TRIGGER audit_log_no_update",
    };
    db.execute_unprepared(drop_trigger).await.unwrap();
    db.execute_unprepared("UPDATE audit_log SET resource = 'a/9' WHERE id = 1")
        .await
        .unwrap();
    let broken = koor(&app.address, cwd, &["audit", "verify"], None).await;
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    assert!(
        stdout(&broken).contains("\"broken_id\":1"),
        "{}",
        stdout(&broken)
    );

    let bad = koor(
        &app.address,
        cwd,
        &["audit", "summary", "--limit", "3"],
        None,
    )
    .await;
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

#[actix_web::test]
async fn koor_rules_lists_every_proposal_and_deletes_one_rule() {
    let app = TestApp::spawn().await;
    let cwd = app.dir.path();
    let run = |args: &'static [&'static str]| koor(&app.address, cwd, args, None);
    let set = run(&[
        "rules",
        "set",
        "web",
        "--data",
        r#"[{"rule_id": "a", "pattern": "x"}, {"rule_id": "b", "pattern": "y"}]"#,
    ])
    .await;
    assert!(set.status.success(), "{set:?}");
    let proposed = run(&[
        "rules",
        "propose",
        "--project",
        "api",
        "--rule-id",
        "p",
        "--pattern",
        "z",
    ])
    .await;
    assert!(proposed.status.success(), "{proposed:?}");

    let pending = run(&["rules", "list", "--status", "proposed"]).await;
    assert!(pending.status.success(), "{pending:?}");
    let pending: Value = serde_json::from_str(&stdout(&pending)).unwrap();
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["rule_id"], "p");

    let deleted = run(&["rules", "delete", "web", "a"]).await;
    assert!(deleted.status.success(), "{deleted:?}");
    let left = app.get_json("/api/validate/web/rules").await;
    assert_eq!(left["rules"].as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left["rules"][0]["rule_id"], "b");
    let again = run(&["rules", "delete", "web", "a"]).await;
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("404"));
}
