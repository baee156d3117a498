//! The event bus: services publish what changed, after the change commits;
//! live views (a tablet's schedule, the device board) subscribe.
//!
//! This is the in-process bus of `recoveryd`: every watcher in the process
//! sees every change made in the process. Across replicas the same
//! interface will be fed by Redis Streams (a later issue).

use std::sync::Arc;

use tokio::sync::broadcast;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// UUIDv7; consumers that may see an event twice dedupe by it.
    pub id: String,
    /// What changed, e.g. `booking.booking` or `fleet.device`.
    pub topic: &'static str,
    /// Whose it is.
    pub tenant_id: String,
    /// What watchers filter on within the tenant, e.g. a location id.
    pub scope: String,
    /// The changed object, encoded (a protobuf message of the topic).
    pub payload: Vec<u8>,
    /// The W3C `traceparent` of the span that made the change, when traces
    /// are exported: a consumer's span links to it.
    pub traceparent: Option<String>,
}

impl Event {
    /// A new event with a fresh id.
    pub fn new(
        topic: &'static str,
        tenant_id: impl Into<String>,
        scope: impl Into<String>,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            id: crate::ids::new_id(),
            topic,
            tenant_id: tenant_id.into(),
            scope: scope.into(),
            payload,
            traceparent: crate::metrics::enabled()
                .then(crate::telemetry::current_traceparent)
                .flatten(),
        }
    }
}

/// Publishes and subscribes to events.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::in_process(4096)
    }
}

impl Bus {
    /// An in-process bus; a watcher more than `capacity` events behind is
    /// told it lagged.
    pub fn in_process(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    /// Publishes an event; with nobody watching it goes nowhere.
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(Arc::new(event));
    }

    /// Events of `topic` in `tenant_id` and `scope`, from now on.
    pub fn subscribe(
        &self,
        topic: &'static str,
        tenant_id: impl Into<String>,
        scope: impl Into<String>,
    ) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            topic,
            tenant_id: tenant_id.into(),
            scope: scope.into(),
        }
    }
}

/// A filtered stream of events.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
    topic: &'static str,
    tenant_id: String,
    scope: String,
}

/// Why [`Subscription::next`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// The watcher fell behind and events were dropped: resend a snapshot.
    Lagged,
    /// The bus is gone.
    Closed,
}

impl Subscription {
    /// The next matching event.
    pub async fn next(&mut self) -> Result<Arc<Event>, Missed> {
        loop {
            match self.rx.recv().await {
                Ok(event)
                    if event.topic == self.topic
                        && event.tenant_id == self.tenant_id
                        && event.scope == self.scope =>
                {
                    return Ok(event);
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return Err(Missed::Lagged),
                Err(broadcast::error::RecvError::Closed) => return Err(Missed::Closed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watchers_see_only_their_tenant_and_scope() {
        let bus = Bus::in_process(16);
        let mut mine = bus.subscribe("booking.booking", "t1", "loc1");
        bus.publish(Event::new("booking.booking", "t2", "loc1", vec![1]));
        bus.publish(Event::new("booking.booking", "t1", "loc2", vec![2]));
        bus.publish(Event::new("fleet.device", "t1", "loc1", vec![3]));
        bus.publish(Event::new("booking.booking", "t1", "loc1", vec![4]));
        assert_eq!(mine.next().await.unwrap().payload, [4]);
    }

    #[tokio::test]
    async fn a_slow_watcher_is_told_it_lagged() {
        let bus = Bus::in_process(2);
        let mut slow = bus.subscribe("t", "a", "b");
        for i in 0..5 {
            bus.publish(Event::new("t", "a", "b", vec![i]));
        }
        assert_eq!(slow.next().await.unwrap_err(), Missed::Lagged);
        assert_eq!(slow.next().await.unwrap().payload, [3]);
    }
}
