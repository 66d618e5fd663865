//! Starting every domain actor on the open database, in dependency order: the audit log and
//! the event bus first (every writer's outbox reaches them), then the writers, then the
//! monitors and the dispatcher that watch them.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use actix::{Actor, Addr};
use sea_orm::DatabaseConnection;

use super::StartError;
use crate::admin::Maintenance;
use crate::audit::AuditLog;
use crate::batch::Outbox;
use crate::compliance::{ComplianceDeps, ComplianceMonitor};
use crate::config::Config;
use crate::events::{BusSettings, EventBus};
use crate::instances::{InstanceRegistry, WatchHolders};
use crate::keys::{KeyRing, KeyStore};
use crate::leases::{ExpireLeases, Fencing, LeaseSweeper};
use crate::liveness::{LivenessMonitor, LivenessSettings};
use crate::llm::LlmLedger;
use crate::locks::LockTable;
use crate::metrics::AgentMetrics;
use crate::retention::HistoryRetention;
use crate::rules::RuleBook;
use crate::specs::SpecRegistry;
use crate::state::StateStore;
use crate::tasks::TaskQueue;
use crate::templates::TemplateLibrary;
use crate::topology::TopologyWatcher;
use crate::webhooks::{DispatchSettings, WebhookDispatcher};

/// How often expired leases are swept (API §22: their events within 2 s of expiry).
const LEASE_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// The addresses of every domain actor, handed to the HTTP layer as app data.
#[derive(Clone)]
pub struct Domains {
    pub state: Addr<StateStore>,
    pub specs: Addr<SpecRegistry>,
    pub rules: Addr<RuleBook>,
    pub events: Addr<EventBus>,
    pub instances: Addr<InstanceRegistry>,
    pub metrics: Addr<AgentMetrics>,
    pub liveness: Addr<LivenessMonitor>,
    pub compliance: Addr<ComplianceMonitor>,
    pub templates: Addr<TemplateLibrary>,
    pub webhooks: Addr<WebhookDispatcher>,
    pub audit: Addr<AuditLog>,
    pub llm: Addr<LlmLedger>,
    pub locks: Addr<LockTable>,
    /// Expires the leases of every lease owner (tasks, locks) every second.
    pub leases: Addr<LeaseSweeper>,
    /// The work queue, a lease owner.
    pub tasks: Addr<TaskQueue>,
    /// Snapshots and the storage check (API §26).
    pub admin: Addr<Maintenance>,
    /// The access keys (API §25).
    pub keys: Addr<KeyStore>,
    /// The live keys, read by the gate.
    pub key_ring: KeyRing,
    /// Who started whom and who works with whom.
    pub topology: Addr<TopologyWatcher>,
}

/// Loads each domain's stored data and starts its actor.
pub(super) async fn start(db: &DatabaseConnection, config: &Config) -> Result<Domains, StartError> {
    let audit_committed = Arc::new(AtomicI64::new(0));
    let audit = AuditLog::load(db.clone(), audit_committed.clone())
        .await
        .map_err(StartError::Load)?
        .with_retention(config.audit_retention, config.prune_interval)
        .start();
    let bus_settings = BusSettings {
        batch_max: config.write_batch_max,
        retention: config.event_retention,
        prune_interval: config.prune_interval,
        replica: false,
    };
    let bus_outbox = Outbox::new(None, audit_committed);
    let events = EventBus::load(db.clone(), bus_outbox.clone(), bus_settings)
        .await
        .map_err(StartError::Load)?
        .start();
    let outbox = bus_outbox.with_bus(events.clone());
    // One fencing-token counter for every lease owner (API §22).
    let fencing = Fencing::load(db).await.map_err(StartError::Load)?;
    // Every lease owner adds itself here; the sweeper starts after them.
    let mut lease_owners: Vec<actix::Recipient<ExpireLeases>> = Vec::new();
    let history = HistoryRetention {
        keep_versions: config.history_keep_versions,
        max_age: config.history_retention,
    };
    let state = StateStore::load(db.clone(), outbox.clone(), config.write_batch_max)
        .await
        .map_err(StartError::Load)?
        .with_retention(history, config.prune_interval)
        .start();
    let specs = SpecRegistry::load(db.clone(), outbox.clone(), config.write_batch_max)
        .await
        .map_err(StartError::Load)?
        .with_retention(history, config.prune_interval)
        .start();
    let rules = RuleBook::load(db.clone(), outbox.clone())
        .await
        .map_err(StartError::Load)?
        .start();
    let metrics = AgentMetrics::new(db.clone(), outbox.clone(), config.write_batch_max).start();
    let instances = InstanceRegistry::load(db.clone(), outbox.clone(), config.write_batch_max)
        .await
        .map_err(StartError::Load)?
        .start();
    let locks = LockTable::load(
        db.clone(),
        outbox.clone(),
        fencing.clone(),
        config.write_batch_max,
    )
    .await
    .map_err(StartError::Load)?
    .start();
    lease_owners.push(locks.clone().recipient());
    instances.do_send(WatchHolders(locks.clone().recipient()));
    let liveness = LivenessMonitor::start(
        instances.clone(),
        LivenessSettings {
            stale_after: config.stale_after,
            interval: config.liveness_interval,
        },
    );
    let compliance = ComplianceMonitor::start(
        db.clone(),
        ComplianceDeps {
            instances: instances.clone(),
            specs: specs.clone(),
            outbox: outbox.clone(),
        },
        config.compliance_interval,
    );
    let templates = TemplateLibrary::load(db.clone(), outbox.clone(), rules.clone(), specs.clone())
        .await
        .map_err(StartError::Load)?
        .start();
    let webhooks = WebhookDispatcher::start(
        db.clone(),
        events.clone(),
        outbox.clone(),
        DispatchSettings {
            timeout: config.webhook_timeout,
            schedule: config.webhook_retry_schedule.clone(),
            block_private: config.webhook_block_private,
            trust: config.outgoing_trust.clone(),
        },
    )
    .await
    .map_err(|e| StartError::Load(sea_orm::DbErr::Custom(e)))?;
    let tasks = TaskQueue::load(
        db.clone(),
        outbox.clone(),
        config.write_batch_max,
        fencing.clone(),
        Some(instances.clone()),
    )
    .await
    .map_err(StartError::Load)?
    .start();
    lease_owners.push(tasks.clone().recipient());
    let keys_outbox = outbox.clone();
    let llm = LlmLedger::load(db.clone(), outbox, config.write_batch_max)
        .await
        .map_err(StartError::Load)?
        .with_retention(config.llm_usage_retention, config.prune_interval)
        .start();
    let leases = LeaseSweeper::start(lease_owners, Some(LEASE_SWEEP));
    let admin = Maintenance::new(db.clone(), config.data_dir.clone(), config.database()).start();
    let key_ring = KeyRing::default();
    let keys = KeyStore::load(db.clone(), keys_outbox, key_ring.clone())
        .await
        .map_err(StartError::Load)?
        .start();
    let topology = TopologyWatcher::new(instances.clone(), Some(webhooks.clone())).start();
    Ok(Domains {
        state,
        specs,
        rules,
        events,
        instances,
        metrics,
        liveness,
        compliance,
        templates,
        webhooks,
        audit,
        llm,
        locks,
        leases,
        tasks,
        admin,
        keys,
        key_ring,
        topology,
    })
}
