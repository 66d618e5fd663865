//! `TestApp`: the real application on a free port with its own temp-dir database.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use koor::app::Application;
use koor::config::{Config, Secret};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub token: Option<String>,
    pub dir: TempDir,
    handle: actix_web::dev::ServerHandle,
}

impl TestApp {
    /// The server with default settings.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// The server with settings changed by `tweak` (bind and data dir are set here).
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            bind: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        tweak(&mut config);
        let token = (!config.auth_token.is_empty()).then(|| config.auth_token.expose().to_string());
        let app = Application::build(config).await.expect("the app builds");
        let port = app.port();
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            token,
            dir,
            handle,
        }
    }

    /// The server with bearer auth on.
    pub async fn spawn_with_token(token: &str) -> TestApp {
        let token = token.to_string();
        Self::spawn_with(move |c| c.auth_token = Secret::new(token)).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A request builder with the token (when auth is on).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.client.request(method, self.url(path));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    pub async fn put_raw(&self, key: &str, body: &[u8]) -> reqwest::Response {
        self.request(Method::PUT, &format!("/api/state/{key}"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// PUT that must succeed; returns the JSON metadata.
    pub async fn put_state(&self, key: &str, body: &[u8]) -> Value {
        let resp = self.put_raw(key, body).await;
        assert_json(resp, StatusCode::OK).await
    }

    pub async fn publish(&self, topic: &str, data: Value) -> Value {
        let resp = self
            .request(Method::POST, "/api/events/publish")
            .json(&serde_json::json!({"topic": topic, "data": data}))
            .send()
            .await
            .unwrap();
        assert_json(resp, StatusCode::OK).await
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// Asserts the status and a JSON content type, and returns the body.
pub async fn assert_json(resp: reqwest::Response, status: StatusCode) -> Value {
    let got = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    assert!(
        ct.starts_with("application/json"),
        "content-type {ct:?} for {text}"
    );
    serde_json::from_str(&text).unwrap()
}

/// Asserts a JSON error `{"error": non-empty, "code": status}` and returns the body.
pub async fn assert_error(resp: reqwest::Response, status: StatusCode) -> Value {
    let body = assert_json(resp, status).await;
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "missing error text: {body}"
    );
    assert_eq!(body["code"], status.as_u16(), "{body}");
    body
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// The built `koor` binary.
pub fn koor_bin() -> &'static str {
    env!("CARGO_BIN_EXE_koor")
}

/// A `koor serve` child process on a free port, for crash and signal tests.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub port: u16,
}

impl ServerProcess {
    /// Starts `koor serve` on `data_dir` and waits until it reports its port.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        let mut child = tokio::process::Command::new(koor_bin())
            .arg("serve")
            .arg("--bind")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env_remove("KOOR_AUTH_TOKEN")
            .current_dir(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.split("port=").nth(1) {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    return digits.parse::<u16>().unwrap();
                }
            }
            panic!("server exited before reporting its port");
        })
        .await
        .expect("server reports its port");
        // Keep draining the log so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ServerProcess { child, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}
