//! One delivery attempt: the request, and the pure decision of what its outcome means
//! (delivered, retry later, failed; the webhook's counters).

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::model::{Delivery, DeliveryState, Webhook};
use super::repository::AttemptRecord;
use super::safety::check_target;
use super::sign::{koor_signature, standard_signature};

/// Consecutive failures after which a webhook is disabled.
pub const MAX_FAILURES: i64 = 10;

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What the receiver did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status (and `Retry-After`, when given).
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// No response: connection error, timeout, refused target.
    Error(String),
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let secs = (at.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// POSTs `body` to the webhook with Koor's and Standard Webhooks' headers.
pub async fn send(
    client: &reqwest::Client,
    hook: &Webhook,
    message_id: &str,
    body: &[u8],
    block_private: bool,
) -> Outcome {
    if let Err(e) = check_target(&hook.url, block_private, false).await {
        return Outcome::Error(e);
    }
    let timestamp = chrono::Utc::now().timestamp();
    let mut req = client
        .post(&hook.url)
        .header(CONTENT_TYPE, "application/json")
        .header("X-Koor-Event", "true")
        .header("webhook-id", message_id)
        .header("webhook-timestamp", timestamp.to_string());
    if !hook.secret.is_empty() {
        req = req
            .header("X-Koor-Signature", koor_signature(&hook.secret, body))
            .header(
                "webhook-signature",
                standard_signature(&hook.secret, message_id, timestamp, body),
            );
    }
    match req.body(body.to_vec()).send().await {
        Ok(resp) => Outcome::Status {
            code: resp.status().as_u16(),
            retry_after: retry_after(resp.headers()),
        },
        Err(e) => Outcome::Error(crate::error::chain(&e)),
    }
}

/// `delay` spread by ±10 % (`unit` in [0, 1)), so retries of many deliveries don't align.
fn jittered(delay: Duration, unit: f64) -> Duration {
    delay.mul_f64(0.9 + 0.2 * unit.clamp(0.0, 1.0))
}

/// What an attempt's outcome means for the delivery and its webhook. `schedule[n]` is the
/// delay before attempt n+1; its length is the most attempts.
pub fn decide(
    mut hook: Webhook,
    delivery: &Delivery,
    outcome: &Outcome,
    schedule: &[Duration],
    now: i64,
    unit: f64,
) -> AttemptRecord {
    let attempts = delivery.attempts + 1;
    let (status, error, retry, retry_after) = match outcome {
        Outcome::Status { code, .. } if *code < 300 => (Some(*code), String::new(), false, None),
        Outcome::Status { code: 410, .. } => (
            Some(410),
            "410 Gone: the receiver asked to stop; webhook disabled".to_string(),
            false,
            None,
        ),
        Outcome::Status { code, retry_after } => {
            let retryable = *code == 429 || *code >= 500;
            let why = if (300..400).contains(code) {
                format!("status {code}: redirects are not followed")
            } else {
                format!("status {code}")
            };
            (Some(*code), why, retryable, *retry_after)
        }
        Outcome::Error(e) => (None, e.clone(), true, None),
    };
    let delivered = error.is_empty();
    let mut state = DeliveryState::Delivered;
    let mut next_attempt_at = None;
    if delivered {
        hook.fail_count = 0;
        hook.last_fired = Some(now);
    } else {
        hook.fail_count += 1;
        if status == Some(410) {
            hook.active = false;
        }
        state = DeliveryState::Failed;
        if retry && (attempts as usize) < schedule.len() {
            let delay =
                jittered(schedule[attempts as usize], unit).max(retry_after.unwrap_or_default());
            state = DeliveryState::Pending;
            next_attempt_at = Some(now + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 2));
        }
        if hook.fail_count >= MAX_FAILURES {
            hook.active = false;
        }
    }
    AttemptRecord {
        delivery_id: delivery.id,
        state,
        attempts,
        last_status: status.map(i64::from),
        last_error: error,
        next_attempt_at,
        webhook: hook,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(fail_count: i64) -> Webhook {
        Webhook {
            id: "h".into(),
            url: "http://127.0.0.1:9/".into(),
            patterns: vec!["*".into()],
            secret: String::new(),
            active: true,
            fail_count,
            last_fired: None,
            created_at: 0,
            cursor: 0,
        }
    }

    fn delivery(attempts: i64) -> Delivery {
        Delivery {
            id: 1,
            webhook_id: "h".into(),
            event_id: 1,
            topic: "t".into(),
            message_id: "msg_1".into(),
            body: "{}".into(),
            state: DeliveryState::Pending,
            attempts,
            last_status: None,
            last_error: String::new(),
            next_attempt_at: Some(0),
            created_at: 0,
            updated_at: 0,
        }
    }

    const SECOND: i64 = 1_000_000;

    fn status(code: u16) -> Outcome {
        Outcome::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn outcomes_table() {
        let schedule: Vec<Duration> = [0, 5, 300]
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect();
        // (outcome, attempts so far, failures so far) -> (state, next due in s, active, failures)
        let cases = [
            (status(200), 0, 3, ("delivered", None, true, 0)),
            (status(500), 0, 0, ("pending", Some(5), true, 1)),
            (status(429), 1, 0, ("pending", Some(300), true, 1)),
            (status(503), 2, 0, ("failed", None, true, 1)),
            (
                Outcome::Error("refused".into()),
                0,
                0,
                ("pending", Some(5), true, 1),
            ),
            (status(302), 0, 0, ("failed", None, true, 1)),
            (status(404), 0, 0, ("failed", None, true, 1)),
            (status(410), 0, 0, ("failed", None, false, 1)),
            (status(500), 0, 9, ("pending", Some(5), false, 10)),
            (
                Outcome::Status {
                    code: 503,
                    retry_after: Some(Duration::from_secs(60)),
                },
                0,
                0,
                ("pending", Some(60), true, 1),
            ),
        ];
        for (outcome, attempts, failures, (state, due, active, fails)) in cases {
            let r = decide(
                hook(failures),
                &delivery(attempts),
                &outcome,
                &schedule,
                0,
                0.5,
            );
            assert_eq!(r.state.as_str(), state, "{outcome:?}");
            assert_eq!(r.next_attempt_at, due.map(|s| s * SECOND), "{outcome:?}");
            assert_eq!(r.webhook.active, active, "{outcome:?}");
            assert_eq!(r.webhook.fail_count, fails, "{outcome:?}");
            assert_eq!(r.attempts, attempts + 1);
        }
        let ok = decide(hook(0), &delivery(0), &status(204), &schedule, 7, 0.0);
        assert_eq!(ok.webhook.last_fired, Some(7));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let d = Duration::from_secs(100);
        assert_eq!(jittered(d, 0.0), Duration::from_secs(90));
        assert_eq!(jittered(d, 0.5), Duration::from_secs(100));
        assert!(jittered(d, 0.999) <= Duration::from_secs(110));
    }
}
