//! The delivery pump: how events become deliveries and how one delivery is attempted.
//!
//! Nothing is lost: every webhook has a persisted cursor (the last event turned into
//! deliveries). [`scan`] reads committed events after the lowest cursor from the event
//! log, records one pending delivery per (active webhook, matching event) and moves the
//! cursors in the same transaction, then answers the due head of every idle webhook's
//! queue; [`attempt`] sends one of them and records the result. Per webhook one attempt
//! is in flight at a time, oldest delivery first, so order is preserved (a delivery
//! waiting for its retry holds back the ones after it). After a crash or `kill -9` the
//! cursors and pending rows are still there.

use std::collections::HashMap;
use std::time::Duration;

use actix::Addr;
use sea_orm::DbErr;
use serde_json::json;

use super::attempt::{Outcome, decide, send};
use super::model::{Delivery, Webhook, WebhookError};
use super::repository::{AttemptRecord, NewDelivery, WebhookRepository};
use crate::events::pattern::TopicPattern;
use crate::events::{Event, EventBus, EventError, HistoryAfter, HistoryFilter};
use crate::time::{format_micros, now_micros};

/// Events read from the log per query while turning them into deliveries.
const SCAN_PAGE: u64 = 500;

/// The body of a delivery: compact JSON, identical on every attempt.
pub fn payload(e: &Event) -> String {
    json!({
        "topic": e.topic,
        "data": e.data,
        "source": e.source,
        "event_id": e.id,
        "created_at": format_micros(e.created_at),
    })
    .to_string()
}

fn random_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// Reads events after the cursors, records deliveries and moves the cursors; answers the
/// new cursors and the due head of every idle active webhook.
pub(super) async fn scan(
    repo: WebhookRepository,
    events: Addr<EventBus>,
    hooks: Vec<Webhook>,
    idle: Vec<String>,
) -> Result<(HashMap<String, i64>, Vec<Delivery>), WebhookError> {
    let mut cursors: HashMap<String, i64> =
        hooks.iter().map(|h| (h.id.clone(), h.cursor)).collect();
    // Compiled once per pump, not once per (event, webhook).
    let patterns: Vec<Vec<TopicPattern>> = hooks.iter().map(Webhook::topic_patterns).collect();
    while let Some(after) = cursors.values().min().copied() {
        let page = events
            .send(HistoryAfter {
                after,
                filter: HistoryFilter::default(),
                limit: SCAN_PAGE,
            })
            .await
            .map_err(|_| WebhookError::Unavailable)?;
        let page = match page {
            Ok(page) => page,
            Err(EventError::Expired { oldest, .. }) => {
                tracing::error!(
                    after,
                    oldest,
                    "events were pruned before they reached every webhook; raise event_retention"
                );
                for c in cursors.values_mut() {
                    *c = (*c).max(oldest - 1);
                }
                continue;
            }
            Err(e) => return Err(WebhookError::Storage(e.to_string())),
        };
        let Some(last) = page.last().map(|e| e.id) else {
            break;
        };
        let now = now_micros();
        let mut new = Vec::new();
        for event in &page {
            let body = std::cell::OnceCell::new();
            for (hook, patterns) in hooks.iter().zip(&patterns) {
                if hook.active
                    && cursors[&hook.id] < event.id
                    && patterns.iter().any(|p| p.matches(&event.topic))
                {
                    new.push(NewDelivery {
                        webhook_id: hook.id.clone(),
                        event_id: event.id,
                        topic: event.topic.clone(),
                        message_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
                        body: body.get_or_init(|| payload(event)).clone(),
                    });
                }
            }
        }
        let moved: Vec<(String, i64)> = cursors
            .iter()
            .filter(|(_, c)| **c < last)
            .map(|(id, _)| (id.clone(), last))
            .collect();
        repo.enqueue(new, &moved, now).await?;
        for (id, c) in moved {
            cursors.insert(id, c);
        }
        if (page.len() as u64) < SCAN_PAGE {
            break;
        }
    }
    let now = now_micros();
    let mut due = Vec::new();
    for id in idle {
        if let Some(head) = repo.head(&id).await?
            && head.next_attempt_at.unwrap_or(0) <= now
        {
            due.push(head);
        }
    }
    Ok((cursors, due))
}

/// Sends one attempt of `delivery` (the head of `hook`'s queue) and records its outcome;
/// `fault` panics first (an injected fault).
pub(super) async fn attempt(
    client: reqwest::Client,
    repo: WebhookRepository,
    hook: Webhook,
    delivery: Delivery,
    schedule: Vec<Duration>,
    block_private: bool,
    fault: bool,
) -> Result<AttemptRecord, DbErr> {
    if fault {
        panic!("injected fault");
    }
    let outcome = send(
        &client,
        &hook,
        &delivery.message_id,
        delivery.body.as_bytes(),
        block_private,
    )
    .await;
    let now = now_micros();
    let record = decide(hook, &delivery, &outcome, &schedule, now, random_unit());
    if let Outcome::Error(e) = &outcome {
        tracing::warn!(webhook = %record.webhook.id, delivery = delivery.id, error = %e, "webhook delivery failed");
    }
    repo.record(&record, now).await.map(|()| record)
}
