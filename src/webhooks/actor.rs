//! `WebhookDispatcher`: the single owner of the webhook tables and the worker that
//! delivers events to them, under `actix::Supervisor`.
//!
//! Pumps (see `pump`) run on every live event (the dispatcher subscribes to the bus), on a
//! short timer, and after every attempt. `Pump`, the writes and `RetryDelivery` are atomic
//! (one at a time, in mailbox order); `TestWebhook`, `ListDeliveries` and
//! `GetDispatchStats` run concurrently with them. An attempt runs as its own task, at most
//! one per webhook. Every step runs through `supervise::guarded`: a panic restarts the
//! worker behind the same `Addr`, and the interrupted delivery, still pending, is
//! attempted again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use serde_json::json;

use super::attempt::{Outcome, send};
use super::messages::{
    CreateWebhook, DeleteWebhook, DispatchStats, EnableWebhook, GetDispatchStats, ListDeliveries,
    ListWebhooks, Pump, RetryDelivery, TestWebhook,
};
use super::model::{Delivery, DeliveryState, Webhook, WebhookError};
use super::pump::{attempt, scan};
use super::repository::WebhookRepository;
use super::safety::{GuardedResolver, check_target};
use crate::audit::Audit;
use crate::batch::{Outbox, persist_then, refuse};
use crate::events::{BusFrame, EventBus, GetBusStats, Subscribe};
use crate::journal::Records;
use crate::supervise::{WorkerState, guarded, worker_messages};
use crate::time::{format_micros, now_micros};

/// The worker's name in logs and errors.
const WORKER: &str = "webhook-dispatcher";
/// How often due retries are looked for without any new event.
const TICK: Duration = Duration::from_millis(250);

/// Delivery settings.
#[derive(Clone, Debug)]
pub struct DispatchSettings {
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Delay before each attempt; its length is the most attempts per delivery.
    pub schedule: Vec<Duration>,
    /// Refuse loopback, private, link-local and unique-local targets.
    pub block_private: bool,
    /// Roots trusted for `https` targets.
    pub trust: crate::tls::Trust,
}

/// The webhooks domain actor and delivery worker.
pub struct WebhookDispatcher {
    repo: WebhookRepository,
    events: Addr<EventBus>,
    outbox: Outbox,
    hooks: BTreeMap<String, Webhook>,
    /// Webhooks with an attempt in flight.
    busy: HashSet<String>,
    settings: DispatchSettings,
    client: reqwest::Client,
    worker: WorkerState,
    pump_queued: bool,
    subscribed: bool,
    /// Counts of finished attempts (the `queue_depth` of [`DispatchStats`] is read anew).
    attempts: DispatchStats,
}

impl WebhookDispatcher {
    /// Loads the webhooks and starts the dispatcher under a supervisor.
    pub async fn start(
        db: DatabaseConnection,
        events: Addr<EventBus>,
        outbox: Outbox,
        settings: DispatchSettings,
    ) -> Result<Addr<WebhookDispatcher>, String> {
        let repo = WebhookRepository::new(db);
        let hooks = repo
            .load_all()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|h| (h.id.clone(), h))
            .collect();
        let client = settings
            .trust
            .client_builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                block_private: settings.block_private,
            }))
            .build()
            .map_err(|e| format!("cannot create the webhook HTTP client: {e}"))?;
        Ok(Supervisor::start(move |_| WebhookDispatcher {
            repo,
            events,
            outbox,
            hooks,
            busy: HashSet::new(),
            settings,
            client,
            worker: WorkerState::default(),
            attempts: DispatchStats::default(),
            pump_queued: false,
            subscribed: false,
        }))
    }

    fn queue_pump(&mut self, ctx: &mut Context<Self>) {
        if !self.pump_queued {
            self.pump_queued = true;
            ctx.notify(Pump);
        }
    }

    fn subscribe(&mut self, ctx: &mut Context<Self>) {
        if !self.subscribed {
            self.subscribed = true;
            self.events.do_send(Subscribe {
                pattern: "*".into(),
                recipient: ctx.address().recipient(),
                client: false,
            });
        }
    }

    /// Starts one attempt of `delivery` (the head of its webhook's queue).
    fn start_attempt(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let Some(hook) = self.hooks.get(&delivery.webhook_id).cloned() else {
            return;
        };
        if !hook.active || !self.busy.insert(hook.id.clone()) {
            return;
        }
        let client = self.client.clone();
        let repo = self.repo.clone();
        let schedule = self.settings.schedule.clone();
        let block_private = self.settings.block_private;
        let fault = self.worker.take_fault();
        let id = hook.id.clone();
        // The attempt runs as its own task, not as a future of this actor: while the actor
        // runs an atomic step (a pump, a create) it polls nothing else, and an attempt
        // paused between `BEGIN IMMEDIATE` and `COMMIT` would hold the write lock that step
        // is waiting for. A panic in the task is re-raised inside `guarded`.
        let task = actix_web::rt::spawn(attempt(
            client,
            repo,
            hook,
            delivery,
            schedule,
            block_private,
            fault,
        ));
        let step = guarded(WORKER, move || async move {
            match task.await {
                Ok(recorded) => recorded,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(sea_orm::DbErr::Custom(format!("attempt task failed: {e}"))),
            }
        });
        ctx.spawn(step.map(move |outcome, act: &mut Self, ctx| {
            act.busy.remove(&id);
            match outcome {
                Ok(Ok(record)) => {
                    match record.state {
                        DeliveryState::Delivered => act.attempts.delivered += 1,
                        DeliveryState::Pending => act.attempts.retrying += 1,
                        DeliveryState::Failed => act.attempts.failed += 1,
                    }
                    if let Some(h) = act.hooks.get_mut(&id) {
                        h.active = record.webhook.active;
                        h.fail_count = record.webhook.fail_count;
                        h.last_fired = record.webhook.last_fired;
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(webhook = %id, error = %e, "cannot record a webhook attempt")
                }
                // The worker is restarting; the delivery is still pending.
                Err(_) => return,
            }
            act.queue_pump(ctx);
        }));
    }
}

impl Actor for WebhookDispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Also runs after every restart: timers are reset by a restart.
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
        self.subscribe(ctx);
        ctx.run_interval(TICK, |act, ctx| act.queue_pump(ctx));
        self.queue_pump(ctx);
    }
}

impl Supervised for WebhookDispatcher {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.worker.restarted(WORKER);
        self.busy.clear();
        self.pump_queued = false;
    }
}

impl Handler<BusFrame> for WebhookDispatcher {
    type Result = ();

    fn handle(&mut self, frame: BusFrame, ctx: &mut Self::Context) {
        match frame {
            BusFrame::Event(..) => self.queue_pump(ctx),
            // The log is the source of truth: resubscribe and catch up from the cursors.
            BusFrame::Lagged => {
                self.subscribed = false;
                self.subscribe(ctx);
                self.queue_pump(ctx);
            }
        }
    }
}

impl Handler<Pump> for WebhookDispatcher {
    type Result = AtomicResponse<Self, Result<(), WebhookError>>;

    fn handle(&mut self, _: Pump, _: &mut Self::Context) -> Self::Result {
        self.pump_queued = false;
        let hooks: Vec<Webhook> = self.hooks.values().cloned().collect();
        let idle: Vec<String> = hooks
            .iter()
            .filter(|h| h.active && !self.busy.contains(&h.id))
            .map(|h| h.id.clone())
            .collect();
        let repo = self.repo.clone();
        let events = self.events.clone();
        let step = guarded(WORKER, move || scan(repo, events, hooks, idle));
        AtomicResponse::new(Box::pin(step.map(|outcome, act: &mut Self, ctx| {
            let (cursors, due) = outcome??;
            for (id, c) in cursors {
                if let Some(h) = act.hooks.get_mut(&id) {
                    h.cursor = h.cursor.max(c);
                }
            }
            for d in due {
                act.start_attempt(d, ctx);
            }
            act.worker.step_done();
            Ok(())
        })))
    }
}

impl Handler<CreateWebhook> for WebhookDispatcher {
    type Result = AtomicResponse<Self, Result<Webhook, WebhookError>>;

    fn handle(&mut self, msg: CreateWebhook, _: &mut Self::Context) -> Self::Result {
        let input = msg.input;
        let Some(id) = input.id.filter(|i| !i.is_empty()) else {
            return refuse(WebhookError::Invalid("id is required".into()));
        };
        if id.contains('/') {
            return refuse(WebhookError::Invalid("id must not contain '/'".into()));
        }
        let Some(url) = input.url.filter(|u| !u.is_empty()) else {
            return refuse(WebhookError::Invalid("url is required".into()));
        };
        if self.hooks.contains_key(&id) {
            return refuse(WebhookError::Exists(id));
        }
        let mut patterns: Vec<String> = input
            .patterns
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        if patterns.is_empty() {
            patterns.push("*".into());
        }
        let block_private = self.settings.block_private;
        let events = self.events.clone();
        let repo = self.repo.clone();
        let secret = input.secret.unwrap_or_default();
        let caller = msg.caller;
        let work = async move {
            check_target(&url, block_private, true)
                .await
                .map_err(WebhookError::Invalid)?;
            // Deliveries start after the newest event at creation time.
            let cursor = events
                .send(GetBusStats)
                .await
                .map_err(|_| WebhookError::Unavailable)?
                .last_event_id;
            let hook = Webhook {
                id,
                url,
                patterns,
                secret,
                active: true,
                fail_count: 0,
                last_fired: None,
                created_at: now_micros(),
                cursor,
            };
            let records = Records::audited(
                Audit::new("webhook.create", hook.id.as_str())
                    .with("url", hook.url.as_str())
                    .by(&caller),
            );
            let stamped = repo.save(&hook, records, now_micros()).await?;
            Ok((hook, stamped))
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(
            |result: Result<(Webhook, _), WebhookError>, act, _| {
                let (hook, stamped) = result?;
                act.outbox.committed(stamped);
                act.hooks.insert(hook.id.clone(), hook.clone());
                Ok(hook)
            },
        )))
    }
}

impl Handler<ListWebhooks> for WebhookDispatcher {
    type Result = MessageResult<ListWebhooks>;

    fn handle(&mut self, _: ListWebhooks, _: &mut Self::Context) -> Self::Result {
        let mut hooks: Vec<Webhook> = self.hooks.values().cloned().collect();
        hooks.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        MessageResult(hooks)
    }
}

impl Handler<DeleteWebhook> for WebhookDispatcher {
    type Result = AtomicResponse<Self, Result<(), WebhookError>>;

    fn handle(&mut self, msg: DeleteWebhook, _: &mut Self::Context) -> Self::Result {
        if !self.hooks.contains_key(&msg.id) {
            return refuse(WebhookError::NotFound(msg.id));
        }
        let repo = self.repo.clone();
        let id = msg.id.clone();
        let records =
            Records::audited(Audit::new("webhook.delete", msg.id.as_str()).by(&msg.caller));
        persist_then(
            self,
            async move { repo.delete(&id, records, now_micros()).await },
            move |stamped, act: &mut Self, _| {
                act.outbox.committed(stamped);
                act.hooks.remove(&msg.id);
            },
        )
    }
}

impl Handler<EnableWebhook> for WebhookDispatcher {
    type Result = AtomicResponse<Self, Result<Webhook, WebhookError>>;

    fn handle(&mut self, msg: EnableWebhook, _: &mut Self::Context) -> Self::Result {
        let Some(mut hook) = self.hooks.get(&msg.id).cloned() else {
            return refuse(WebhookError::NotFound(msg.id));
        };
        hook.active = true;
        hook.fail_count = 0;
        let repo = self.repo.clone();
        let stored = hook.clone();
        let records =
            Records::audited(Audit::new("webhook.enable", hook.id.as_str()).by(&msg.caller));
        persist_then(
            self,
            async move { repo.save(&stored, records, now_micros()).await },
            move |stamped, act: &mut Self, ctx| {
                act.outbox.committed(stamped);
                if let Some(h) = act.hooks.get_mut(&hook.id) {
                    h.active = true;
                    h.fail_count = 0;
                }
                act.queue_pump(ctx);
                hook
            },
        )
    }
}

impl Handler<TestWebhook> for WebhookDispatcher {
    type Result = ResponseFuture<Result<(), WebhookError>>;

    fn handle(&mut self, msg: TestWebhook, _: &mut Self::Context) -> Self::Result {
        let Some(hook) = self.hooks.get(&msg.id).cloned() else {
            return Box::pin(async move { Err(WebhookError::NotFound(msg.id)) });
        };
        let client = self.client.clone();
        let block_private = self.settings.block_private;
        Box::pin(async move {
            let body = json!({
                "topic": "webhook.test",
                "data": {"webhook_id": hook.id, "test": true},
                "source": "koor",
                "event_id": 0,
                "created_at": format_micros(now_micros()),
            })
            .to_string();
            let message_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            match send(&client, &hook, &message_id, body.as_bytes(), block_private).await {
                Outcome::Status { code, .. } if code < 300 => Ok(()),
                Outcome::Status { code, .. } => Err(WebhookError::TestFailed(format!(
                    "the receiver answered {code}"
                ))),
                Outcome::Error(e) => Err(WebhookError::TestFailed(e)),
            }
        })
    }
}

impl Handler<ListDeliveries> for WebhookDispatcher {
    type Result = ResponseFuture<Result<Vec<Delivery>, WebhookError>>;

    fn handle(&mut self, msg: ListDeliveries, _: &mut Self::Context) -> Self::Result {
        if !self.hooks.contains_key(&msg.id) {
            return Box::pin(async move { Err(WebhookError::NotFound(msg.id)) });
        }
        let repo = self.repo.clone();
        Box::pin(async move { Ok(repo.list(&msg.id, msg.limit).await?) })
    }
}

impl Handler<RetryDelivery> for WebhookDispatcher {
    type Result = AtomicResponse<Self, Result<Delivery, WebhookError>>;

    fn handle(&mut self, msg: RetryDelivery, _: &mut Self::Context) -> Self::Result {
        if !self.hooks.contains_key(&msg.id) {
            return refuse(WebhookError::NotFound(msg.id));
        }
        let repo = self.repo.clone();
        let records = Records::audited(
            Audit::new("webhook.retry", msg.id.as_str())
                .with("delivery_id", msg.delivery_id)
                .by(&msg.caller),
        );
        AtomicResponse::new(Box::pin(
            async move {
                repo.retry(&msg.id, msg.delivery_id, records, now_micros())
                    .await?
                    .ok_or(WebhookError::DeliveryNotFound(msg.id, msg.delivery_id))
            }
            .into_actor(self)
            .map(|result, act, ctx| {
                let (delivery, stamped) = result?;
                act.outbox.committed(stamped);
                act.queue_pump(ctx);
                Ok(delivery)
            }),
        ))
    }
}

impl Handler<GetDispatchStats> for WebhookDispatcher {
    type Result = ResponseFuture<Result<DispatchStats, WebhookError>>;

    fn handle(&mut self, _: GetDispatchStats, _: &mut Self::Context) -> Self::Result {
        let repo = self.repo.clone();
        let attempts = self.attempts;
        Box::pin(async move {
            Ok(DispatchStats {
                queue_depth: repo.pending_count().await?,
                ..attempts
            })
        })
    }
}

worker_messages!(WebhookDispatcher);
