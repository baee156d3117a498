//! Values kept in memory under the version of the rows they were read
//! from. The version is a number (or a tuple of numbers) that triggers bump
//! in the writing transaction of every change to those rows, whichever
//! replica or path wrote it; a reader reads the version first, then the
//! rows, and keeps what it built under that version. A later reader that
//! reads the same version gets the kept value: no change committed since it
//! was read (when the value holds a later commit too, the version has
//! moved and nobody sees it again). Used by booking's treatments and lists.
//!
//! [`Shared`] shares the version reads themselves: callers that ask for
//! the same key while no read of it has been sent yet take one read, which
//! starts after every one of them asked.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Values by key, each under the version it was read after, up to a
/// budget: a count of values, or a weight the caller gives each (a page's
/// encoded size). A full cache starts over: the keys a desk asks for are
/// few and repeat, and reading again is always correct.
pub struct Versioned<K, V, T> {
    kept: Mutex<Kept<K, V, T>>,
    budget: usize,
}

struct Kept<K, V, T> {
    values: HashMap<K, (V, T, usize)>,
    weight: usize,
}

impl<K, V, T> std::fmt::Debug for Versioned<K, V, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Versioned")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Hash, V: Ord + Copy, T: Clone> Versioned<K, V, T> {
    /// An empty cache of at most `budget` values (or of values weighing
    /// `budget` in all, when kept with [`Versioned::put_weighed`]).
    pub fn new(budget: usize) -> Self {
        Self {
            kept: Mutex::new(Kept {
                values: HashMap::new(),
                weight: 0,
            }),
            budget: budget.max(1),
        }
    }

    /// The value kept for `key` under exactly `version`.
    pub fn get<Q>(&self, key: &Q, version: V) -> Option<T>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.values
            .get(key)
            .filter(|(at, _, _)| *at == version)
            .map(|(_, value, _)| value.clone())
    }

    /// Keeps `value`, read after `version` was, unless a value read under a
    /// newer version is kept already.
    pub fn put(&self, key: K, version: V, value: T) {
        self.put_weighed(key, version, value, 1);
    }

    /// [`Versioned::put`] of a value weighing `weight` against the budget;
    /// one heavier than the whole budget is not kept.
    pub fn put_weighed(&self, key: K, version: V, value: T, weight: usize) {
        if weight > self.budget {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let Kept {
            values,
            weight: total,
        } = &mut *kept;
        if let Some((at, _, old)) = values.get(&key) {
            if *at > version {
                return;
            }
            *total -= *old;
        }
        if *total + weight > self.budget {
            values.clear();
            *total = 0;
        }
        values.insert(key, (version, value, weight));
        *total += weight;
    }
}

/// Version reads shared by the callers that ask for the same key at once.
///
/// A kept value is current when the version is read after the caller
/// asked; any read that *starts* after that will do. So callers asking for
/// a key join one round; the first of them to get the key's turn closes
/// the round (a caller asking later starts the next one), reads, and hands
/// the version to the round. One read is under way per key at a time, and
/// a caller waits at most for the read under way when it asked and then
/// its own round's. Sixteen desks listing the same day make a read or two
/// where they made sixteen.
pub struct Shared<K, V> {
    keys: Mutex<HashMap<K, Arc<Turns<V>>>>,
}

/// One key's rounds: the one still open to joiners, and the turn to read.
struct Turns<V> {
    open: Mutex<Option<Arc<Round<V>>>>,
    turn: tokio::sync::Mutex<()>,
}

/// The callers that one read serves; its version once read (`None` when
/// the read failed: each of them reads on its own then).
struct Round<V> {
    read: OnceLock<Option<V>>,
}

impl<K, V> std::fmt::Debug for Shared<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl<K, V> Default for Shared<K, V> {
    fn default() -> Self {
        Self {
            keys: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Shared<K, V> {
    /// The version of `key` as `read` answers it, read after this call
    /// began: by this caller, or by another whose read started later.
    /// `read` is called only by the caller that reads (or after a shared
    /// read failed).
    ///
    /// # Errors
    ///
    /// `read`'s, when this caller's read failed.
    pub async fn read<F, Fut, E>(&self, key: &K, read: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let turns = {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(keys.entry(key.clone()).or_insert_with(|| {
                Arc::new(Turns {
                    open: Mutex::new(None),
                    turn: tokio::sync::Mutex::new(()),
                })
            }))
        };
        let round = {
            let mut open = turns.open.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(open.get_or_insert_with(|| {
                Arc::new(Round {
                    read: OnceLock::new(),
                })
            }))
        };
        let result = {
            let _turn = turns.turn.lock().await;
            if let Some(Some(version)) = round.read.get() {
                Ok(version.clone())
            } else {
                // This caller reads for its round: close it first, so that
                // whoever asks from now on waits for a read that starts
                // after they asked. (Closed already when the round's
                // reader failed or was dropped: read alone then.)
                {
                    let mut open = turns.open.lock().unwrap_or_else(PoisonError::into_inner);
                    if open.as_ref().is_some_and(|o| Arc::ptr_eq(o, &round)) {
                        *open = None;
                    }
                }
                let result = read().await;
                let _ = round.read.set(result.as_ref().ok().cloned());
                result
            }
        };
        drop(round);
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        // Nobody else holds the key's turns (they take them under this
        // lock): forget the key until it is asked for again.
        if Arc::strong_count(&turns) == 2 {
            keys.remove(key);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::Versioned;

    #[test]
    fn a_value_serves_only_under_the_version_it_was_read_after() {
        let kept = Versioned::new(4);
        kept.put("a".to_owned(), 3, "three");
        assert_eq!(kept.get("a", 3), Some("three"));
        assert_eq!(kept.get("a", 4), None, "a newer version reads again");
        assert_eq!(kept.get("a", 2), None);
        assert_eq!(kept.get("b", 3), None);
    }

    #[test]
    fn an_older_read_does_not_replace_a_newer_one() {
        let kept = Versioned::new(4);
        kept.put("a".to_owned(), (2, 5), "new");
        kept.put("a".to_owned(), (2, 4), "old");
        assert_eq!(kept.get("a", (2, 5)), Some("new"));
        kept.put("a".to_owned(), (3, 0), "newer");
        assert_eq!(kept.get("a", (3, 0)), Some("newer"));
    }

    #[test]
    fn weighed_values_fill_the_budget_and_the_heaviest_are_not_kept() {
        let kept = Versioned::new(10);
        kept.put_weighed('a', 1, "a", 6);
        kept.put_weighed('a', 2, "a2", 4);
        kept.put_weighed('b', 1, "b", 6);
        assert_eq!(kept.get(&'a', 2), Some("a2"), "4 + 6 fits");
        kept.put_weighed('c', 1, "c", 11);
        assert_eq!(kept.get(&'c', 1), None, "heavier than the budget");
        assert_eq!(kept.get(&'b', 1), Some("b"));
        kept.put_weighed('c', 1, "c", 1);
        assert_eq!(kept.get(&'a', 2), None, "full: started over");
        assert_eq!(kept.get(&'c', 1), Some("c"));
    }

    #[test]
    fn a_full_cache_starts_over() {
        let kept = Versioned::new(2);
        kept.put(1, 1, 'a');
        kept.put(2, 1, 'b');
        kept.put(2, 2, 'c');
        assert_eq!(kept.get(&1, 1), Some('a'), "replacing a key is not growing");
        kept.put(3, 1, 'd');
        assert_eq!(kept.get(&1, 1), None);
        assert_eq!(kept.get(&3, 1), Some('d'));
    }
}

#[cfg(test)]
mod shared {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use tokio::sync::Semaphore;

    use super::Shared;

    /// A version counter whose reads wait for a permit each: what a read
    /// returns is the number of reads made, so a caller's answer shows
    /// which read served it.
    /// Its first `failing` reads fail.
    struct Counter {
        reads: AtomicI64,
        failing: i64,
        gate: Semaphore,
    }

    impl Counter {
        fn new(failing: i64) -> Arc<Self> {
            Arc::new(Self {
                reads: AtomicI64::new(0),
                failing,
                gate: Semaphore::new(0),
            })
        }

        async fn read(&self) -> Result<i64, &'static str> {
            let number = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
            self.gate.acquire().await.expect("open").forget();
            if number <= self.failing {
                Err("failed")
            } else {
                Ok(number)
            }
        }
    }

    /// How many callers have joined `key`'s open round.
    fn waiting(shared: &Shared<&'static str, i64>, key: &'static str) -> usize {
        let keys = shared.keys.lock().unwrap();
        keys.get(key).map_or(0, |turns| {
            let open = turns.open.lock().unwrap();
            open.as_ref()
                .map_or(0, |round| Arc::strong_count(round) - 1)
        })
    }

    /// Yields until `done` (the spawned callers run meanwhile); a state
    /// never reached fails the test instead of hanging it.
    async fn until(mut done: impl FnMut() -> bool) {
        for _ in 0..100_000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never reached");
    }

    #[tokio::test]
    async fn callers_asking_during_a_read_share_the_next_one() {
        let shared = Arc::new(Shared::default());
        let counter = Counter::new(0);
        let ask = || {
            let (shared, counter) = (Arc::clone(&shared), Arc::clone(&counter));
            tokio::spawn(async move { shared.read(&"day", || counter.read()).await })
        };
        let first = ask();
        until(|| counter.reads.load(Ordering::SeqCst) == 1).await;
        // Asked while the first read is under way: it may have been sent
        // before a change they must see, so they wait for another.
        let later: Vec<_> = (0..5).map(|_| ask()).collect();
        until(|| waiting(&shared, "day") == 5).await;
        counter.gate.add_permits(1);
        assert_eq!(first.await.unwrap(), Ok(1));
        until(|| counter.reads.load(Ordering::SeqCst) == 2).await;
        counter.gate.add_permits(1);
        for caller in later {
            assert_eq!(caller.await.unwrap(), Ok(2), "one read, after they asked");
        }
        assert_eq!(
            counter.reads.load(Ordering::SeqCst),
            2,
            "six callers, two reads"
        );
        assert!(
            shared.keys.lock().unwrap().is_empty(),
            "an idle key is forgotten"
        );
    }

    #[tokio::test]
    async fn when_the_shared_read_fails_each_caller_reads_alone() {
        let shared = Arc::new(Shared::default());
        let counter = Counter::new(2);
        let ask = || {
            let (shared, counter) = (Arc::clone(&shared), Arc::clone(&counter));
            tokio::spawn(async move { shared.read(&"day", || counter.read()).await })
        };
        let first = ask();
        until(|| counter.reads.load(Ordering::SeqCst) == 1).await;
        let later: Vec<_> = (0..3).map(|_| ask()).collect();
        until(|| waiting(&shared, "day") == 3).await;
        counter.gate.add_permits(10);
        assert_eq!(first.await.unwrap(), Err("failed"));
        let mut answers = Vec::new();
        for caller in later {
            answers.push(caller.await.unwrap());
        }
        answers.sort_unstable();
        // The round's read (the second) failed; the other two read alone.
        assert_eq!(answers, [Ok(3), Ok(4), Err("failed")]);
    }

    #[tokio::test]
    async fn keys_do_not_wait_for_each_other() {
        let shared = Arc::new(Shared::default());
        let counter = Counter::new(0);
        let blocked = {
            let (shared, counter) = (Arc::clone(&shared), Arc::clone(&counter));
            tokio::spawn(async move { shared.read(&"monday", || counter.read()).await })
        };
        until(|| counter.reads.load(Ordering::SeqCst) == 1).await;
        let other = shared.read(&"tuesday", || async { Ok::<_, &str>(7) }).await;
        assert_eq!(other, Ok(7));
        counter.gate.add_permits(1);
        assert_eq!(blocked.await.unwrap(), Ok(1));
    }
}
