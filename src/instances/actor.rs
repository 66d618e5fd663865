//! `InstanceRegistry`: the single owner and single writer of the instances table.
//!
//! Concurrency: reads (`GetInstance`, `ListInstances`, `Identify`, `CountInstances`) are
//! answered from memory inside the actor. Writes (register, heartbeat, activate,
//! capabilities, intent, deregister, `MarkStale`) are group-committed ([`GroupCommit`]):
//! each batch is applied in order to a copy of the instances it touches, and the final
//! rows, the batch's audit entries and its lifecycle events (`agent.registered`,
//! `agent.active`, `agent.deregistered`) are committed in one transaction; only then is
//! memory updated and every caller answered. So an acknowledged write is durable with its
//! audit entry and its events, and a stale sweep and a heartbeat never race: they are
//! ordered in the queue. A batch's heartbeats are counted in the agent metrics inside the
//! same transaction ([`crate::metrics::record_in`]), so a heartbeat costs one commit and an
//! acknowledged heartbeat is always counted.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use serde_json::json;
use tokio::sync::oneshot;

use super::messages::*;
use super::model::{Instance, InstanceError, Status, StatusCounts, token_digest};
use super::profile::ProfileUpdate;
use super::repository::InstanceRepository;
use crate::audit::Audit;
use crate::batch::{GroupCommit, Outbox, WritePath, enqueue};
use crate::events::Publish;
use crate::http::{Agent, Caller};
use crate::journal::Records;
use crate::leases::HolderLost;
use crate::metrics::RecordMetrics;
use crate::time::now_micros;

/// A queued write.
#[derive(Debug)]
pub enum Op {
    Register(Box<Instance>),
    Heartbeat(String, Box<ProfileUpdate>),
    Activate(String),
    Capabilities(String, Vec<String>),
    Intent(String, String),
    Deregister(String),
    MarkStale(i64),
}

impl Op {
    fn id(&self) -> Option<&str> {
        match self {
            Op::Register(i) => Some(&i.id),
            Op::Heartbeat(id, _)
            | Op::Activate(id)
            | Op::Capabilities(id, _)
            | Op::Intent(id, _)
            | Op::Deregister(id) => Some(id),
            Op::MarkStale(_) => None,
        }
    }
}

/// What a write did.
#[derive(Debug, Clone)]
pub enum Done {
    One(Arc<Instance>),
    Many(Vec<Arc<Instance>>),
}

type Outcome = Result<Done, InstanceError>;

/// The result of applying a batch to memory (before it is committed).
pub struct Applied {
    results: Vec<Outcome>,
    /// Final state of every touched instance (`None` = deleted), in first-touch order.
    changed: Vec<(String, Option<Arc<Instance>>)>,
    /// Lifecycle events to publish after the commit: (topic, instance).
    announced: Vec<(&'static str, Arc<Instance>)>,
    /// Instances that lost their leases (deregistered, or moved to stale).
    lost: Vec<String>,
}

/// Applies `ops` in order on top of `current` at time `now`, without touching `current`.
fn apply(current: &HashMap<String, Arc<Instance>>, ops: &[Op], now: i64) -> Applied {
    let mut overlay: HashMap<String, Option<Arc<Instance>>> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut results = Vec::with_capacity(ops.len());
    let mut announced = Vec::new();
    let mut lost = Vec::new();

    let lookup = |overlay: &HashMap<String, Option<Arc<Instance>>>, id: &str| match overlay.get(id)
    {
        Some(v) => v.clone(),
        None => current.get(id).cloned(),
    };
    let mut set = |overlay: &mut HashMap<String, Option<Arc<Instance>>>,
                   id: &str,
                   v: Option<Arc<Instance>>| {
        if overlay.insert(id.to_string(), v).is_none() {
            order.push(id.to_string());
        }
    };

    for op in ops {
        if let Op::MarkStale(seen_before) = op {
            let mut moved = Vec::new();
            let mut candidates: Vec<Arc<Instance>> = current
                .keys()
                .chain(overlay.keys())
                .filter_map(|id| lookup(&overlay, id))
                .filter(|i| i.status == Status::Active && i.last_seen < *seen_before)
                .collect();
            candidates.sort_by(|a, b| a.id.cmp(&b.id));
            candidates.dedup_by(|a, b| a.id == b.id);
            for inst in candidates {
                let mut next = (*inst).clone();
                next.status = Status::Stale;
                let next = Arc::new(next);
                set(&mut overlay, &next.id, Some(next.clone()));
                lost.push(next.id.clone());
                moved.push(next);
            }
            results.push(Ok(Done::Many(moved)));
            continue;
        }
        let Some(id) = op.id() else { continue };
        if let Op::Register(inst) = op {
            if let Err(e) = check_parent(
                &|id| lookup(&overlay, id),
                id,
                inst.profile.parent_id.as_deref(),
            ) {
                results.push(Err(e));
                continue;
            }
            let inst = Arc::new((**inst).clone());
            set(&mut overlay, id, Some(inst.clone()));
            announced.push(("agent.registered", inst.clone()));
            results.push(Ok(Done::One(inst)));
            continue;
        }
        let Some(cur) = lookup(&overlay, id) else {
            results.push(Err(InstanceError::NotFound(id.to_string())));
            continue;
        };
        if let Op::Deregister(_) = op {
            set(&mut overlay, id, None);
            lost.push(id.to_string());
            announced.push(("agent.deregistered", cur.clone()));
            results.push(Ok(Done::One(cur)));
            continue;
        }
        let mut next = (*cur).clone();
        next.last_seen = now.max(cur.last_seen);
        match op {
            Op::Heartbeat(_, update) => {
                if cur.status == Status::Stale {
                    next.status = Status::Active;
                }
                if !update.is_empty() {
                    next.profile = update.apply_to(&cur.profile);
                    if update.parent_id.is_some() && next.profile.parent_id != cur.profile.parent_id
                    {
                        let parent = next.profile.parent_id.as_deref();
                        if let Err(e) = check_parent(&|id| lookup(&overlay, id), id, parent) {
                            results.push(Err(e));
                            continue;
                        }
                    }
                }
            }
            Op::Activate(_) => next.status = Status::Active,
            Op::Capabilities(_, caps) => next.capabilities = caps.clone(),
            Op::Intent(_, intent) => next.intent = intent.clone(),
            Op::Register(_) | Op::Deregister(_) | Op::MarkStale(_) => {}
        }
        let next = Arc::new(next);
        if matches!(op, Op::Heartbeat(..) | Op::Activate(_))
            && cur.status != Status::Active
            && next.status == Status::Active
        {
            announced.push(("agent.active", next.clone()));
        }
        if next.profile.health != cur.profile.health {
            announced.push(("agent.health", next.clone()));
        }
        set(&mut overlay, id, Some(next.clone()));
        results.push(Ok(Done::One(next)));
    }
    let changed = order
        .into_iter()
        .map(|id| {
            let v = overlay.get(&id).cloned().flatten();
            (id, v)
        })
        .collect();
    Applied {
        results,
        changed,
        announced,
        lost,
    }
}

/// One `heartbeats` increment per heartbeat of the batch that succeeded.
fn heartbeats_counted(ops: &[Op], results: &[Outcome]) -> Vec<RecordMetrics> {
    ops.iter()
        .zip(results)
        .filter_map(|(op, result)| match (op, result) {
            (Op::Heartbeat(..), Ok(Done::One(inst))) => {
                Some(RecordMetrics::one(&inst.id, "heartbeats", 1))
            }
            _ => None,
        })
        .collect()
}

/// The audit entries and lifecycle events of a batch, in order.
fn records(ops: &[Op], callers: Vec<Caller>, applied: &Applied) -> Records {
    let mut records = Records::new();
    for ((op, caller), result) in ops.iter().zip(callers).zip(&applied.results) {
        if let Ok(Done::Many(moved)) = result {
            // A liveness sweep: its `agent.stale` events commit with the status change.
            for inst in moved {
                records.event(lifecycle("agent.stale", STALE_SOURCE, inst));
            }
            continue;
        }
        let Ok(Done::One(inst)) = result else {
            continue;
        };
        let entry = match op {
            Op::Register(_) => Audit::new("instance.register", inst.id.as_str())
                .actor(inst.name.as_str())
                .with("workspace", inst.workspace.as_str()),
            Op::Activate(_) => Audit::new("instance.activate", inst.id.as_str()),
            Op::Capabilities(..) => Audit::new("instance.capabilities", inst.id.as_str())
                .with("capabilities", json!(inst.capabilities)),
            Op::Deregister(_) => Audit::new("instance.deregister", inst.id.as_str()),
            Op::Heartbeat(..) | Op::Intent(..) | Op::MarkStale(_) => continue,
        };
        records.audit(entry.by(&caller));
    }
    for (topic, inst) in &applied.announced {
        records.event(lifecycle(topic, "instances", inst));
    }
    records
}

/// The `source` of `agent.stale`: the liveness check that caused it (API §6).
const STALE_SOURCE: &str = "liveness-monitor";

/// A lifecycle event about `inst`.
fn lifecycle(topic: &str, source: &str, inst: &Instance) -> Publish {
    let mut data = json!({
        "instance_id": inst.id,
        "name": inst.name,
        "workspace": inst.workspace,
        "stack": inst.stack,
        "last_seen": crate::time::format_micros(inst.last_seen),
    });
    if topic == "agent.health" {
        data["health"] = json!(inst.profile.health);
    }
    Publish::system(topic, source, data)
}

/// Longest parent chain walked when looking for a cycle.
const MAX_PARENT_DEPTH: usize = 10_000;

/// `parent` (when set) names another registered instance, and `id` is not among its
/// ancestors (a parent chain never loops).
fn check_parent(
    lookup: &dyn Fn(&str) -> Option<Arc<Instance>>,
    id: &str,
    parent: Option<&str>,
) -> Result<(), InstanceError> {
    let Some(parent) = parent else {
        return Ok(());
    };
    if parent == id {
        return Err(InstanceError::Invalid(
            "parent_id must name another instance, not this one".into(),
        ));
    }
    let mut at = lookup(parent).ok_or_else(|| {
        InstanceError::Invalid(format!("parent_id names no registered instance: {parent}"))
    })?;
    for _ in 0..MAX_PARENT_DEPTH {
        let Some(up) = at.profile.parent_id.as_deref() else {
            return Ok(());
        };
        if up == id {
            return Err(InstanceError::Invalid(format!(
                "parent_id {parent} would make a cycle of parents"
            )));
        }
        match lookup(up) {
            Some(next) => at = next,
            None => return Ok(()),
        }
    }
    Err(InstanceError::Invalid("parent_id chain is too long".into()))
}

/// A batch prepared for its transaction.
pub struct Work {
    applied: Applied,
    counted: Vec<RecordMetrics>,
    records: Records,
}

/// The instances domain actor.
pub struct InstanceRegistry {
    current: HashMap<String, Arc<Instance>>,
    /// Token digest -> instance id.
    by_token: HashMap<String, String>,
    path: WritePath<(Op, Caller), Outcome>,
    /// The lease owners told when holders are lost (API §22).
    watchers: Vec<Recipient<HolderLost>>,
}

impl InstanceRegistry {
    /// Loads every instance and returns the actor, not yet started. `batch_max` bounds
    /// how many writes share one transaction.
    pub async fn load(
        db: DatabaseConnection,
        outbox: Outbox,
        batch_max: usize,
    ) -> Result<Self, sea_orm::DbErr> {
        let repo = InstanceRepository::new(db.clone());
        let mut current = HashMap::new();
        let mut by_token = HashMap::new();
        for inst in repo.load_all().await? {
            by_token.insert(inst.token_hash.clone(), inst.id.clone());
            current.insert(inst.id.clone(), Arc::new(inst));
        }
        Ok(Self {
            current,
            by_token,
            path: WritePath::new(db, outbox, batch_max),
            watchers: Vec::new(),
        })
    }

    fn enqueue(
        &mut self,
        op: Op,
        caller: Caller,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Outcome> {
        enqueue(self, (op, caller), ctx)
    }
}

impl GroupCommit for InstanceRegistry {
    type Op = (Op, Caller);
    type Out = Outcome;
    type Work = Work;
    type Done = Applied;

    fn write_path(&mut self) -> &mut WritePath<Self::Op, Outcome> {
        &mut self.path
    }

    fn prepare(&mut self, batch: Vec<(Op, Caller)>, now: i64) -> Work {
        let (ops, callers): (Vec<Op>, Vec<Caller>) = batch.into_iter().unzip();
        let applied = apply(&self.current, &ops, now);
        let counted = heartbeats_counted(&ops, &applied.results);
        let records = records(&ops, callers, &applied);
        Work {
            applied,
            counted,
            records,
        }
    }

    async fn write(work: Work, txn: &DatabaseTransaction) -> Result<(Applied, Records), DbErr> {
        InstanceRepository::persist(txn, &work.applied.changed, &work.counted).await?;
        Ok((work.applied, work.records))
    }

    /// Updates memory and tells the lease owners which holders are gone; the lifecycle
    /// events were committed with the batch and go out through the outbox.
    fn finish(&mut self, applied: Applied, _: &mut Context<Self>) -> Vec<Outcome> {
        if !applied.lost.is_empty() {
            for watcher in &self.watchers {
                watcher.do_send(HolderLost {
                    ids: applied.lost.clone(),
                });
            }
        }
        for (id, inst) in applied.changed {
            match inst {
                Some(inst) => {
                    self.by_token.insert(inst.token_hash.clone(), id.clone());
                    self.current.insert(id, inst);
                }
                None => {
                    if let Some(old) = self.current.remove(&id) {
                        self.by_token.remove(&old.token_hash);
                    }
                }
            }
        }
        applied.results
    }

    fn failed(error: &DbErr) -> Outcome {
        Err(InstanceError::Storage(error.to_string()))
    }
}

impl Actor for InstanceRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
    }
}

async fn one(rx: oneshot::Receiver<Outcome>) -> Result<Arc<Instance>, InstanceError> {
    match rx.await.unwrap_or(Err(InstanceError::Unavailable))? {
        Done::One(i) => Ok(i),
        Done::Many(_) => Err(InstanceError::Storage("unexpected batch result".into())),
    }
}

impl Handler<RegisterInstance> for InstanceRegistry {
    type Result = ResponseFuture<Result<Registered, InstanceError>>;

    fn handle(&mut self, msg: RegisterInstance, ctx: &mut Self::Context) -> Self::Result {
        let now = now_micros();
        let token = uuid::Uuid::new_v4().to_string();
        let instance = Instance {
            id: uuid::Uuid::new_v4().to_string(),
            name: msg.name,
            workspace: msg.workspace,
            intent: msg.intent,
            stack: msg.stack,
            capabilities: msg.capabilities,
            status: Status::Pending,
            token_hash: token_digest(&token),
            registered_at: now,
            last_seen: now,
            profile: msg.profile.apply_to(&Default::default()),
        };
        let rx = self.enqueue(Op::Register(Box::new(instance)), msg.caller, ctx);
        Box::pin(async move {
            let instance = one(rx).await?;
            Ok(Registered { instance, token })
        })
    }
}

impl Handler<GetInstance> for InstanceRegistry {
    type Result = Result<Arc<Instance>, InstanceError>;

    fn handle(&mut self, msg: GetInstance, _: &mut Self::Context) -> Self::Result {
        self.current
            .get(&msg.id)
            .cloned()
            .ok_or(InstanceError::NotFound(msg.id))
    }
}

impl Handler<ListInstances> for InstanceRegistry {
    type Result = MessageResult<ListInstances>;

    fn handle(&mut self, msg: ListInstances, _: &mut Self::Context) -> Self::Result {
        let mut items: Vec<Arc<Instance>> = self
            .current
            .values()
            .filter(|i| i.matches(&msg.filter))
            .cloned()
            .collect();
        items.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then_with(|| b.registered_at.cmp(&a.registered_at))
                .then_with(|| a.id.cmp(&b.id))
        });
        MessageResult(items)
    }
}

impl Handler<Heartbeat> for InstanceRegistry {
    type Result = ResponseFuture<Result<Arc<Instance>, InstanceError>>;

    fn handle(&mut self, msg: Heartbeat, ctx: &mut Self::Context) -> Self::Result {
        Box::pin(one(self.enqueue(
            Op::Heartbeat(msg.id, Box::new(msg.update)),
            Caller::anonymous(),
            ctx,
        )))
    }
}

impl Handler<Activate> for InstanceRegistry {
    type Result = ResponseFuture<Result<Arc<Instance>, InstanceError>>;

    fn handle(&mut self, msg: Activate, ctx: &mut Self::Context) -> Self::Result {
        Box::pin(one(self.enqueue(Op::Activate(msg.id), msg.caller, ctx)))
    }
}

impl Handler<SetCapabilities> for InstanceRegistry {
    type Result = ResponseFuture<Result<Arc<Instance>, InstanceError>>;

    fn handle(&mut self, msg: SetCapabilities, ctx: &mut Self::Context) -> Self::Result {
        Box::pin(one(self.enqueue(
            Op::Capabilities(msg.id, msg.capabilities),
            msg.caller,
            ctx,
        )))
    }
}

impl Handler<SetIntent> for InstanceRegistry {
    type Result = ResponseFuture<Result<Arc<Instance>, InstanceError>>;

    fn handle(&mut self, msg: SetIntent, ctx: &mut Self::Context) -> Self::Result {
        Box::pin(one(self.enqueue(
            Op::Intent(msg.id, msg.intent),
            Caller::anonymous(),
            ctx,
        )))
    }
}

impl Handler<Deregister> for InstanceRegistry {
    type Result = ResponseFuture<Result<Arc<Instance>, InstanceError>>;

    fn handle(&mut self, msg: Deregister, ctx: &mut Self::Context) -> Self::Result {
        Box::pin(one(self.enqueue(Op::Deregister(msg.id), msg.caller, ctx)))
    }
}

impl Handler<MarkStale> for InstanceRegistry {
    type Result = ResponseFuture<Result<Vec<Arc<Instance>>, InstanceError>>;

    fn handle(&mut self, msg: MarkStale, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.enqueue(Op::MarkStale(msg.seen_before), Caller::anonymous(), ctx);
        Box::pin(async move {
            match rx.await.unwrap_or(Err(InstanceError::Unavailable))? {
                Done::Many(v) => Ok(v),
                Done::One(i) => Ok(vec![i]),
            }
        })
    }
}

impl Handler<WatchHolders> for InstanceRegistry {
    type Result = ();

    fn handle(&mut self, msg: WatchHolders, _: &mut Self::Context) {
        self.watchers.push(msg.0);
    }
}

impl Handler<Identify> for InstanceRegistry {
    type Result = Option<Agent>;

    fn handle(&mut self, msg: Identify, _: &mut Self::Context) -> Self::Result {
        let id = match msg.token.filter(|t| !t.is_empty()) {
            Some(token) => self.by_token.get(&token_digest(&token))?.clone(),
            None => msg.id?,
        };
        let instance = self.current.get(&id)?;
        Some(Agent {
            id,
            name: instance.name.clone(),
        })
    }
}

impl Handler<CountInstances> for InstanceRegistry {
    type Result = StatusCounts;

    fn handle(&mut self, _: CountInstances, _: &mut Self::Context) -> StatusCounts {
        let mut counts = StatusCounts::default();
        for i in self.current.values() {
            match i.status {
                Status::Pending => counts.pending += 1,
                Status::Active => counts.active += 1,
                Status::Stale => counts.stale += 1,
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, status: Status, last_seen: i64) -> Instance {
        Instance {
            id: id.into(),
            name: id.into(),
            workspace: String::new(),
            intent: String::new(),
            stack: String::new(),
            capabilities: vec![],
            status,
            token_hash: format!("t-{id}"),
            registered_at: 0,
            last_seen,
            profile: Default::default(),
        }
    }

    fn hb(id: &str) -> Op {
        Op::Heartbeat(id.into(), Box::default())
    }

    fn states(applied: &Applied) -> Vec<String> {
        applied
            .results
            .iter()
            .map(|r| match r {
                Ok(Done::One(i)) => format!("{}:{}@{}", i.id, i.status.as_str(), i.last_seen),
                Ok(Done::Many(v)) => format!(
                    "stale[{}]",
                    v.iter()
                        .map(|i| i.id.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Err(e) => format!("err {e}"),
            })
            .collect()
    }

    #[test]
    fn transitions_follow_the_table() {
        let current: HashMap<String, Arc<Instance>> = [
            inst("p", Status::Pending, 1),
            inst("a", Status::Active, 1),
            inst("s", Status::Stale, 1),
            inst("fresh", Status::Active, 50),
        ]
        .into_iter()
        .map(|i| (i.id.clone(), Arc::new(i)))
        .collect();
        let ops = vec![
            Op::MarkStale(10),
            hb("p"),
            hb("s"),
            Op::MarkStale(10),
            Op::Activate("p".into()),
            Op::Deregister("fresh".into()),
            Op::Deregister("fresh".into()),
            hb("a"),
        ];
        let applied = apply(&current, &ops, 100);
        assert_eq!(
            states(&applied),
            [
                "stale[a]",
                "p:pending@100",
                "s:active@100",
                "stale[]",
                "p:active@100",
                "fresh:active@50",
                "err instance not found: fresh",
                "a:active@100",
            ]
        );
        assert_eq!(
            applied
                .announced
                .iter()
                .map(|(topic, i)| format!("{topic} {}", i.id))
                .collect::<Vec<_>>(),
            [
                "agent.active s",
                "agent.active p",
                "agent.deregistered fresh",
                "agent.active a"
            ]
        );
        let changed: HashMap<_, _> = applied.changed.into_iter().collect();
        assert!(changed["fresh"].is_none());
        assert_eq!(changed["a"].as_ref().unwrap().status, Status::Active);
        assert_eq!(current["a"].status, Status::Active, "memory is untouched");
    }

    #[test]
    fn parents_must_exist_and_never_loop_and_health_changes_are_announced() {
        let mut child = inst("c", Status::Active, 1);
        child.profile.parent_id = Some("p".into());
        let current: HashMap<String, Arc<Instance>> = [inst("p", Status::Active, 1), child]
            .into_iter()
            .map(|i| (i.id.clone(), Arc::new(i)))
            .collect();
        let beat = |id: &str, body: serde_json::Value| {
            let up = ProfileUpdate::parse(body.as_object().unwrap(), true).unwrap();
            Op::Heartbeat(id.into(), Box::new(up))
        };
        let ops = vec![
            beat("p", json!({"parent_id": "c"})),
            beat("c", json!({"parent_id": "c"})),
            beat("c", json!({"parent_id": "ghost"})),
            beat("c", json!({"health": {"status": "ok"}})),
            beat("c", json!({"health": {"status": "ok"}})),
            beat("c", json!({"health": {"status": "failing"}})),
        ];
        let applied = apply(&current, &ops, 5);
        let s = states(&applied);
        assert!(s[0].contains("cycle"), "{s:?}");
        assert!(s[1].contains("not this one"), "{s:?}");
        assert!(s[2].contains("no registered instance"), "{s:?}");
        let topics: Vec<&str> = applied.announced.iter().map(|(t, _)| *t).collect();
        assert_eq!(topics, ["agent.health", "agent.health"]);
    }

    #[test]
    fn pending_instances_never_go_stale() {
        let current: HashMap<String, Arc<Instance>> = [inst("p", Status::Pending, 0)]
            .into_iter()
            .map(|i| (i.id.clone(), Arc::new(i)))
            .collect();
        let applied = apply(&current, &[Op::MarkStale(i64::MAX)], 1);
        assert_eq!(states(&applied), ["stale[]"]);
        assert!(applied.changed.is_empty());
    }
}
