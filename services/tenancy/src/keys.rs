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

/// Resolved keys, kept for a while (by key hash: no secret is kept). Known
/// keys and unknown ones are kept apart, so that a flood of made-up keys
/// cannot push the real ones out; and every forgetting starts a new
/// generation, so that an answer read before a revocation is never kept
/// after it.
pub(crate) struct KeyCache {
    inner: Mutex<Entries>,
}

/// What the cache knows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kept {
    /// A valid key and its caller.
    Known(Caller),
    /// An unknown or revoked key.
    Unknown,
}

impl Kept {
    /// The answer to give: the caller, or none.
    pub(crate) fn answer(self) -> Option<Caller> {
        match self {
            Kept::Known(caller) => Some(caller),
            Kept::Unknown => None,
        }
    }
}

#[derive(Default)]
struct Entries {
    known: HashMap<String, (Caller, Timestamp)>,
    unknown: HashMap<String, Timestamp>,
    generation: u64,
}

/// Known keys kept at most; a full cache starts over.
const KNOWN_CAPACITY: usize = 10_000;
/// Unknown keys kept at most; only they are dropped when full.
const UNKNOWN_CAPACITY: usize = 1_000;

impl KeyCache {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Entries::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The answer kept for `key_hash` while it is fresh at `now`.
    pub(crate) fn get(&self, key_hash: &str, now: Timestamp) -> Option<Kept> {
        let entries = self.lock();
        if let Some((caller, until)) = entries.known.get(key_hash)
            && *until > now
        {
            return Some(Kept::Known(caller.clone()));
        }
        entries
            .unknown
            .get(key_hash)
            .filter(|until| **until > now)
            .map(|_| Kept::Unknown)
    }

    /// The generation to hand back to [`KeyCache::put`] with an answer read
    /// after this call.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Keeps `answer` for `key_hash` until `until`, unless a key was
    /// forgotten since `generation` was read (the answer may be stale).
    pub(crate) fn put(
        &self,
        key_hash: String,
        answer: Option<Caller>,
        until: Timestamp,
        generation: u64,
    ) {
        let mut entries = self.lock();
        if entries.generation != generation {
            return;
        }
        if let Some(caller) = answer {
            if entries.known.len() >= KNOWN_CAPACITY {
                entries.known.clear();
            }
            entries.unknown.remove(&key_hash);
            entries.known.insert(key_hash, (caller, until));
        } else {
            if entries.unknown.len() >= UNKNOWN_CAPACITY {
                entries.unknown.clear();
            }
            entries.known.remove(&key_hash);
            entries.unknown.insert(key_hash, until);
        }
    }

    /// Forgets every key at once.
    pub(crate) fn forget_all(&self) {
        let mut entries = self.lock();
        entries.generation += 1;
        entries.known.clear();
        entries.unknown.clear();
    }

    /// Forgets `key_hash` at once (after a revocation).
    pub(crate) fn forget(&self, key_hash: &str) {
        let mut entries = self.lock();
        entries.generation += 1;
        entries.known.remove(key_hash);
        entries.unknown.remove(key_hash);
    }
}

/// Resolves keys against the tenancy database, through a cache.
pub struct KeyStore {
    db: Db,
    clock: Arc<dyn Clock>,
    ttl: SignedDuration,
    cache: KeyCache,
}

impl KeyStore {
    /// A store whose answers are trusted for `ttl`.
    pub fn new(db: Db, clock: Arc<dyn Clock>, ttl: std::time::Duration) -> Self {
        Self {
            db,
            clock,
            ttl: SignedDuration::try_from(ttl).unwrap_or(SignedDuration::from_secs(30)),
            cache: KeyCache::new(),
        }
    }

    /// Forgets a key at once (after a revocation).
    pub(crate) fn forget(&self, key_hash: &str) {
        self.cache.forget(key_hash);
    }

    /// Forgets every key (revocations may have been missed).
    pub(crate) fn forget_all(&self) {
        self.cache.forget_all();
    }
}

impl Authenticator for KeyStore {
    fn authenticate<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Caller>, Error>> {
        Box::pin(async move {
            let key_hash = hash(key);
            let now = self.clock.now();
            if let Some(kept) = self.cache.get(&key_hash, now) {
                return Ok(kept.answer());
            }
            let generation = self.cache.generation();
            let caller = store::keys::caller(&mut *self.db.read().await?, &key_hash).await?;
            let until = now.saturating_add(self.ttl).unwrap_or(now);
            self.cache.put(key_hash, caller.clone(), until, generation);
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

    fn caller() -> Caller {
        Caller {
            tenant_id: Some("t1".into()),
            role: recovery_kit::Role::Staff,
            key_id: "k1".into(),
        }
    }

    #[test]
    fn an_answer_read_before_a_revocation_is_not_kept_after_it() {
        let cache = KeyCache::new();
        let now = Timestamp::UNIX_EPOCH;
        let later = now + SignedDuration::from_secs(30);
        // A lookup starts, reads the key as valid; meanwhile the key is
        // revoked and forgotten; then the lookup's answer arrives.
        let generation = cache.generation();
        cache.forget("h1");
        cache.put("h1".into(), Some(caller()), later, generation);
        assert_eq!(cache.get("h1", now), None, "the stale answer is not kept");
        // An answer read after the revocation is kept.
        let generation = cache.generation();
        cache.put("h1".into(), None, later, generation);
        assert_eq!(cache.get("h1", now), Some(Kept::Unknown));
    }

    #[test]
    fn unknown_keys_do_not_push_out_known_ones() {
        let cache = KeyCache::new();
        let now = Timestamp::UNIX_EPOCH;
        let later = now + SignedDuration::from_secs(30);
        cache.put("known".into(), Some(caller()), later, cache.generation());
        for i in 0..(UNKNOWN_CAPACITY * 3) {
            cache.put(format!("made-up-{i}"), None, later, cache.generation());
        }
        assert_eq!(cache.get("known", now), Some(Kept::Known(caller())));
        assert_eq!(cache.get("known", later), None, "until its lifetime ends");
    }
}
