//! The REST client behind every client command: settings resolution, requests, output
//! and exit codes (0 on 2xx/304, 1 on an HTTP error or connection failure, 2 on usage).

use std::io::Write;
use std::process::ExitCode;

use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::{Method, StatusCode, header};

use super::settings;

/// Characters escaped in a path segment (`/` is kept, so state keys keep their slashes).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Escapes `key` for use in a URL path, keeping `/`.
pub fn path_escape(key: &str) -> String {
    utf8_percent_encode(key, PATH).to_string()
}

/// Flags that override the environment and ./settings.json.
#[derive(Debug, Default, Clone)]
pub struct ClientOptions {
    pub server: Option<String>,
    pub token: Option<String>,
    /// The saved agent to act as (`--as`).
    pub act_as: Option<String>,
    pub pretty: bool,
}

/// A response, or why there is none.
/// The query pairs of the options that were given (`None` values are left out).
pub fn given<'a>(
    pairs: impl IntoIterator<Item = (&'a str, Option<String>)>,
) -> Vec<(&'a str, String)> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

pub type Outcome = Result<(StatusCode, header::HeaderMap, Bytes), String>;

/// A configured REST client.
pub struct Client {
    base: String,
    token: Option<String>,
    /// The instance token of the agent this client acts as, sent as
    /// `X-Koor-Instance-Token` (the credential when there is no bearer token).
    agent_token: Option<String>,
    http: reqwest::Client,
    /// The trust `http` verifies servers against, for connections made without it.
    trust: crate::tls::Trust,
    pub pretty: bool,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

impl Client {
    /// Resolves the server and token: flag > KOOR_SERVER/KOOR_TOKEN > ./settings.json > default.
    pub fn new(options: ClientOptions) -> Result<Client, String> {
        let server = match non_empty(options.server)
            .or_else(|| non_empty(std::env::var("KOOR_SERVER").ok()))
        {
            Some(s) => s,
            None => settings::get("server")?.unwrap_or_else(|| "http://localhost:9800".into()),
        };
        let token = match non_empty(options.token)
            .or_else(|| non_empty(std::env::var("KOOR_TOKEN").ok()))
        {
            Some(t) => Some(t),
            None => settings::get("token")?,
        };
        let act_as = non_empty(options.act_as).or_else(|| non_empty(std::env::var("KOOR_AS").ok()));
        let agent_token = settings::agent_token(act_as.as_deref())?;
        let mut base = server.trim().trim_end_matches('/').to_string();
        if !base.contains("://") {
            base = format!("http://{base}");
        }
        let trust = crate::tls::Trust::from_env()?;
        let http = trust
            .client_builder()
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot create HTTP client: {e}"))?;
        Ok(Client {
            base,
            token,
            agent_token,
            http,
            trust,
            pretty: options.pretty,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The trust HTTPS connections verify the server against (`KOOR_WEBHOOK_CA_FILE`).
    pub fn trust(&self) -> &crate::tls::Trust {
        &self.trust
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sends one request. `path` must already be escaped; `query` values are encoded here.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(Bytes, &str)>,
    ) -> Outcome {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(token) = &self.agent_token {
            req = req.header("X-Koor-Instance-Token", token);
        }
        if let Some((bytes, content_type)) = body {
            req = req.header(header::CONTENT_TYPE, content_type).body(bytes);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {}", self.base, crate::error::chain(&e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("cannot read the response from {}: {e}", self.base))?;
        Ok((status, headers, bytes))
    }

    /// Sends a GET and returns the response with its body unread, for downloads too
    /// large to hold in memory. `path` must already be escaped.
    pub async fn get_unread(&self, path: &str) -> Result<reqwest::Response, String> {
        let mut req = self.http.get(format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req.send()
            .await
            .map_err(|e| format!("cannot reach {}: {}", self.base, crate::error::chain(&e)))
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Outcome {
        self.send(Method::GET, path, query, None).await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Outcome {
        let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        self.send(Method::POST, path, &[], Some((bytes, "application/json")))
            .await
    }

    /// Prints the outcome and returns the exit code. `raw` prints the body byte for byte
    /// (state values); otherwise a JSON body is printed compact (or `--pretty`) + newline.
    pub fn print(&self, outcome: Outcome, raw: bool) -> ExitCode {
        match outcome {
            Err(e) => {
                eprintln!("koor: {e}");
                ExitCode::from(1)
            }
            Ok((status, _, body)) => {
                let ok = status.is_success() || status == StatusCode::NOT_MODIFIED;
                if ok {
                    let mut out = std::io::stdout().lock();
                    let text = if raw && !self.pretty {
                        body.to_vec()
                    } else {
                        let mut t = self.render(&body);
                        if !raw || !t.ends_with(b"\n") {
                            t.push(b'\n');
                        }
                        t
                    };
                    let _ = out.write_all(&text);
                    let _ = out.flush();
                    ExitCode::SUCCESS
                } else {
                    let text = self.render(&body);
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(&text);
                    let _ = err.write_all(b"\n");
                    ExitCode::from(1)
                }
            }
        }
    }

    /// A body as text: pretty-printed JSON with `--pretty`, else as received.
    pub fn render(&self, body: &[u8]) -> Vec<u8> {
        if self.pretty
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
            && let Ok(text) = serde_json::to_vec_pretty(&v)
        {
            return text;
        }
        let mut out = body.to_vec();
        while out.last() == Some(&b'\n') {
            out.pop();
        }
        out
    }
}

/// Reads a value from `--data`, `--file` or standard input (in that order).
pub fn read_input(data: Option<String>, file: Option<std::path::PathBuf>) -> Result<Bytes, String> {
    if let Some(d) = data {
        return Ok(Bytes::from(d));
    }
    if let Some(path) = file {
        return std::fs::read(&path)
            .map(Bytes::from)
            .map_err(|e| format!("cannot read {}: {e}", path.display()));
    }
    use std::io::{IsTerminal, Read};
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err("give the value with --data, --file or on standard input".into());
    }
    let mut buf = Vec::new();
    stdin
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_slashes_and_escape_the_rest() {
        assert_eq!(path_escape("proj/a b?#%"), "proj/a%20b%3F%23%25");
    }
}
