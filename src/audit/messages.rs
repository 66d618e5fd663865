//! Messages of the audit log.

use actix::Message;

use super::model::{AuditEntry, AuditError, AuditFilter, AuditSummary, VerifyReport};

/// Up to `limit` matching entries, newest first.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<AuditEntry>, AuditError>")]
pub struct QueryAudit {
    pub filter: AuditFilter,
    pub limit: u64,
}

/// Counts over the entries in a time range.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<AuditSummary, AuditError>")]
pub struct SummarizeAudit {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Walks the whole chain.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<VerifyReport, AuditError>")]
pub struct VerifyAudit;

/// Prunes the entries older than `audit_retention` now (the pruner's run-once step), behind
/// a checkpoint; answers how many were deleted (0 when no retention is set).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<u64, AuditError>")]
pub struct PruneAudit;
