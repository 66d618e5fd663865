//! Which `Host` headers MCP and the dashboard accept, and the API base URL `get_endpoints`
//! reports.

/// Host names every server accepts: loopback.
const LOOPBACK: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Splits `host:port` (or `[v6]:port`) into the host part.
pub fn host_of(bind: &str) -> &str {
    let bind = bind.trim();
    if let Some(rest) = bind.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match bind.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host,
        Some(_) => bind,
        None => bind,
    }
}

pub fn is_wildcard(host: &str) -> bool {
    matches!(host, "" | "0.0.0.0" | "::")
}

/// The allow-list for the MCP `Host` check: loopback, the host of `bind` (unless it is
/// a wildcard address), and `extra`. `*` in `extra` accepts any host (an empty list,
/// which disables the check).
pub fn allowed_hosts(bind: &str, extra: &[String]) -> Vec<String> {
    if extra.iter().any(|h| h.trim() == "*") {
        return Vec::new();
    }
    let mut hosts: Vec<String> = LOOPBACK.iter().map(|h| h.to_string()).collect();
    let host = host_of(bind);
    if !is_wildcard(host) {
        hosts.push(host.to_string());
    }
    hosts.extend(extra.iter().map(|h| h.trim().to_string()));
    hosts.retain(|h| !h.is_empty());
    hosts.sort();
    hosts.dedup();
    hosts
}

/// `http://host:port` for clients: the bind host (`localhost` for a wildcard) and the
/// port actually bound.
pub fn api_base(bind: &str, port: u16) -> String {
    let host = host_of(bind);
    let host = if is_wildcard(host) { "localhost" } else { host };
    if host.contains(':') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bind_host_and_extras_join_loopback() {
        let list = |bind: &str, extra: &[&str]| {
            allowed_hosts(
                bind,
                &extra.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            list("localhost:9800", &[]),
            ["127.0.0.1", "::1", "localhost"]
        );
        assert_eq!(
            list("192.168.1.20:9800", &["koor.lan", " "]),
            ["127.0.0.1", "192.168.1.20", "::1", "koor.lan", "localhost"]
        );
        assert_eq!(list("0.0.0.0:9800", &[]), ["127.0.0.1", "::1", "localhost"]);
        assert_eq!(list("[::]:9800", &[]), ["127.0.0.1", "::1", "localhost"]);
        assert_eq!(
            list("[fe80::1]:9800", &[]),
            ["127.0.0.1", "::1", "fe80::1", "localhost"]
        );
        assert!(
            list("localhost:9800", &["*"]).is_empty(),
            "* disables the check"
        );
    }

    #[test]
    fn the_api_base_names_a_reachable_host() {
        assert_eq!(api_base("localhost:0", 41000), "http://localhost:41000");
        assert_eq!(api_base("0.0.0.0:9800", 9800), "http://localhost:9800");
        assert_eq!(api_base("[::1]:9800", 9800), "http://[::1]:9800");
        assert_eq!(api_base("10.0.0.5:9800", 9800), "http://10.0.0.5:9800");
    }
}
