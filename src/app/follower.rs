//! A follower's start (API §27): the caches it serves from, its replica, its front door,
//! and the takeover that turns it into the leader without dropping its clients.
//!
//! On taking the lead, the member loads every domain actor from the database (as any
//! leader does at start) and serves the leader's servers on the same listening sockets;
//! its follower servers are paused (they accept nothing new) but keep their open
//! connections: a WebSocket subscriber keeps its stream, fed by the replica as before,
//! and a request on a kept-alive connection is forwarded to this member's own leader
//! servers.

use std::sync::{Arc, Mutex};

use actix::Actor;
use actix_web::dev::ServerHandle;
use sea_orm::DatabaseConnection;

use super::server::{self, FollowerParts, Listener, Membership, Servers};
use super::{Domains, StartError, domains};
use crate::batch::Outbox;
use crate::cluster::election::{Election, Leadership};
use crate::cluster::forward::{Forwarder, Phase};
use crate::cluster::replica::{Replica, Stopper};
use crate::cluster::{Role, Seen, View};
use crate::config::Config;
use crate::events::{BusSettings, EventBus, GetBusStats};
use crate::keys::{KeyRing, KeyStore};
use crate::specs::SpecRegistry;
use crate::state::StateStore;
use crate::telemetry::PoolStats;

/// What a promoted follower runs, once it does.
struct Promoted {
    api: ServerHandle,
    dashboard: Option<ServerHandle>,
    leadership: Leadership,
    /// Kept so that the actors live as long as the servers.
    _domains: Domains,
}

/// A follower's takeover, filled in when it happens, and its replica's listening session.
#[derive(Clone)]
pub(super) struct Promotion {
    promoted: Arc<Mutex<Option<Promoted>>>,
    listening: Arc<Mutex<Option<Stopper>>>,
    election: Election,
}

impl Promotion {
    fn set(&self, promoted: Promoted) {
        *self.promoted.lock().unwrap_or_else(|p| p.into_inner()) = Some(promoted);
    }

    /// Stops the leader's servers and lets go of the lead, if this member took it, and
    /// closes the replica's listening session.
    pub(super) async fn stop(self) {
        let listening = self
            .listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(l) = listening {
            l.stop().await;
        }
        let promoted = self
            .promoted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(p) = promoted else {
            self.election.leave().await;
            return;
        };
        if let Some(d) = &p.dashboard {
            d.stop(true).await;
        }
        p.api.stop(true).await;
        p.leadership.release();
    }
}

/// Starts a follower on `db` (its sessions tagged as `url` says) and the task that takes
/// the lead when it can.
#[allow(clippy::too_many_arguments)]
pub(super) async fn start(
    config: &Config,
    db: &DatabaseConnection,
    url: &str,
    election: Election,
    view: View,
    stats: PoolStats,
    api: Listener,
    dashboard: Option<Listener>,
) -> Result<(Servers, Promotion), StartError> {
    let events = EventBus::load(
        db.clone(),
        Outbox::default(),
        BusSettings {
            batch_max: config.write_batch_max,
            retention: config.event_retention,
            prune_interval: config.prune_interval,
            replica: true,
        },
    )
    .await
    .map_err(StartError::Load)?
    .start();
    // The caches load after the bus's starting point, so every event after it reloads
    // what it names, and nothing is missed between the two.
    let from = events
        .send(GetBusStats)
        .await
        .map(|s| s.last_event_id)
        .unwrap_or(0);
    let state = StateStore::load(db.clone(), Outbox::default(), 1)
        .await
        .map_err(StartError::Load)?
        .start();
    let specs = SpecRegistry::load(db.clone(), Outbox::default(), 1)
        .await
        .map_err(StartError::Load)?
        .start();
    let ring = KeyRing::default();
    KeyStore::reload_ring(db, &ring)
        .await
        .map_err(StartError::Load)?;
    let (replica, stopper) = Replica::new(
        url.to_string(),
        db.clone(),
        from,
        events.clone(),
        state.clone(),
        specs.clone(),
        ring.clone(),
    );
    let replica = replica.start();
    let (phase, phase_rx) = tokio::sync::watch::channel(Phase::Following);
    let forwarder = Forwarder::new(
        view.clone(),
        phase_rx,
        election.member().id.clone(),
        config.max_body_bytes,
        config.auth_token.clone(),
        replica,
        &config.outgoing_trust,
    )
    .map_err(|e| StartError::Load(sea_orm::DbErr::Custom(e)))?;
    let later_api = api.try_clone()?;
    let later_dashboard = dashboard.as_ref().map(Listener::try_clone).transpose()?;
    let membership = Membership {
        view: view.clone(),
        election: Some(election.clone()),
        signals: true,
    };
    let parts = FollowerParts {
        state,
        specs,
        events,
        ring,
        forwarder,
        pool: stats.clone(),
    };
    let servers = server::build_follower(config, parts, membership, api, dashboard)?;
    let paused = (
        servers.api.handle(),
        servers.dashboard.as_ref().map(|(_, s)| s.handle()),
    );
    let promotion = Promotion {
        promoted: Arc::default(),
        listening: Arc::new(Mutex::new(Some(stopper))),
        election: election.clone(),
    };
    let slot = promotion.clone();
    let (config, db) = (config.clone(), db.clone());
    actix_web::rt::spawn(async move {
        // Until the leader is known, /health names none.
        let leadership = election.follow(view.clone()).await;
        let _ = phase.send(Phase::TakingOver);
        let leading = Seen {
            role: Role::Leader,
            leader: election.member().url.clone(),
            epoch: leadership.epoch,
        };
        let promoted = take_over(
            &config,
            &db,
            election,
            view.clone(),
            stats,
            later_api,
            later_dashboard,
        );
        match promoted.await {
            Ok((servers, domains)) => {
                let api = servers.api.handle();
                let dashboard = servers.dashboard.as_ref().map(|(_, s)| s.handle());
                actix_web::rt::spawn(servers.api);
                if let Some((_, d)) = servers.dashboard {
                    actix_web::rt::spawn(d);
                }
                // New connections go to the leader's servers; open ones stay where they are.
                paused.0.pause().await;
                if let Some(d) = &paused.1 {
                    d.pause().await;
                }
                view.set(leading);
                let _ = phase.send(Phase::Leading);
                slot.set(Promoted {
                    api,
                    dashboard,
                    leadership,
                    _domains: domains,
                });
                tracing::info!("this member leads the cluster now");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot take the lead; stopping");
                std::process::exit(1);
            }
        }
    });
    Ok((servers, promotion))
}

/// The leader's actors and servers of a member that just took the lead.
async fn take_over(
    config: &Config,
    db: &DatabaseConnection,
    election: Election,
    view: View,
    stats: PoolStats,
    api: Listener,
    dashboard: Option<Listener>,
) -> Result<(Servers, Domains), StartError> {
    let domains = domains::start(db, config).await?;
    let membership = Membership {
        view,
        election: Some(election),
        signals: false,
    };
    let servers = server::build(config, &domains, stats, membership, api, dashboard)?;
    Ok((servers, domains))
}
