//! Outbound safety for webhook targets: link-local (cloud metadata) addresses are always
//! refused; with `webhook_block_private`, loopback, private, shared and unique-local ones
//! too. Checked when a webhook is created and again, on the resolved addresses, at every
//! connection (a custom DNS resolver), so DNS rebinding cannot slip past the first check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// True when a connection to `ip` is allowed.
pub fn ip_allowed(ip: IpAddr, block_private: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, block_private),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_allowed(v4, block_private),
            None => v6_allowed(v6, block_private),
        },
    }
}

fn v4_allowed(ip: Ipv4Addr, block_private: bool) -> bool {
    if ip.is_link_local() {
        return false;
    }
    if !block_private {
        return true;
    }
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || shared
        || a == 0)
}

fn v6_allowed(ip: Ipv6Addr, block_private: bool) -> bool {
    let seg0 = ip.segments()[0];
    let link_local = (seg0 & 0xffc0) == 0xfe80;
    if link_local {
        return false;
    }
    if !block_private {
        return true;
    }
    let unique_local = (seg0 & 0xfe00) == 0xfc00;
    !(ip.is_loopback() || ip.is_unspecified() || unique_local)
}

/// Checks a target URL: http(s), a host, and allowed addresses: an address literal always,
/// a host name (resolved) when `resolve` is set and private targets are blocked.
pub async fn check_target(
    url: &str,
    block_private: bool,
    resolve: bool,
) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url is not valid: {e}"))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err("url must use http or https".into());
    }
    let Some(host) = parsed.host_str() else {
        return Err("url has no host".into());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !ip_allowed(ip, block_private) {
            return Err(format!("target address {ip} is not allowed"));
        }
        return Ok(parsed);
    }
    if block_private && resolve {
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        if let Some(bad) = addrs.iter().find(|a| !ip_allowed(a.ip(), true)) {
            return Err(format!(
                "{host} resolves to {}, which is not allowed",
                bad.ip()
            ));
        }
    }
    Ok(parsed)
}

/// A DNS resolver that drops addresses that are not allowed (and fails when none is left).
pub struct GuardedResolver {
    pub block_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let block_private = self.block_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| ip_allowed(a.ip(), block_private))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no address a webhook may connect to").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_table() {
        let cases = [
            ("169.254.169.254", false, false),
            ("::ffff:169.254.169.254", false, false),
            ("fe80::1", false, false),
            ("127.0.0.1", false, true),
            ("127.0.0.1", true, false),
            ("10.1.2.3", true, false),
            ("172.16.0.1", true, false),
            ("192.168.1.1", true, false),
            ("100.64.0.1", true, false),
            ("::1", true, false),
            ("fd00::1", true, false),
            ("::ffff:10.0.0.1", true, false),
            ("93.184.216.34", true, true),
            ("2606:4700::1111", true, true),
        ];
        for (ip, block, want) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_allowed(ip, block), want, "{ip} block_private={block}");
        }
    }

    #[actix_web::test]
    async fn targets_are_checked() {
        assert!(
            check_target("ftp://example.com/x", false, true)
                .await
                .is_err()
        );
        assert!(check_target("not a url", false, true).await.is_err());
        assert!(
            check_target("http://169.254.169.254/latest", false, true)
                .await
                .is_err()
        );
        assert!(
            check_target("http://127.0.0.1:9/x", false, true)
                .await
                .is_ok()
        );
        assert!(
            check_target("http://127.0.0.1:9/x", true, true)
                .await
                .is_err()
        );
        assert!(check_target("http://[::1]:9/x", true, true).await.is_err());
        assert!(
            check_target("http://localhost:9/x", true, true)
                .await
                .is_err()
        );
    }

    #[actix_web::test]
    async fn https_targets_get_the_same_checks() {
        for (url, block, ok) in [
            ("https://169.254.169.254/latest", false, false),
            ("https://[fe80::1]/x", false, false),
            ("https://127.0.0.1:8443/x", false, true),
            ("https://127.0.0.1:8443/x", true, false),
            ("https://localhost:8443/x", true, false),
            ("https://10.0.0.1/x", true, false),
            ("https://93.184.216.34/x", true, true),
        ] {
            assert_eq!(
                check_target(url, block, true).await.is_ok(),
                ok,
                "{url} block_private={block}"
            );
        }
    }
}
