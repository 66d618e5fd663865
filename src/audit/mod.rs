//! Audit log (API §15) with tamper evidence (extension).
//!
//! Owns: reading the `audit_log` table and verifying its chain, through `AuditLog`.
//! Messages in: `QueryAudit`, `SummarizeAudit`, `VerifyAudit` (reads through the pool).
//! Entries are written by the domain that made the change, in the change's own
//! transaction, through [`crate::journal`]: every mutation message carries its
//! [`crate::http::Caller`], the domain builds the [`Audit`] entry and the journal chains
//! it. So an acknowledged mutation's entry is durable with it, and there is no entry
//! without its mutation. Invariants: append-only (no code path updates or deletes a row,
//! and triggers refuse it in the database); ids are dense from 1 and in commit order;
//! each entry's `hash` covers its content and the previous entry's hash, so an edited,
//! removed or reordered row breaks the chain that `GET /api/audit/verify` walks.

mod actor;
mod messages;
mod model;
mod repository;
mod routes;

pub use actor::AuditLog;
pub use messages::*;
pub use model::*;
pub use routes::routes;
