//! Values kept in memory under the version of the rows they were read
//! from. The version is a number (or a tuple of numbers) that triggers bump
//! in the writing transaction of every change to those rows, whichever
//! replica or path wrote it; a reader reads the version first, then the
//! rows, and keeps what it built under that version. A later reader that
//! reads the same version gets the kept value: no change committed since it
//! was read (when the value holds a later commit too, the version has
//! moved and nobody sees it again). Used by booking's treatments and lists.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

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
