//! `koor events …`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use super::client::{Client, read_input};

#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Publish an event (data from --data or --file; without either it is null).
    Publish {
        topic: String,
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Show recent events, newest first.
    History {
        #[arg(long)]
        last: Option<u64>,
        #[arg(long, value_name = "PATTERN")]
        topic: Option<String>,
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        #[arg(long)]
        source: Option<String>,
        /// Resume: events after this id, oldest first.
        #[arg(long, value_name = "ID")]
        after: Option<i64>,
    },
    /// Print matching events as they happen, one JSON object per line. Reconnects and
    /// resumes after the last printed id when the connection drops.
    Subscribe {
        /// Topic pattern (default: every topic).
        pattern: Option<String>,
        /// Also print stored events after this id first.
        #[arg(long, value_name = "ID")]
        after: Option<i64>,
    },
    /// Wait until a matching event exists after ID (long-poll), print them and exit.
    Wait {
        #[arg(long, value_name = "ID")]
        after: Option<i64>,
        #[arg(long, value_name = "PATTERN")]
        topic: Option<String>,
        /// Seconds to wait at most (the server caps it at 60).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
    },
}

pub async fn run(client: &Client, cmd: EventsCmd) -> ExitCode {
    match cmd {
        EventsCmd::Publish { topic, data, file } => {
            let data = if data.is_none() && file.is_none() {
                Value::Null
            } else {
                let bytes = match read_input(data, file) {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("koor: {e}");
                        return ExitCode::from(2);
                    }
                };
                match serde_json::from_slice(&bytes) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("koor: event data is not valid JSON: {e}");
                        return ExitCode::from(2);
                    }
                }
            };
            let outcome = client
                .post_json(
                    "/api/events/publish",
                    &json!({"topic": topic, "data": data}),
                )
                .await;
            client.print(outcome, false)
        }
        EventsCmd::History {
            last,
            topic,
            from,
            to,
            source,
            after,
        } => {
            let mut q: Vec<(&str, String)> = Vec::new();
            if let Some(v) = last {
                q.push(("last", v.to_string()));
            }
            if let Some(v) = after {
                q.push(("after", v.to_string()));
            }
            for (name, v) in [
                ("topic", topic),
                ("from", from),
                ("to", to),
                ("source", source),
            ] {
                if let Some(v) = v {
                    q.push((name, v));
                }
            }
            client.print(client.get("/api/events/history", &q).await, false)
        }
        EventsCmd::Subscribe { pattern, after } => {
            subscribe(client, pattern.unwrap_or_else(|| "*".into()), after).await
        }
        EventsCmd::Wait {
            after,
            topic,
            timeout,
        } => {
            let mut q: Vec<(&str, String)> = Vec::new();
            if let Some(v) = after {
                q.push(("after", v.to_string()));
            }
            if let Some(v) = topic {
                q.push(("topic", v));
            }
            if let Some(v) = timeout {
                q.push(("timeout", v.to_string()));
            }
            client.print(client.get("/api/events/wait", &q).await, false)
        }
    }
}

/// What ended one WebSocket connection.
enum Ended {
    /// Reconnect now (lagged, expired cursor, or a clean close).
    Resume,
    /// The connection failed or dropped: wait, then reconnect.
    Dropped(String),
    /// The server refused the upgrade with this status: fall back to polling.
    Refused(u16),
    /// A fatal error (e.g. 401): stop.
    Fatal(String),
}

fn print_line(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Handles one frame; updates `cursor` to the last printed id.
fn on_frame(text: &str, cursor: &mut i64) -> Option<Ended> {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    if v.get("error").is_some() {
        if v["code"] == 410 {
            let oldest = v["oldest_id"].as_i64().unwrap_or(*cursor + 1);
            eprintln!(
                "koor: events {}..{} were pruned before they could be read; continuing from {oldest}",
                *cursor + 1,
                oldest - 1
            );
            *cursor = oldest - 1;
            return Some(Ended::Resume);
        }
        if v["code"].as_u64().is_some_and(|c| c >= 500) {
            return Some(Ended::Dropped(text.to_string()));
        }
        return Some(Ended::Fatal(text.to_string()));
    }
    if v["topic"] == "koor.lagged" {
        if let Some(resume) = v["data"]["resume_after"].as_i64() {
            *cursor = (*cursor).max(resume);
        }
        return Some(Ended::Resume);
    }
    if let Some(id) = v["id"].as_i64()
        && id > *cursor
    {
        print_line(text);
        *cursor = id;
    }
    None
}

/// The TLS configuration of the WebSocket when the server is reached over HTTPS: verified
/// against the same trust as the CLI's HTTP requests (the system's roots plus
/// `KOOR_WEBHOOK_CA_FILE`), offering only HTTP/1.1, which a WebSocket upgrade needs.
fn ws_tls(client: &Client) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    if !client.base().starts_with("https://") {
        return Ok(None);
    }
    let mut config = client.trust().rustls_config()?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// The certificate problem behind a failed connection, if that is why it failed: retrying
/// cannot help until the server's certificate or the trust changes.
fn certificate_error(e: &awc::error::WsClientError) -> Option<String> {
    use awc::error::{ConnectError, SendRequestError, WsClientError};
    let WsClientError::SendRequest(SendRequestError::Connect(ConnectError::Io(io))) = e else {
        return None;
    };
    match io.get_ref()?.downcast_ref::<rustls::Error>()? {
        cert @ rustls::Error::InvalidCertificate(_) => Some(cert.to_string()),
        _ => None,
    }
}

async fn connect_once(
    client: &Client,
    tls: Option<&Arc<rustls::ClientConfig>>,
    pattern: &str,
    cursor: &mut i64,
) -> Ended {
    let ws_base = client
        .base()
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let query = serde_urlencoded::to_string([
        ("pattern", pattern.to_string()),
        ("after", cursor.to_string()),
    ])
    .unwrap_or_default();
    let url = format!("{ws_base}/api/events/subscribe?{query}");
    let mut connector = awc::Connector::new();
    if let Some(tls) = tls {
        connector = connector.rustls_0_23(tls.clone());
    }
    let mut req = awc::Client::builder()
        .connector(connector)
        .timeout(Duration::from_secs(30))
        .finish()
        .ws(url)
        // An event may carry up to the server's 10 MiB body limit.
        .max_frame_size(16 * 1024 * 1024);
    if let Some(token) = client.token() {
        req = req.bearer_auth(token);
    }
    let mut framed = match req.connect().await {
        Ok((_, framed)) => framed,
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            if status.as_u16() == 401 {
                return Ended::Fatal("401: invalid or missing bearer token".into());
            }
            return Ended::Refused(status.as_u16());
        }
        Err(e) => {
            if let Some(why) = certificate_error(&e) {
                return Ended::Fatal(format!(
                    "cannot reach {}: {why} (a server with a certificate from a private CA \
                     needs that CA's PEM file in KOOR_WEBHOOK_CA_FILE)",
                    client.base()
                ));
            }
            return Ended::Dropped(e.to_string());
        }
    };
    while let Some(frame) = framed.next().await {
        match frame {
            Ok(awc::ws::Frame::Text(bytes)) => {
                if let Some(end) = on_frame(&String::from_utf8_lossy(&bytes), cursor) {
                    return end;
                }
            }
            Ok(awc::ws::Frame::Ping(p)) => {
                if framed.send(awc::ws::Message::Pong(p)).await.is_err() {
                    return Ended::Dropped("the connection closed".into());
                }
            }
            Ok(awc::ws::Frame::Close(_)) => {
                return Ended::Dropped("the server closed the stream".into());
            }
            Ok(_) => {}
            Err(e) => return Ended::Dropped(e.to_string()),
        }
    }
    Ended::Dropped("the connection closed".into())
}

/// Polls history every 2 s (for servers whose WebSocket upgrade fails).
async fn poll_once(client: &Client, pattern: &str, cursor: &mut i64) -> Result<(), String> {
    let q = [
        ("after", cursor.to_string()),
        ("topic", pattern.to_string()),
        ("last", "100".to_string()),
    ];
    let (status, _, body) = client.get("/api/events/history", &q).await?;
    if status.as_u16() == 410 {
        // The cursor expired: say so and continue from the oldest stored event.
        on_frame(&String::from_utf8_lossy(&body), cursor);
        return Ok(());
    }
    if !status.is_success() {
        return Err(format!("history answered {status}"));
    }
    let mut events: Vec<Value> = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    events.sort_by_key(|e| e["id"].as_i64().unwrap_or(0));
    for e in events {
        if e["id"].as_i64().is_some_and(|id| id > *cursor) {
            on_frame(&e.to_string(), cursor);
        }
    }
    Ok(())
}

async fn subscribe(client: &Client, pattern: String, after: Option<i64>) -> ExitCode {
    // Without --after, start from the newest id now, so that even the first reconnect
    // resumes without a gap.
    let mut cursor = match after {
        Some(a) => a,
        None => match client
            .get("/api/events/history", &[("last", "1".into())])
            .await
        {
            Ok((status, _, body)) if status.is_success() => serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v[0]["id"].as_i64())
                .unwrap_or(0),
            Ok((status, _, body)) => {
                eprintln!("koor: {status}: {}", String::from_utf8_lossy(&body));
                return ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("koor: {e}");
                return ExitCode::from(1);
            }
        },
    };
    let tls = match ws_tls(client) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("koor: {e}");
            return ExitCode::from(1);
        }
    };
    let mut delay = Duration::from_millis(250);
    loop {
        match connect_once(client, tls.as_ref(), &pattern, &mut cursor).await {
            Ended::Resume => {
                delay = Duration::from_millis(250);
                continue;
            }
            Ended::Fatal(e) => {
                eprintln!("koor: {e}");
                return ExitCode::from(1);
            }
            Ended::Refused(status) => {
                eprintln!("koor: WebSocket upgrade refused ({status}); polling history every 2 s");
                loop {
                    if let Err(e) = poll_once(client, &pattern, &mut cursor).await {
                        eprintln!("koor: {e}");
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
            Ended::Dropped(why) => {
                eprintln!("koor: {why}; reconnecting after event {cursor}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
