//! Messages of the keys domain: its whole API.

use std::sync::Arc;

use actix::Message;

use super::model::{Grant, Issued, KeyError, NewKey};
use crate::http::Caller;

/// Creates a key; answered with its secret (the only time it is shown).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Issued, KeyError>")]
pub struct CreateKey {
    pub key: NewKey,
    pub caller: Caller,
}

/// Revokes a key: its secret fails from the next request on.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<String, KeyError>")]
pub struct RevokeKey {
    pub id: String,
    pub caller: Caller,
}

/// Gives a key a new secret; the old one fails from the next request on.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Issued, KeyError>")]
pub struct RotateKey {
    pub id: String,
    pub caller: Caller,
}

/// The keys not revoked, oldest first.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<Arc<Grant>>")]
pub struct ListKeys;
