//! Per location, one transaction at a time decides on its calendar here.
//!
//! The location's lock (`store::allocations::lock_location`) is what makes
//! check-and-insert atomic, across replicas too; the gate in front of it
//! keeps this process's callers in order (Tokio's mutex is fair) so that at
//! most one of them waits on the database's lock.
//!
//! A caller takes, in this order: one of the location's [`LANES`], a
//! connection (its transaction), the client's lock when it books or moves
//! a client's session (`store::bookings::lock_client`, for the daily
//! limit), the location's turn. The lanes bound the
//! connections one location's queue holds (100 desks on one slot would
//! otherwise hold all 20 and every other tenant would wait for one); the
//! turn is taken with a connection in hand, so whoever has the turn never
//! waits for a connection, and no holder of a turn waits for a client's
//! lock. A booking does its own rows (the booking, its findings and
//! devices) and counts the client's day before it asks for the turn, and
//! only what the location's calendar decides inside it: the next booking's
//! rows are written while the one before it holds the turn.
//!
//! Nothing a transaction does before its turn may lock a row that a holder
//! of the turn could wait for: the bookings version (migration 20091) is
//! bumped at commit for that reason.
//!
//! A booking decided on a kept calendar (PostgreSQL) ends its turn once its
//! allocations are written, before its commit: the change is pending in the
//! kept calendars (`calendars::changes`), the next booking picks on them
//! with it, and the next one's statement waits in the database for the
//! location's row until the first commits. So one holder of the row and
//! one waiter: the commit's round trip and flush overlap the next pick.
//! A hold does the same. After its turn a transaction only writes and
//! reads its own rows and commits, so it never waits for anything the
//! turn's next holder holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{Mutex as Turns, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

/// Transactions one location may have open in this process at once: one
/// holding the turn, the others writing their own rows meanwhile.
pub(crate) const LANES: usize = 4;

/// The gates of the locations someone is booking at now; a gate goes when
/// its last caller leaves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gates(Arc<Mutex<HashMap<String, Weak<Gate>>>>);

#[derive(Debug)]
struct Gate {
    lanes: Arc<Semaphore>,
    turn: Arc<Turns<()>>,
}

/// A place in a location's queue: hold it before asking for a connection,
/// and [`Lane::enter`] with the transaction begun.
#[derive(Debug)]
pub(crate) struct Lane {
    gate: Arc<Gate>,
    _lane: Option<OwnedSemaphorePermit>,
}

/// The location's turn; it lasts while this lives (keep it until commit).
pub(crate) type Turn = OwnedMutexGuard<()>;

impl Gates {
    /// Waits for one of the location's lanes.
    pub(crate) async fn lane(&self, location_id: &str) -> Lane {
        let gate = {
            let mut gates = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            gates.retain(|_, gate| gate.strong_count() > 0);
            if let Some(gate) = gates.get(location_id).and_then(Weak::upgrade) {
                gate
            } else {
                let gate = Arc::new(Gate {
                    lanes: Arc::new(Semaphore::new(LANES)),
                    turn: Arc::new(Turns::new(())),
                });
                gates.insert(location_id.to_owned(), Arc::downgrade(&gate));
                gate
            }
        };
        // The semaphore is never closed: a permit always comes.
        let lane = Arc::clone(&gate.lanes).acquire_owned().await.ok();
        Lane { gate, _lane: lane }
    }

    /// The lanes of several locations, in the order given (callers sort
    /// them, so that two of them never wait for each other's).
    pub(crate) async fn lanes<S: AsRef<str>>(&self, location_ids: &[S]) -> Vec<Lane> {
        let mut lanes = Vec::with_capacity(location_ids.len());
        for location_id in location_ids {
            lanes.push(self.lane(location_id.as_ref()).await);
        }
        lanes
    }
}

impl Lane {
    /// Waits for the location's turn (with a transaction begun).
    pub(crate) async fn enter(&self) -> Turn {
        Arc::clone(&self.gate.turn).lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `future` once: ready or not.
    async fn ready<F: std::future::Future>(future: F) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match future.as_mut().poll(cx) {
                std::task::Poll::Ready(out) => Some(out),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    #[tokio::test]
    async fn one_turn_per_location_and_gates_go_when_left() {
        let gates = Gates::default();
        let (a, b) = (gates.lane("a").await, gates.lane("b").await);
        let first = a.enter().await;
        // Another location is not held up.
        let other = b.enter().await;
        let second = gates.lane("a").await;
        assert!(
            ready(second.enter()).await.is_none(),
            "a second turn at a waits"
        );
        drop(first);
        assert!(
            ready(second.enter()).await.is_some(),
            "and comes when the first ends"
        );
        drop((a, b, second, other));
        let _c = gates.lane("c").await;
        assert_eq!(gates.0.lock().unwrap().len(), 1, "only c's gate is left");
    }

    #[tokio::test]
    async fn a_location_has_so_many_lanes() {
        let gates = Gates::default();
        let held = gates.lanes(&vec!["a".to_owned(); LANES]).await;
        assert!(
            ready(gates.lane("a")).await.is_none(),
            "every lane is taken"
        );
        assert!(
            ready(gates.lane("b")).await.is_some(),
            "another location's are not"
        );
        drop(held);
        assert!(ready(gates.lane("a")).await.is_some());
    }
}
