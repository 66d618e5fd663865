//! Metrics domain types.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{DomainError, ErrorKind};

/// The hourly bucket (`YYYY-MM-DDTHH`, UTC) of a unix-microsecond instant.
pub fn period_of(micros: i64) -> String {
    use chrono::TimeZone;
    match chrono::Utc.timestamp_micros(micros).single() {
        Some(t) => t.format("%Y-%m-%dT%H").to_string(),
        None => "1970-01-01T00".to_string(),
    }
}

/// One stored counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MetricRow {
    pub instance_id: String,
    pub metric_name: String,
    pub metric_value: i64,
    pub period: String,
}

/// One agent's counters summed over the selected periods.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentTotals {
    pub instance_id: String,
    pub metrics: BTreeMap<String, i64>,
}

/// What went wrong in the metrics domain.
#[derive(Clone, Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the metrics recorder is not running")]
    Unavailable,
}

impl DomainError for MetricsError {
    fn kind(&self) -> ErrorKind {
        match self {
            MetricsError::Storage(_) => ErrorKind::Internal,
            MetricsError::Unavailable => ErrorKind::Unavailable,
        }
    }
}

impl From<sea_orm::DbErr> for MetricsError {
    fn from(e: sea_orm::DbErr) -> Self {
        MetricsError::Storage(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_hours() {
        assert_eq!(period_of(0), "1970-01-01T00");
        // 2026-02-16T14:30:00Z
        assert_eq!(period_of(1_771_252_200_000_000), "2026-02-16T14");
    }
}
