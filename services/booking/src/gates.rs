//! One allocating transaction per location at a time in this process.
//!
//! The location's lock (`store::allocations::lock_location`) is
//! what makes check-and-insert atomic, across replicas too; but a caller
//! waiting for it holds a pool connection, so 100 desks on one slot would
//! hold all 20 and every other tenant would wait for one. Waiting here
//! first, before a connection is asked for, keeps one location's queue to
//! one connection per replica. Tokio's mutex is fair: callers go in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{Mutex as Gate, OwnedMutexGuard};

/// The gates of the locations someone is booking at now; a gate goes when
/// its last caller leaves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gates(Arc<Mutex<HashMap<String, Weak<Gate<()>>>>>);

impl Gates {
    /// Waits for the location's turn; it lasts while the guard lives.
    pub(crate) async fn enter(&self, location_id: &str) -> OwnedMutexGuard<()> {
        let gate = {
            let mut gates = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            gates.retain(|_, gate| gate.strong_count() > 0);
            if let Some(gate) = gates.get(location_id).and_then(Weak::upgrade) {
                gate
            } else {
                let gate = Arc::new(Gate::new(()));
                gates.insert(location_id.to_owned(), Arc::downgrade(&gate));
                gate
            }
        };
        gate.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_caller_per_location_and_gates_go_when_left() {
        let gates = Gates::default();
        let first = gates.enter("a").await;
        // Another location is not held up.
        let other = gates.enter("b").await;
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), gates.enter("a"));
        assert!(waiting.await.is_err(), "a second caller at a waits");
        drop((first, other));
        drop(gates.enter("a").await);
        let _c = gates.enter("c").await;
        assert_eq!(gates.0.lock().unwrap().len(), 1, "only c's gate is left");
    }
}
