//! API keys on every call: minting, hashing, and the authenticator every
//! service in this process uses, with a small cache so that a call does not cost a database
//! round trip.
//!
//! Revocation is visible at once in the process that revoked the key (its
//! cache entry is dropped) and within the cache lifetime (`--key-cache-ttl-secs`,
//! default 30 s) in every other process. Issuing, listing and revoking keys
//! is the `api_keys` area.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use recovery_kit::auth::{Authenticator, BoxFuture};
use recovery_kit::time::Clock;
use recovery_kit::{Caller, Db, Error};
use sha2::{Digest as _, Sha256};

use crate::store;

/// Entries kept at most; a full cache starts over.
const CACHE_CAPACITY: usize = 10_000;

/// Every key starts with this, so that leaked keys are easy to scan for.
pub(crate) const KEY_PREFIX: &str = "rk_";

/// A new secret: `rk_` and 32 random bytes, base64url.
pub(crate) fn mint() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// What is stored instead of a secret. Keys carry 256 random bits, so a
/// plain SHA-256 is enough: there is nothing to brute-force.
pub(crate) fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The part of a secret shown in lists to recognise a key.
pub(crate) fn prefix(secret: &str) -> String {
    secret.chars().take(KEY_PREFIX.len() + 6).collect()
}

#[derive(Clone)]
struct Cached {
    caller: Option<Caller>,
    until: Timestamp,
}

/// Resolves keys against the tenancy database, through a cache.
pub struct KeyStore {
    db: Db,
    clock: Arc<dyn Clock>,
    ttl: SignedDuration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl KeyStore {
    /// A store whose answers are trusted for `ttl`.
    pub fn new(db: Db, clock: Arc<dyn Clock>, ttl: std::time::Duration) -> Self {
        Self {
            db,
            clock,
            ttl: SignedDuration::try_from(ttl).unwrap_or(SignedDuration::from_secs(30)),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets a key at once (after a revocation).
    pub(crate) fn forget(&self, key_hash: &str) {
        self.lock().remove(key_hash);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Authenticator for KeyStore {
    fn authenticate<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Caller>, Error>> {
        Box::pin(async move {
            let key_hash = hash(key);
            let now = self.clock.now();
            if let Some(hit) = self.lock().get(&key_hash).filter(|c| c.until > now) {
                return Ok(hit.caller.clone());
            }
            let caller = store::keys::caller(self.db.reader(), &key_hash).await?;
            let mut cache = self.lock();
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(
                key_hash,
                Cached {
                    caller: caller.clone(),
                    until: now.saturating_add(self.ttl).unwrap_or(now),
                },
            );
            Ok(caller)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_distinct_and_hash_stably() {
        let a = mint().unwrap();
        let b = mint().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), 3 + 43);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(prefix(&a).len(), 9);
    }
}
