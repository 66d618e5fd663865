//! Compliance domain types.

use serde::Serialize;

use crate::contracts::ContractViolation;
use crate::error::{DomainError, ErrorKind};
use crate::supervise::WorkerFailed;
use crate::time::format_micros;

/// One contract checked for one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComplianceRun {
    pub id: i64,
    pub instance_id: String,
    pub project: String,
    pub contract: String,
    pub pass: bool,
    pub violations: Vec<ContractViolation>,
    /// Unix microseconds.
    pub run_at: i64,
}

/// The wire shape of a run.
#[derive(Serialize)]
pub struct RunOut<'a> {
    pub id: i64,
    pub instance_id: &'a str,
    pub project: &'a str,
    pub contract: &'a str,
    pub pass: bool,
    pub violations: &'a [ContractViolation],
    pub run_at: String,
}

impl ComplianceRun {
    /// The wire shape.
    pub fn out(&self) -> RunOut<'_> {
        RunOut {
            id: self.id,
            instance_id: &self.instance_id,
            project: &self.project,
            contract: &self.contract,
            pass: self.pass,
            violations: &self.violations,
            run_at: format_micros(self.run_at),
        }
    }
}

/// Why a compliance pass or query failed.
#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    #[error(transparent)]
    Failed(#[from] WorkerFailed),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("a domain the compliance pass needs is not running")]
    Unavailable,
}

impl DomainError for ComplianceError {
    fn kind(&self) -> ErrorKind {
        match self {
            ComplianceError::Failed(_) | ComplianceError::Storage(_) => ErrorKind::Internal,
            ComplianceError::Unavailable => ErrorKind::Unavailable,
        }
    }
}

impl From<sea_orm::DbErr> for ComplianceError {
    fn from(e: sea_orm::DbErr) -> Self {
        ComplianceError::Storage(e.to_string())
    }
}

impl From<actix::MailboxError> for ComplianceError {
    fn from(_: actix::MailboxError) -> Self {
        ComplianceError::Unavailable
    }
}
