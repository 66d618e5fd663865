//! `GET /api/events/subscribe`: one actix-web-actors actor per WebSocket.
//!
//! The session subscribes to the bus with its own `Recipient`. Its mailbox is the
//! subscriber's bounded buffer: actix polls a WebSocket actor only while its socket can
//! take more, so a slow reader stops draining the mailbox, the bus's `try_send` fails, and
//! the bus unsubscribes it and queues `Lagged` behind the events already buffered. The
//! session then writes those events, one `koor.lagged` frame naming the last id it sent,
//! and closes. With `?after=ID` the session first replays stored events in
//! `(ID, live_after]`, holding its mailbox (the live events) until the replay is written,
//! so there is neither a gap nor a duplicate. All WebSocket code lives in this module.

use bytestring::ByteString;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use serde_json::json;

use super::actor::EventBus;
use super::messages::*;
use super::model::{Event, EventError, HistoryFilter};
use crate::time::{format_micros, now_micros};

/// Server pings this often.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A client silent (no pong, no frame) for this long is disconnected.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Stored events read per replay step.
const REPLAY_PAGE: u64 = 500;

/// One WebSocket subscriber.
pub struct Subscription {
    bus: Addr<EventBus>,
    pattern: String,
    after: Option<i64>,
    buffer: usize,
    id: Option<u64>,
    last_sent: i64,
    last_seen: Instant,
}

impl Subscription {
    pub fn new(bus: Addr<EventBus>, pattern: String, after: Option<i64>, buffer: usize) -> Self {
        Self {
            bus,
            pattern,
            after,
            buffer: buffer.max(1),
            id: None,
            last_sent: after.unwrap_or(0),
            last_seen: Instant::now(),
        }
    }

    fn send_event(&mut self, event: &Event, ctx: &mut ws::WebsocketContext<Self>) {
        if event.id > self.last_sent {
            self.send_frame(event.id, ByteString::from(event.to_json()), ctx);
        }
    }

    /// Sends event `id` as `text` unless it was already sent (replay and live overlap).
    fn send_frame(&mut self, id: i64, text: ByteString, ctx: &mut ws::WebsocketContext<Self>) {
        if id > self.last_sent {
            ctx.text(text);
            self.last_sent = id;
        }
    }

    /// Sends an error frame and closes the socket.
    fn fail(&mut self, err: &EventError, ctx: &mut ws::WebsocketContext<Self>) {
        let code = crate::error::DomainError::kind(err).status().as_u16();
        let mut body = json!({"error": err.to_string(), "code": code});
        if let EventError::Expired { oldest, .. } = err {
            body["oldest_id"] = json!(oldest);
        }
        ctx.text(body.to_string());
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Policy,
            description: Some(err.to_string()),
        }));
        ctx.stop();
    }

    /// Writes stored events in `(cursor, until]`, one page at a time, while the mailbox
    /// (live events, all with ids > `until`) waits.
    fn replay(&mut self, cursor: i64, until: i64, ctx: &mut ws::WebsocketContext<Self>) {
        if cursor >= until {
            return;
        }
        let msg = HistoryAfter {
            after: cursor,
            filter: HistoryFilter {
                topic: Some(self.pattern.clone()),
                until_id: Some(until),
                ..Default::default()
            },
            limit: REPLAY_PAGE,
        };
        self.bus
            .send(msg)
            .into_actor(self)
            .then(move |result, act, ctx| {
                match result {
                    Ok(Ok(events)) => {
                        let full = events.len() as u64 == REPLAY_PAGE;
                        let mut next = until;
                        for event in &events {
                            act.send_event(event, ctx);
                            next = event.id;
                        }
                        if full {
                            act.replay(next, until, ctx);
                        }
                    }
                    Ok(Err(e)) => act.fail(&e, ctx),
                    Err(_) => act.fail(&EventError::Unavailable, ctx),
                }
                fut::ready(())
            })
            .wait(ctx);
    }
}

impl Actor for Subscription {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.buffer);
        ctx.run_interval(PING_EVERY, |act, ctx| {
            if act.last_seen.elapsed() > CLIENT_TIMEOUT {
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
        let subscribe = Subscribe {
            pattern: self.pattern.clone(),
            recipient: ctx.address().recipient(),
            client: true,
        };
        self.bus
            .send(subscribe)
            .into_actor(self)
            .then(|result, act, ctx| {
                match result {
                    Ok(sub) => {
                        act.id = Some(sub.id);
                        match act.after {
                            Some(after) => act.replay(after, sub.live_after, ctx),
                            None => act.last_sent = sub.live_after,
                        }
                    }
                    Err(_) => act.fail(&EventError::Unavailable, ctx),
                }
                fut::ready(())
            })
            .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(id) = self.id {
            self.bus.do_send(Unsubscribe { id });
        }
    }
}

impl Handler<BusFrame> for Subscription {
    type Result = ();

    fn handle(&mut self, frame: BusFrame, ctx: &mut Self::Context) {
        match frame {
            BusFrame::Event(event, text) => self.send_frame(event.id, text, ctx),
            BusFrame::Lagged => {
                self.id = None;
                let lagged = json!({
                    "id": 0,
                    "topic": "koor.lagged",
                    "data": {"resume_after": self.last_sent},
                    "source": "koor",
                    "created_at": format_micros(now_micros()),
                });
                ctx.text(lagged.to_string());
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Again,
                    description: Some("subscriber buffer overflowed; resume with after".into()),
                }));
                ctx.stop();
            }
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Subscription {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        match msg {
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            // Client data frames are ignored; pongs only refresh `last_seen`.
            Ok(_) => {}
            Err(_) => ctx.stop(),
        }
    }
}
