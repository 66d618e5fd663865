//! Short names for the entities.

pub use crate::event::Entity as Event;
pub use crate::state_version::Entity as StateVersion;
