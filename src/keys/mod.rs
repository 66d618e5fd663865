//! Access keys (API §25): scoped, optionally project-restricted credentials.
//!
//! Owns: the `access_keys` table, through `KeyStore` only; the shared [`KeyRing`] (live keys
//! by the digest of their secret) that the gate reads.
//! Messages in: `CreateKey`, `RevokeKey`, `RotateKey` (writes, one per transaction) and
//! `ListKeys` (from memory).
//! Events out: `key.created`, `key.revoked`, `key.rotated`. Audit: `key.create`,
//! `key.revoke`, `key.rotate`.
//! Invariants: a secret is stored only as its SHA-256 digest and shown only in the create and
//! rotate answers; the ring changes after each commit, before the answer; once any key was
//! created, authentication stays on.

mod actor;
mod messages;
mod model;
mod repository;
mod ring;
mod routes;

pub use actor::KeyStore;
pub use messages::*;
pub use model::*;
pub use ring::{KeyRing, digest_hex};
pub use routes::routes;
