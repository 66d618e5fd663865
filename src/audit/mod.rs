//! Audit log (API §15) with tamper evidence (extension).
//!
//! Owns: the `audit_log` table, through `AuditLog` only. Messages in: `Append` (group
//! committed: many requests, one transaction, each caller answered after the commit),
//! `QueryAudit`, `SummarizeAudit`, `VerifyAudit` (reads through the pool).
//! Handlers of successful mutations (REST and MCP) call [`record`] before they answer, so
//! an acknowledged mutation's entry is durable. Invariants: append-only (no code path
//! updates or deletes a row, and triggers refuse it in the database); ids are dense from
//! 1; each entry's `hash` covers its content and the previous entry's hash, so an edited,
//! removed or reordered row breaks the chain that `GET /api/audit/verify` walks.

mod actor;
mod messages;
mod model;
mod repository;
mod routes;

use std::future::{Ready, ready};

use actix::Addr;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

pub use actor::AuditLog;
pub use messages::*;
pub use model::*;
pub use routes::routes;

use crate::error::{ApiError, ApiResult};
use crate::http::Caller;

/// Extractor for handlers of mutations: the audit log and who is calling.
/// [`Auditor::record`] attributes an entry to the calling agent (if the request names
/// one) and waits for its commit.
pub struct Auditor {
    log: Addr<AuditLog>,
    caller: Caller,
}

impl Auditor {
    /// An auditor for `caller` (MCP tools build one per call).
    pub fn new(log: Addr<AuditLog>, caller: Caller) -> Self {
        Self { log, caller }
    }

    /// Who is calling.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Records `entry`, attributed to the caller, durably.
    pub async fn record(&self, entry: Audit) -> ApiResult<()> {
        record(&self.log, entry.by(&self.caller)).await
    }
}

impl FromRequest for Auditor {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = req
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_default();
        ready(match req.app_data::<web::Data<Addr<AuditLog>>>() {
            Some(log) => Ok(Auditor::new(log.get_ref().clone(), caller)),
            None => Err(ApiError::internal(AuditError::Unavailable)),
        })
    }
}

/// Records a successful mutation and waits for the commit. A failure here means the
/// change was applied but could not be audited: the request fails (500, logged) rather
/// than being acknowledged without its entry.
async fn record(log: &Addr<AuditLog>, entry: Audit) -> ApiResult<()> {
    let action = entry.action.clone();
    match log.send(Append(entry)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!(%action, error = %e, "audit entry could not be written");
            Err(e.into())
        }
        Err(e) => {
            tracing::error!(%action, error = %e, "audit log unavailable");
            Err(ApiError::from(e))
        }
    }
}
