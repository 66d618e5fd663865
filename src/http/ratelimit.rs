//! Rate limits (API §25): a token bucket per principal (per client IP when anonymous),
//! kept by `governor`, and the `RateLimit-Policy` / `RateLimit` headers of the IETF
//! httpapi rate-limit-headers draft. A key with its own `rate_limit` has its own bucket
//! (in its grant); every other principal shares one keyed limiter with the server's quota.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{NotUntil, RateLimiter};

use super::caller::Principal;
use crate::keys::quota;

/// The bucket a request draws from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    Admin,
    Key(String),
    Agent(String),
    Ip(IpAddr),
}

type Keyed = RateLimiter<
    LimitKey,
    DefaultKeyedStateStore<LimitKey>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Buckets tracked before idle ones are dropped (a bucket that refilled is forgotten: it
/// is the same as a new one).
const TRACKED: usize = 10_000;

/// The server-wide limiter.
pub struct Limits {
    keyed: Option<(Keyed, f64, f64)>,
    checks: AtomicU64,
    clock: DefaultClock,
}

/// The answer of a check.
pub enum Verdict {
    /// Not limited at all.
    Free,
    /// Within the limit: the RateLimit headers to add.
    Allowed(Headers),
    /// Over the limit: 429 with these headers.
    Refused(Headers),
}

/// The RateLimit header values of one answer.
pub struct Headers {
    policy: String,
    limit: String,
    retry_after: Option<u64>,
}

impl Headers {
    fn new(rate: f64, burst: f64, remaining: u32, reset: u64) -> Headers {
        let window = (burst / rate).ceil().max(1.0) as u64;
        Headers {
            policy: format!("\"default\";q={};w={window}", burst as u64),
            limit: format!("\"default\";r={remaining};t={reset}"),
            retry_after: None,
        }
    }

    /// Writes the headers into `map`.
    pub fn apply(&self, map: &mut HeaderMap) {
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                map.insert(HeaderName::from_static(name), v);
            }
        };
        put("ratelimit-policy", &self.policy);
        put("ratelimit", &self.limit);
        if let Some(secs) = self.retry_after {
            put("retry-after", &secs.to_string());
        }
    }

    /// Whole seconds to wait (429 only).
    pub fn retry_after(&self) -> u64 {
        self.retry_after.unwrap_or(1)
    }
}

impl Limits {
    /// `rate` requests/s per principal with bursts of `burst`; a rate of 0 limits only keys
    /// with their own `rate_limit`.
    pub fn new(rate: f64, burst: f64) -> Limits {
        Limits {
            keyed: quota(rate, burst).map(|q| {
                (
                    RateLimiter::keyed(q).with_middleware::<StateInformationMiddleware>(),
                    rate,
                    burst,
                )
            }),
            checks: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    /// Draws one request of `principal` (from `ip` when anonymous).
    pub fn check(&self, principal: &Principal, ip: Option<IpAddr>) -> Verdict {
        if let Principal::Key(grant) = principal
            && let (Some(bucket), Some((rate, burst))) = (&grant.bucket, grant.quota)
        {
            return self.verdict(bucket.check(), rate, burst);
        }
        let Some((keyed, rate, burst)) = &self.keyed else {
            return Verdict::Free;
        };
        let key = match principal {
            Principal::Admin => LimitKey::Admin,
            Principal::Key(g) => LimitKey::Key(g.id.clone()),
            Principal::Agent(a) => LimitKey::Agent(a.id.clone()),
            Principal::Anonymous => match ip {
                Some(ip) => LimitKey::Ip(ip),
                None => return Verdict::Free,
            },
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 0 && keyed.len() > TRACKED {
            keyed.retain_recent();
            keyed.shrink_to_fit();
        }
        self.verdict(keyed.check_key(&key), *rate, *burst)
    }

    fn verdict(
        &self,
        outcome: Result<
            governor::middleware::StateSnapshot,
            NotUntil<governor::clock::QuantaInstant>,
        >,
        rate: f64,
        burst: f64,
    ) -> Verdict {
        match outcome {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset = ((burst - remaining as f64).max(0.0) / rate).ceil() as u64;
                Verdict::Allowed(Headers::new(rate, burst, remaining, reset))
            }
            Err(not_until) => {
                let wait: Duration = not_until.wait_time_from(self.clock.now());
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                let mut h = Headers::new(rate, burst, 0, secs);
                h.retry_after = Some(secs);
                Verdict::Refused(h)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_refused_past_its_size_with_headers() {
        let limits = Limits::new(5.0, 5.0);
        let ip = Some("127.0.0.1".parse().unwrap());
        let mut allowed = 0;
        let mut refused = None;
        for _ in 0..20 {
            match limits.check(&Principal::Anonymous, ip) {
                Verdict::Allowed(_) => allowed += 1,
                Verdict::Refused(h) => refused = Some(h),
                Verdict::Free => panic!("limited server"),
            }
        }
        assert!((5..=6).contains(&allowed), "{allowed}");
        let h = refused.expect("refused");
        assert!(h.retry_after() >= 1);
        let mut map = HeaderMap::new();
        h.apply(&mut map);
        assert_eq!(map.get("ratelimit-policy").unwrap(), "\"default\";q=5;w=1");
        assert!(
            map.get("ratelimit")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("r=0")
        );
        // Another principal has its own bucket.
        assert!(matches!(
            limits.check(&Principal::Admin, ip),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            Limits::new(0.0, 0.0).check(&Principal::Admin, ip),
            Verdict::Free
        ));
    }
}
