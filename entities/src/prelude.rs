//! Short names for the entities.

pub use crate::access_key::Entity as AccessKey;
pub use crate::agent_metric::Entity as AgentMetric;
pub use crate::audit_entry::Entity as AuditEntry;
pub use crate::compliance_run::Entity as ComplianceRun;
pub use crate::event::Entity as Event;
pub use crate::instance::Entity as Instance;
pub use crate::llm_budget::Entity as LlmBudget;
pub use crate::llm_usage::Entity as LlmUsage;
pub use crate::lock::Entity as Lock;
pub use crate::rule::Entity as Rule;
pub use crate::state_version::Entity as StateVersion;
pub use crate::task::Entity as Task;
pub use crate::template::Entity as Template;
pub use crate::webhook::Entity as Webhook;
pub use crate::webhook_delivery::Entity as WebhookDelivery;
