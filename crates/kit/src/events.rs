//! The event bus: services publish what changed, after the change commits;
//! live views (a tablet's schedule, the device board) subscribe.
//!
//! Without Redis this is an in-process bus: every watcher in the process
//! sees every change made in the process. With Redis ([`Bus::with_redis`])
//! each event also goes to a Redis Stream of its topic, and every process
//! reads the streams of its live topics, so a watcher on any replica sees
//! every replica's changes (see [`streams`]).

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::server::Shutdown;

pub(crate) mod streams;

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

/// What the bus hands its subscribers.
#[derive(Debug, Clone)]
enum Delivery {
    Event(Arc<Event>),
    /// Events may have been missed (Redis was unreachable): every watcher
    /// resends a snapshot.
    Lagged,
}

/// Publishes and subscribes to events.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Delivery>,
    streams: Option<Arc<streams::Streams>>,
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
        Self { tx, streams: None }
    }

    /// A bus across replicas through Redis at `url`: every event published
    /// is also appended to the stream `<prefix>:events:<topic>`, and once
    /// [`Bus::spawn_reader`] runs, the events of `live` topics published by
    /// other processes reach this process's watchers. Connects lazily: fails
    /// only on a URL that does not parse.
    pub fn with_redis(url: &str, prefix: &str, live: &[&'static str]) -> anyhow::Result<Self> {
        Ok(Self {
            streams: Some(Arc::new(streams::Streams::open(url, prefix, live)?)),
            ..Self::default()
        })
    }

    /// Whether events cross replicas (through Redis).
    pub fn is_shared(&self) -> bool {
        self.streams.is_some()
    }

    /// Starts reading other processes' events (with Redis; nothing to do
    /// without), until `shutdown`.
    pub fn spawn_reader(&self, shutdown: Shutdown) {
        if let Some(streams) = &self.streams {
            streams.spawn_reader(self.tx.downgrade(), shutdown);
        }
    }

    /// Where events cross replicas, with Redis.
    pub(crate) fn streams(&self) -> Option<&Arc<streams::Streams>> {
        self.streams.as_ref()
    }

    /// Hands `event` to this process's watchers only (it reached the other
    /// replicas another way: the outbox relay appended it).
    pub(crate) fn show_here(&self, event: Event) {
        let _ = self.tx.send(Delivery::Event(Arc::new(event)));
    }

    /// Publishes an event; with nobody watching it goes nowhere. Never
    /// fails: with Redis unreachable, other replicas miss it and their
    /// watchers resync when Redis is back.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        if let Some(streams) = &self.streams {
            streams.append(Arc::clone(&event));
        }
        let _ = self.tx.send(Delivery::Event(event));
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
            tenant_id: Some(tenant_id.into()),
            scope: Some(scope.into()),
        }
    }

    /// Events of `topic` of every tenant and scope, from now on (a
    /// process's own housekeeping, such as dropping revoked keys).
    pub fn subscribe_topic(&self, topic: &'static str) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            topic,
            tenant_id: None,
            scope: None,
        }
    }
}

/// A filtered stream of events.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Delivery>,
    topic: &'static str,
    /// `None`: every tenant.
    tenant_id: Option<String>,
    /// `None`: every scope.
    scope: Option<String>,
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
                Ok(Delivery::Event(event))
                    if event.topic == self.topic
                        && self
                            .tenant_id
                            .as_ref()
                            .is_none_or(|t| *t == event.tenant_id)
                        && self.scope.as_ref().is_none_or(|s| *s == event.scope) =>
                {
                    return Ok(event);
                }
                Ok(Delivery::Event(_)) => {}
                Ok(Delivery::Lagged) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(Missed::Lagged);
                }
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
    async fn a_topic_subscription_sees_every_tenant_and_scope_of_its_topic() {
        let bus = Bus::in_process(16);
        let mut all = bus.subscribe_topic("tenancy.key_revoked");
        bus.publish(Event::new("booking.booking", "t1", "loc1", vec![1]));
        bus.publish(Event::new("tenancy.key_revoked", "t2", "k1", vec![2]));
        bus.publish(Event::new("tenancy.key_revoked", "", "k2", vec![3]));
        assert_eq!(all.next().await.unwrap().payload, [2]);
        assert_eq!(all.next().await.unwrap().payload, [3]);
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
