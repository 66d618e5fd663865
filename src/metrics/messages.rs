//! Messages of the metrics domain.

use actix::Message;

use super::model::{AgentTotals, MetricRow, MetricsError, period_of};

/// Adds `counts` to the buckets of `instance_id` for the hour of `at`; answered after the
/// commit.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), MetricsError>")]
pub struct RecordMetrics {
    pub instance_id: String,
    pub period: String,
    pub counts: Vec<(String, i64)>,
}

impl RecordMetrics {
    /// `metric += n` for `instance_id`, in the current hour.
    pub fn one(instance_id: &str, metric: &str, n: i64) -> Self {
        Self::now(instance_id, vec![(metric.to_string(), n)])
    }

    /// Several increments for `instance_id`, in the current hour.
    pub fn now(instance_id: &str, counts: Vec<(String, i64)>) -> Self {
        Self {
            instance_id: instance_id.to_string(),
            period: period_of(crate::time::now_micros()),
            counts,
        }
    }
}

/// Every agent's counters summed over the periods starting with `period` (all when
/// `None`), instance ascending.
#[derive(Message)]
#[rtype(result = "Result<Vec<AgentTotals>, MetricsError>")]
pub struct AgentSummary {
    pub period: Option<String>,
}

/// One agent's stored counters in the periods starting with `period`, period descending
/// then metric name.
#[derive(Message)]
#[rtype(result = "Result<Vec<MetricRow>, MetricsError>")]
pub struct AgentDetail {
    pub instance_id: String,
    pub period: Option<String>,
}
