//! `TestApp`: the real application on a free port with its own temp-dir database.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use koor::app::{Application, Domains};
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
    pub domains: Domains,
    pub dashboard_port: Option<u16>,
    handle: koor::app::Handle,
    /// Where the app keeps its data (`None`: `data.db` in `dir`).
    pub database_url: Option<String>,
    /// The PostgreSQL database this app created (dropped with it), when the suite runs on
    /// PostgreSQL.
    _database: Option<TestDatabase>,
}

/// The variable that runs the suite on PostgreSQL: a `postgres://` URL of a server where
/// the suite may create and drop databases (each test gets its own).
pub const TEST_DATABASE_ENV: &str = "KOOR_TEST_DATABASE_URL";

/// The PostgreSQL URL the suite runs on, if any.
pub fn test_database_url() -> Option<String> {
    std::env::var(TEST_DATABASE_ENV)
        .ok()
        .filter(|u| !u.is_empty())
}

/// `base` (a `postgres://` URL) pointing at database `name`.
pub fn database_url_for(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let authority = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    format!("{authority}/{name}{query}")
}

/// A PostgreSQL database made for one test (named after its data directory, so a restart
/// on the same directory finds the same data); dropped when its creator is dropped.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    created: bool,
}

impl TestDatabase {
    /// The database of `data_dir` on the server at `base`, created unless it exists.
    pub async fn for_dir(base: &str, data_dir: &Path) -> (TestDatabase, String) {
        use sea_orm::ConnectionTrait;
        let digest = sha256_hex(data_dir.display().to_string().as_bytes());
        let name = format!("koor_test_{}", &digest[..20]);
        let admin = sea_orm::Database::connect(base)
            .await
            .expect("the test database server answers");
        let exists = admin
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT 1 FROM pg_database WHERE datname = $1",
                [name.clone().into()],
            ))
            .await
            .unwrap()
            .is_some();
        if !exists {
            admin
                .execute_unprepared(&format!(
                    "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
                     LC_COLLATE 'C' LC_CTYPE 'C'"
                ))
                .await
                .unwrap();
        }
        let _ = admin.close().await;
        let url = database_url_for(base, &name);
        (
            TestDatabase {
                admin_url: base.to_string(),
                name,
                created: !exists,
            },
            url,
        )
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // A thread with its own runtime: a test's runtime may be shutting down.
        let dropped = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sea_orm::ConnectionTrait;
                if let Ok(admin) = sea_orm::Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
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
            dashboard_bind: String::new(),
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        tweak(&mut config);
        let database = match test_database_url() {
            Some(base) if config.database_url.is_none() => {
                let (database, url) = TestDatabase::for_dir(&base, &config.data_dir).await;
                config.database_url = Some(Secret::new(url));
                Some(database)
            }
            _ => None,
        };
        let database_url = config.database_url.as_ref().map(|u| u.expose().to_string());
        let token = (!config.auth_token.is_empty()).then(|| config.auth_token.expose().to_string());
        let app = Application::build(config).await.expect("the app builds");
        let port = app.port();
        let handle = app.handle();
        let dashboard_port = app.dashboard_port();
        let domains = app.domains().expect("a test server leads");
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            token,
            dir,
            domains,
            dashboard_port,
            handle,
            database_url,
            _database: database,
        }
    }

    /// A connection of its own to the app's database (either backend).
    pub async fn open_db(&self) -> sea_orm::DatabaseConnection {
        let target = match &self.database_url {
            Some(url) => koor::db::Target::parse(url, self.dir.path()).unwrap(),
            None => koor::db::Target::Sqlite(self.dir.path().join("data.db")),
        };
        koor::db::open(&target, 1).await.unwrap()
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

    /// POST with a JSON body (or none) that must answer `status`; returns the JSON body.
    pub async fn post(&self, path: &str, body: Option<Value>, status: StatusCode) -> Value {
        let mut req = self.request(Method::POST, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        assert_json(req.send().await.unwrap(), status).await
    }

    /// GET that must succeed; returns the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        assert_json(self.get(path).await, StatusCode::OK).await
    }

    /// The versions `GET /api/state/{key}?history=1` lists, newest first.
    pub async fn versions(&self, key: &str) -> Vec<i64> {
        let body = self.get_json(&format!("/api/state/{key}?history=1")).await;
        body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect()
    }

    /// Registers an instance named `name` with extra fields from `extra` (an object).
    pub async fn register(&self, name: &str, extra: Value) -> Value {
        let mut body = serde_json::json!({"name": name});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.post("/api/instances/register", Some(body), StatusCode::OK)
            .await
    }

    /// Registers and activates an instance; returns its id.
    pub async fn active_instance(&self, name: &str) -> String {
        let id = self.register(name, Value::Null).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.post(
            &format!("/api/instances/{id}/activate"),
            None,
            StatusCode::OK,
        )
        .await;
        id
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
/// The role `GET /health` reports for a test server: `leader` on PostgreSQL (a cluster of
/// one), `single` on SQLite (API §27).
pub fn expected_role() -> &'static str {
    if test_database_url().is_some() {
        "leader"
    } else {
        "single"
    }
}

/// The acknowledged writes of [`spawn_writer`]s: key and body.
pub type Acked = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A task that PUTs `{"w":w,"i":i}` to `{base}/api/state/{prefix}/{w}-{i}` for i = 0, 1, …
/// and records each write answered 200 in `acked`. On any other answer it stops, or, with
/// `retry`, waits 100 ms and goes on (a write through a follower during a takeover).
pub fn spawn_writer(
    client: &reqwest::Client,
    base: String,
    prefix: &'static str,
    w: usize,
    acked: &Acked,
    retry: bool,
) -> tokio::task::JoinHandle<()> {
    let (client, acked) = (client.clone(), acked.clone());
    tokio::spawn(async move {
        for i in 0.. {
            let key = format!("{prefix}/{w}-{i}");
            let body = format!("{{\"w\":{w},\"i\":{i}}}");
            let sent = client
                .put(format!("{base}/api/state/{key}"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == 200 => acked.lock().unwrap().push((key, body)),
                _ if !retry => break,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
}

pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub port: u16,
}

impl ServerProcess {
    /// Starts `koor serve` on `data_dir` and waits until it reports its port.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        Self::start_on(data_dir, "127.0.0.1:0", extra).await
    }

    /// Like [`ServerProcess::start`], listening on `bind`.
    pub async fn start_on(data_dir: &Path, bind: &str, extra: &[&str]) -> ServerProcess {
        let mut child = tokio::process::Command::new(koor_bin())
            .arg("serve")
            .arg("--bind")
            .arg(bind)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .args(
                (!extra.contains(&"--dashboard-bind"))
                    .then_some(["--dashboard-bind", ""])
                    .into_iter()
                    .flatten(),
            )
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

/// A WebSocket connection to the events stream.
pub type Socket = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// Opens `/api/events/subscribe?{query}`.
pub async fn subscribe(app: &TestApp, query: &str) -> Socket {
    subscribe_on(app.port, query).await
}

/// Opens `/api/events/subscribe?{query}` on the server listening on `port`.
pub async fn subscribe_on(port: u16, query: &str) -> Socket {
    let url = format!("ws://127.0.0.1:{port}/api/events/subscribe?{query}");
    let (resp, socket) = awc::Client::new()
        .ws(url)
        .max_frame_size(16 * 1024 * 1024)
        .connect()
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    socket
}

/// The next text frame as JSON (pings are answered), or `None` when the socket closes.
pub async fn next_json(socket: &mut Socket) -> Option<Value> {
    use futures_util::{SinkExt, StreamExt};
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("a frame within 20 s")?;
        match frame.ok()? {
            awc::ws::Frame::Text(bytes) => return Some(serde_json::from_slice(&bytes).unwrap()),
            awc::ws::Frame::Ping(p) => socket.send(awc::ws::Message::Pong(p)).await.unwrap(),
            awc::ws::Frame::Close(_) => return None,
            _ => {}
        }
    }
}
