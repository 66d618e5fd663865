//! Durability: acknowledged writes survive `kill -9`; SIGTERM shuts down cleanly.

use std::collections::HashMap;

use serde_json::Value;

use crate::helpers::{ServerProcess, sha256_hex};

#[actix_web::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    // 40 keys, 5 versions each, written by concurrent clients.
    let writes = (0..200).map(|i| {
        let client = client.clone();
        let url = server.url(&format!("/api/state/crash/{}", i % 40));
        async move {
            let body = format!("{{\"write\":{i}}}");
            let resp = client.put(url).body(body.clone()).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let meta: Value = resp.json().await.unwrap();
            (meta, body)
        }
    });
    let acked = futures_util::future::join_all(writes).await;
    // What each key must hold: its highest acknowledged version.
    let mut want: HashMap<String, (i64, String)> = HashMap::new();
    for (meta, body) in &acked {
        let key = meta["key"].as_str().unwrap().to_string();
        let version = meta["version"].as_i64().unwrap();
        assert_eq!(meta["hash"], sha256_hex(body.as_bytes()));
        let entry = want.entry(key).or_insert((0, String::new()));
        if version > entry.0 {
            *entry = (version, body.clone());
        }
    }
    assert_eq!(want.len(), 40);

    server.child.start_kill().unwrap(); // SIGKILL
    server.child.wait().await.unwrap();

    let server = ServerProcess::start(dir.path(), &[]).await;
    for (key, (version, body)) in &want {
        let resp = client
            .get(server.url(&format!("/api/state/{key}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{key}");
        assert_eq!(
            resp.headers()["x-koor-version"],
            version.to_string().as_str(),
            "{key}"
        );
        assert_eq!(resp.text().await.unwrap(), *body, "{key}");
        assert_eq!(*version, 5, "{key}");
        let hist: Value = client
            .get(server.url(&format!("/api/state/{key}?history=1")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(hist["versions"].as_array().unwrap().len(), 5, "{key}");
    }
}

#[actix_web::test]
async fn sigterm_shuts_down_gracefully_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = client
        .put(server.url("/api/state/term"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let pid = server.child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(15), server.child.wait())
        .await
        .expect("the server exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let server = ServerProcess::start(dir.path(), &[]).await;
    let resp = client
        .get(server.url("/api/state/term"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "1");
}
