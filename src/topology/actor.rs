//! `TopologyWatcher`: keeps what agents were seen doing and answers the graph.
//!
//! Concurrency: `Observe` is handled in the actor (a few map updates); `GetTopology` takes
//! a snapshot of the observations in the actor, then asks the registry and the webhook
//! dispatcher and builds the graph outside it, so graphs are built concurrently with new
//! observations.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use actix::prelude::*;

use super::graph::{self, Handoff, Hook, Inputs, Publication, Subscription};
use super::messages::*;
use crate::instances::{InstanceRegistry, ListInstances};
use crate::webhooks::{ListWebhooks, WebhookDispatcher};

/// Most distinct observations of each kind kept; the oldest is forgotten first.
pub const MAX_OBSERVATIONS: usize = 10_000;

/// Counts per key, forgetting the oldest key beyond [`MAX_OBSERVATIONS`].
#[derive(Debug)]
struct Tally<K> {
    counts: HashMap<K, u64>,
    order: VecDeque<K>,
    max: usize,
}

impl<K: Clone + Eq + Hash> Tally<K> {
    fn new(max: usize) -> Self {
        Self {
            counts: HashMap::new(),
            order: VecDeque::new(),
            max,
        }
    }

    fn add(&mut self, key: K) {
        if let Some(n) = self.counts.get_mut(&key) {
            *n += 1;
            return;
        }
        if self.order.len() >= self.max
            && let Some(old) = self.order.pop_front()
        {
            self.counts.remove(&old);
        }
        self.order.push_back(key.clone());
        self.counts.insert(key, 1);
    }

    fn iter(&self) -> impl Iterator<Item = (&K, u64)> {
        self.order
            .iter()
            .filter_map(|k| self.counts.get(k).map(|n| (k, *n)))
    }
}

/// What was observed, bounded.
#[derive(Debug)]
struct Observed {
    /// (agent, topic).
    publications: Tally<(String, String)>,
    /// (agent, pattern).
    subscriptions: Tally<(String, String)>,
    /// task -> (creator, queue) of tasks not completed yet.
    creators: HashMap<String, (String, String)>,
    /// The tasks of `creators`, oldest first (may name completed ones).
    created: VecDeque<String>,
    max: usize,
    /// (creator, completer, queue).
    tasks: Tally<(String, String, String)>,
    /// (waiter, holder, resource).
    locks: Tally<(String, String, String)>,
}

impl Observed {
    fn new(max: usize) -> Self {
        Self {
            publications: Tally::new(max),
            subscriptions: Tally::new(max),
            creators: HashMap::new(),
            created: VecDeque::new(),
            max,
            tasks: Tally::new(max),
            locks: Tally::new(max),
        }
    }

    fn record(&mut self, seen: Seen) {
        match seen {
            Seen::Published { agent, topic } => self.publications.add((agent, topic)),
            Seen::Subscribed { agent, pattern } => self.subscriptions.add((agent, pattern)),
            Seen::TaskCreated { agent, task, queue } => {
                if self.created.len() >= self.max
                    && let Some(old) = self.created.pop_front()
                {
                    self.creators.remove(&old);
                }
                self.created.push_back(task.clone());
                self.creators.insert(task, (agent, queue));
            }
            Seen::TaskCompleted { holder, task } => {
                if let Some((creator, queue)) = self.creators.remove(&task) {
                    self.tasks.add((creator, holder, queue));
                }
            }
            Seen::LockWaited {
                waiter,
                holder,
                resource,
            } => self.locks.add((waiter, holder, resource)),
        }
    }

    fn inputs(&self) -> Inputs {
        let handoffs = |t: &Tally<(String, String, String)>| {
            t.iter()
                .map(|((from, to, via), count)| Handoff {
                    from: from.clone(),
                    to: to.clone(),
                    via: via.clone(),
                    count,
                })
                .collect()
        };
        Inputs {
            instances: Vec::new(),
            publications: self
                .publications
                .iter()
                .map(|((agent, topic), count)| Publication {
                    agent: agent.clone(),
                    topic: topic.clone(),
                    count,
                })
                .collect(),
            subscriptions: self
                .subscriptions
                .iter()
                .map(|((agent, pattern), _)| Subscription {
                    agent: agent.clone(),
                    pattern: pattern.clone(),
                })
                .collect(),
            hooks: Vec::new(),
            tasks: handoffs(&self.tasks),
            locks: handoffs(&self.locks),
        }
    }
}

/// The topology domain actor.
pub struct TopologyWatcher {
    instances: Addr<InstanceRegistry>,
    webhooks: Option<Addr<WebhookDispatcher>>,
    observed: Observed,
}

impl TopologyWatcher {
    /// A watcher over the registry and (when given) the webhooks.
    pub fn new(
        instances: Addr<InstanceRegistry>,
        webhooks: Option<Addr<WebhookDispatcher>>,
    ) -> Self {
        Self {
            instances,
            webhooks,
            observed: Observed::new(MAX_OBSERVATIONS),
        }
    }
}

impl Actor for TopologyWatcher {
    type Context = Context<Self>;
}

impl Handler<Observe> for TopologyWatcher {
    type Result = ();

    fn handle(&mut self, msg: Observe, _: &mut Self::Context) {
        self.observed.record(msg.0);
    }
}

impl Handler<GetTopology> for TopologyWatcher {
    type Result = ResponseFuture<Result<graph::Graph, TopologyError>>;

    fn handle(&mut self, _: GetTopology, _: &mut Self::Context) -> Self::Result {
        let mut inputs = self.observed.inputs();
        let instances = self.instances.clone();
        let webhooks = self.webhooks.clone();
        Box::pin(async move {
            inputs.instances = instances
                .send(ListInstances::default())
                .await
                .map_err(|_| TopologyError::Unavailable)?;
            if let Some(webhooks) = webhooks
                && let Ok(list) = webhooks.send(ListWebhooks).await
            {
                inputs.hooks = list
                    .into_iter()
                    .filter(|w| w.active)
                    .map(|w| Hook {
                        id: w.id,
                        url: w.url,
                        patterns: w.patterns,
                    })
                    .collect();
            }
            Ok(graph::build(&inputs))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_task_links_its_creator_and_its_holder_once() {
        let mut o = Observed::new(10);
        let created = |task: &str| Seen::TaskCreated {
            agent: "a".into(),
            task: task.into(),
            queue: "q".into(),
        };
        o.record(created("t1"));
        o.record(created("t2"));
        for _ in 0..2 {
            o.record(Seen::TaskCompleted {
                holder: "b".into(),
                task: "t1".into(),
            });
        }
        o.record(Seen::TaskCompleted {
            holder: "b".into(),
            task: "unknown".into(),
        });
        let tasks = o.inputs().tasks;
        assert_eq!(tasks.len(), 1);
        assert_eq!(
            (tasks[0].from.as_str(), tasks[0].to.as_str(), tasks[0].count),
            ("a", "b", 1)
        );
        assert_eq!(o.creators.len(), 1, "t2 is still open");
    }

    #[test]
    fn observations_are_bounded_oldest_first() {
        let mut t = Tally::new(2);
        t.add("a");
        t.add("b");
        t.add("a");
        t.add("c");
        let kept: Vec<_> = t.iter().map(|(k, n)| format!("{k}{n}")).collect();
        assert_eq!(kept, ["b1", "c1"]);
    }
}
