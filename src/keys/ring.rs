//! The live keys, shared read-only with the gate: a map from a secret's digest to its
//! grant, and whether authentication is on. Only the `KeyStore` changes it, after each
//! commit and before it answers, so a revocation or a rotation is in force for the very
//! next request: nothing caches a key beyond this map.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use subtle::ConstantTimeEq;

use super::model::{Grant, digest};

type Digest = [u8; 32];

#[derive(Default)]
struct Inner {
    by_digest: RwLock<HashMap<Digest, (Digest, Arc<Grant>)>>,
    /// True once any key was ever created (API §25: a durable, server-wide fact).
    keys_exist: AtomicBool,
}

/// The live keys by digest. Cheap to clone.
#[derive(Clone, Default)]
pub struct KeyRing(Arc<Inner>);

impl KeyRing {
    /// True once any access key has been created (revoked ones included).
    pub fn keys_exist(&self) -> bool {
        self.0.keys_exist.load(Ordering::Acquire)
    }

    /// The live key whose secret is `secret`, if any (expiry is the caller's check). The
    /// secret is hashed, the map is keyed by the digest, and the stored digest is compared
    /// with the presented one in constant time.
    pub fn lookup(&self, secret: &[u8]) -> Option<Arc<Grant>> {
        let d: Digest = <sha2::Sha256 as sha2::Digest>::digest(secret).into();
        let map = self.0.by_digest.read().unwrap_or_else(|e| e.into_inner());
        let (stored, grant) = map.get(&d)?;
        bool::from(stored.ct_eq(&d)).then(|| grant.clone())
    }

    /// The grant stored under digest `d`.
    pub(super) fn grant(&self, d: &Digest) -> Option<Arc<Grant>> {
        let map = self.0.by_digest.read().unwrap_or_else(|e| e.into_inner());
        map.get(d).map(|(_, g)| g.clone())
    }

    /// The live key whose stored digest is `hex_digest` (a dashboard session of a key).
    pub fn lookup_digest(&self, hex_digest: &str) -> Option<Arc<Grant>> {
        self.grant(&digest_bytes(hex_digest)?)
    }

    pub(super) fn mark_keys_exist(&self) {
        self.0.keys_exist.store(true, Ordering::Release);
    }

    pub(super) fn insert(&self, d: Digest, grant: Arc<Grant>) {
        let mut map = self.0.by_digest.write().unwrap_or_else(|e| e.into_inner());
        map.insert(d, (d, grant));
    }

    /// Replaces every live key at once (a follower's reload, API §27).
    pub(super) fn replace(&self, keys: HashMap<Digest, Arc<Grant>>) {
        let keys = keys.into_iter().map(|(d, g)| (d, (d, g))).collect();
        *self.0.by_digest.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    pub(super) fn remove(&self, d: &Digest) {
        let mut map = self.0.by_digest.write().unwrap_or_else(|e| e.into_inner());
        map.remove(d);
    }
}

/// The digest of `secret` as stored (hex).
pub fn digest_hex(secret: &str) -> String {
    hex::encode(digest(secret))
}

/// A stored hex digest back as bytes (a malformed one matches nothing).
pub fn digest_bytes(hex_digest: &str) -> Option<Digest> {
    let bytes = hex::decode(hex_digest).ok()?;
    bytes.try_into().ok()
}
