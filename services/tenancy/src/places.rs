//! Locations other services looked up, kept for a while: every search,
//! hold and booking names its location, and a location changes rarely.
//! An entry lives for the key cache's lifetime at most. In process a change
//! forgets it at once; with the bus shared (`Tenancy::share_revocations`)
//! a change made by another replica does too, and `Remote` (a service run
//! apart) keeps it for the lifetime alone, as it keeps keys.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use recovery_kit::{Caller, Error};
use recovery_proto::tenancy::v1 as pb;

/// The topic of location changes: scope the location's id. Every process
/// that keeps locations follows it.
pub const LOCATION_CHANGED_TOPIC: &str = "tenancy.location_changed";

/// Locations kept at most; a full cache starts over.
const CAPACITY: usize = 10_000;

/// Locations as last read, each until its entry expires.
pub(crate) struct Places {
    inner: Mutex<Entries>,
    ttl: SignedDuration,
}

#[derive(Default)]
struct Entries {
    kept: HashMap<String, (pb::Location, Timestamp)>,
    /// Bumped by every forget: a read begun before it is not kept.
    generation: u64,
}

impl Places {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            ttl: SignedDuration::try_from(ttl).unwrap_or(SignedDuration::ZERO),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The location `id` as `caller` may see it: kept, or from `read` (and
    /// kept). Another tenant's location is NOT_FOUND, kept or not.
    pub(crate) async fn location(
        &self,
        caller: &Caller,
        id: &str,
        read: impl Future<Output = Result<pb::Location, Error>>,
    ) -> Result<pb::Location, Error> {
        let now = Timestamp::now();
        let (kept, generation) = {
            let entries = self.lock();
            let kept = entries
                .kept
                .get(id)
                .filter(|(_, until)| *until > now)
                .map(|(location, _)| location.clone());
            (kept, entries.generation)
        };
        let location = if let Some(location) = kept {
            location
        } else {
            let location = read.await?;
            self.put(&location, now, generation);
            location
        };
        if caller.sees(&location.tenant_id) {
            Ok(location)
        } else {
            Err(Error::not_found("location", id))
        }
    }

    /// Keeps `location`, read at `now`, unless a location was forgotten
    /// since `generation` (the read may predate the change).
    fn put(&self, location: &pb::Location, now: Timestamp, generation: u64) {
        let until = now.saturating_add(self.ttl).unwrap_or(now);
        if until <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.generation != generation {
            return;
        }
        if entries.kept.len() >= CAPACITY {
            entries.kept.clear();
        }
        entries
            .kept
            .insert(location.id.clone(), (location.clone(), until));
    }

    /// Forgets location `id` at once (it changed).
    pub(crate) fn forget(&self, id: &str) {
        let mut entries = self.lock();
        entries.generation += 1;
        entries.kept.remove(id);
    }

    /// Forgets every location (changes may have been missed).
    pub(crate) fn forget_all(&self) {
        let mut entries = self.lock();
        entries.generation += 1;
        entries.kept.clear();
    }
}
