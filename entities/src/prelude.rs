//! Short names for the entities.

pub use crate::agent_metric::Entity as AgentMetric;
pub use crate::event::Entity as Event;
pub use crate::instance::Entity as Instance;
pub use crate::state_version::Entity as StateVersion;
