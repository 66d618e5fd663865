//! The topology (extension of API §7): who started whom and who works with whom.
//!
//! Owns: no table. `TopologyWatcher` keeps, in memory and bounded, what the REST adapters
//! saw identified agents do (publish on a topic, subscribe to a pattern, create or complete
//! a task, wait on a lock); the graph is computed on demand from those observations, the
//! registry (`ListInstances`) and the webhooks (`ListWebhooks`) by the pure [`graph::build`].
//! Messages in: `Observe` (fire and forget, from adapters), `GetTopology`.
//! Invariants: every edge says how it was derived; a graph never holds more than
//! [`graph::MAX_NODES`] nodes and [`graph::MAX_EDGES`] edges; observations are lost on
//! restart (parents are stored with the instances and survive).

mod actor;
pub mod graph;
mod messages;
mod routes;

pub use actor::TopologyWatcher;
pub use graph::{Edge, Graph, Node};
pub use messages::*;
pub use routes::routes;

/// The watcher as optional app data: adapters observe through it when it is installed.
pub type Watcher = Option<actix_web::web::Data<actix::Addr<TopologyWatcher>>>;

/// Tells the watcher (when installed) what an agent did; never waits, never fails.
pub fn observe(watcher: &Watcher, seen: Seen) {
    if let Some(w) = watcher {
        w.do_send(Observe(seen));
    }
}
