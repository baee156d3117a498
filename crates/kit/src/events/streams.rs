//! The bus across replicas: every event a process publishes is appended to
//! a Redis Stream of its topic, and a reader in every process reads the
//! live topics' streams from "now" (XREAD, no consumer group: every replica
//! sees every event) and hands each event of another process to the local
//! watchers. A process's own events reach its watchers directly.
//!
//! Redis is a convenience here, never a reason to fail a call: an event
//! that cannot be appended is logged and dropped, and when the reader gets
//! through to Redis again after failing, every watcher is told it lagged so
//! it sends a fresh snapshot.
//!
//! The outbox relay appends through [`Streams::append_now`] instead, which
//! waits for Redis and reports failure: its events stay in the outbox
//! table until Redis took them (see `crate::outbox`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamMaxlen, StreamRangeReply, StreamReadOptions, StreamReadReply};
use tokio::sync::{broadcast, mpsc};

use super::{Delivery, Event};
use crate::server::Shutdown;

/// A stream keeps about this many entries (`MAXLEN ~`): enough for a
/// reader that was briefly away, small enough to never matter for memory.
pub(crate) const STREAM_LENGTH: usize = 10_000;
/// Events waiting to be appended; past this (Redis slow or down) they are
/// dropped with a warning.
const OUTGOING: usize = 4096;
/// How long one XREAD waits for new entries.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries one XREAD returns per stream at most.
const BATCH: usize = 512;
/// The reader's first and longest wait after Redis failed it.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where a bus's events go across replicas.
#[derive(Debug)]
pub(crate) struct Streams {
    /// This bus's id: its reader skips what it appended itself.
    origin: String,
    /// Stream keys start with `<prefix>:events:`.
    prefix: String,
    /// The topics watchers of this process subscribe to.
    live: Vec<&'static str>,
    client: redis::Client,
    /// The appending connection (shared with the writer task).
    connection: ConnectionManager,
    outgoing: mpsc::Sender<Arc<Event>>,
}

impl Streams {
    /// Appends to Redis at `url` (connecting lazily: Redis may come up
    /// later) under `prefix`; the reader, once spawned, reads `live`.
    pub(super) fn open(url: &str, prefix: &str, live: &[&'static str]) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let connection = ConnectionManager::new_lazy_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_number_of_retries(1)
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(1))),
        )?;
        let (outgoing, rx) = mpsc::channel(OUTGOING);
        let prefix = prefix.to_owned();
        let origin = crate::ids::new_id();
        tokio::spawn(append(
            connection.clone(),
            prefix.clone(),
            origin.clone(),
            rx,
        ));
        Ok(Self {
            origin,
            prefix,
            live: live.to_vec(),
            client,
            connection,
            outgoing,
        })
    }

    /// Appends `event` to its stream now and says whether Redis took it:
    /// the outbox relay's way in, which keeps the event until it did.
    /// Other replicas' readers see it; this process's own reader skips it.
    pub(crate) async fn append_now(&self, event: &Event) -> redis::RedisResult<()> {
        let _: Option<String> = self
            .connection
            .clone()
            .xadd_maxlen_map(
                self.key(event.topic),
                StreamMaxlen::Approx(STREAM_LENGTH),
                "*",
                fields(event, &self.origin),
            )
            .await?;
        Ok(())
    }

    /// Where connections for readers of these streams come from.
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The start of every key of this deployment.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Queues `event` for its stream; never waits, never fails.
    pub(super) fn append(&self, event: Arc<Event>) {
        if let Err(error) = self.outgoing.try_send(event) {
            tracing::warn!(
                event_id = %error.into_inner().id,
                "event not sent to redis: too many waiting; other replicas' watchers miss it"
            );
        }
    }

    /// Reads the live topics' streams from now and hands other processes'
    /// events to `tx`'s subscribers, until `shutdown` or until the bus is
    /// gone.
    pub(super) fn spawn_reader(
        self: &Arc<Self>,
        tx: broadcast::WeakSender<Delivery>,
        mut shutdown: Shutdown,
    ) {
        if self.live.is_empty() {
            return;
        }
        let streams = Arc::clone(self);
        tokio::spawn(async move {
            tokio::select! {
                () = streams.read(tx) => {}
                () = shutdown.wait() => tracing::debug!("event reader stopped"),
            }
        });
    }

    /// The stream of `topic`.
    pub(crate) fn key(&self, topic: &str) -> String {
        stream_key(&self.prefix, topic)
    }

    async fn read(&self, tx: broadcast::WeakSender<Delivery>) {
        let connection = match ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            ConnectionManagerConfig::new()
                .set_number_of_retries(1)
                .set_connection_timeout(Some(Duration::from_secs(1)))
                // A blocked XREAD answers after BLOCK at the latest.
                .set_response_timeout(Some(BLOCK + Duration::from_secs(5))),
        ) {
            Ok(connection) => connection,
            Err(error) => {
                tracing::error!(error = %error, "event reader cannot start");
                return;
            }
        };
        let mut reader = Reader {
            connection,
            keys: self.live.iter().map(|topic| self.key(topic)).collect(),
            topics: self.live.clone(),
            positions: None,
        };
        let mut backoff = BACKOFF_MIN;
        let mut failed = false;
        loop {
            let read = reader.next().await;
            let Some(tx) = tx.upgrade() else {
                return;
            };
            match read {
                Ok(events) => {
                    if failed {
                        tracing::info!(
                            "event reader reached redis again; watchers resend snapshots"
                        );
                        let _ = tx.send(Delivery::Lagged);
                        failed = false;
                        backoff = BACKOFF_MIN;
                    }
                    for (origin, event) in events {
                        if origin != self.origin {
                            let _ = tx.send(Delivery::Event(Arc::new(event)));
                        }
                    }
                }
                Err(error) => {
                    if !failed {
                        tracing::warn!(
                            error = %error,
                            "event reader lost redis; retrying (watchers miss other replicas' changes until then)"
                        );
                        // Whatever this process's watchers were told may be
                        // stale by the time Redis is back.
                        failed = true;
                    }
                    drop(tx);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// The stream of `topic` under `prefix`.
pub(crate) fn stream_key(prefix: &str, topic: &str) -> String {
    format!("{prefix}:events:{topic}")
}

/// Appends queued events in order until the bus is gone.
async fn append(
    mut connection: ConnectionManager,
    prefix: String,
    origin: String,
    mut rx: mpsc::Receiver<Arc<Event>>,
) {
    let mut failing = false;
    while let Some(event) = rx.recv().await {
        let fields = fields(&event, &origin);
        let appended: redis::RedisResult<Option<String>> = connection
            .xadd_maxlen_map(
                stream_key(&prefix, event.topic),
                StreamMaxlen::Approx(STREAM_LENGTH),
                "*",
                fields,
            )
            .await;
        match appended {
            Ok(_) if failing => {
                tracing::info!("events reach redis again");
                failing = false;
            }
            Ok(_) => {}
            Err(error) => {
                // Once per outage; the reader tells watchers to resync.
                if !failing {
                    tracing::warn!(
                        error = %error,
                        event_id = %event.id,
                        topic = event.topic,
                        "event not sent to redis; other replicas' watchers resync when it is back"
                    );
                }
                failing = true;
            }
        }
    }
}

fn fields(event: &Event, origin: &str) -> BTreeMap<&'static str, Vec<u8>> {
    let mut fields = BTreeMap::from([
        ("id", event.id.as_bytes().to_vec()),
        ("topic", event.topic.as_bytes().to_vec()),
        ("tenant", event.tenant_id.as_bytes().to_vec()),
        ("scope", event.scope.as_bytes().to_vec()),
        ("payload", event.payload.clone()),
        ("origin", origin.as_bytes().to_vec()),
    ]);
    if let Some(traceparent) = &event.traceparent {
        fields.insert("traceparent", traceparent.as_bytes().to_vec());
    }
    fields
}

/// Where one process reads the live streams.
struct Reader {
    connection: ConnectionManager,
    keys: Vec<String>,
    topics: Vec<&'static str>,
    /// The last entry id seen per stream; `None` until positioned at "now".
    positions: Option<Vec<String>>,
}

impl Reader {
    /// The next entries (origin, event), after waiting at most [`BLOCK`].
    async fn next(&mut self) -> redis::RedisResult<Vec<(String, Event)>> {
        if self.positions.is_none() {
            let mut now = Vec::with_capacity(self.keys.len());
            for key in &self.keys {
                let last: StreamRangeReply =
                    self.connection.xrevrange_count(key, "+", "-", 1).await?;
                now.push(
                    last.ids
                        .first()
                        .map_or_else(|| "0-0".to_owned(), |entry| entry.id.clone()),
                );
            }
            self.positions = Some(now);
        }
        let Some(positions) = self.positions.as_mut() else {
            // Positioned just above; nothing to read if that ever failed.
            return Ok(Vec::new());
        };
        let options = StreamReadOptions::default()
            .block(usize::try_from(BLOCK.as_millis()).unwrap_or(usize::MAX))
            .count(BATCH);
        let reply: Option<StreamReadReply> = self
            .connection
            .xread_options(&self.keys, positions, &options)
            .await?;
        let mut events = Vec::new();
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(at) = self.keys.iter().position(|k| *k == stream.key) else {
                continue;
            };
            for entry in stream.ids {
                positions[at].clone_from(&entry.id);
                if let Some(event) = decode(&entry, self.topics[at]) {
                    events.push(event);
                } else {
                    tracing::warn!(
                        stream = %stream.key,
                        entry = %entry.id,
                        "skipped an event entry that does not decode"
                    );
                }
            }
        }
        Ok(events)
    }
}

/// The event in a stream entry of `topic`, with the bus it came from.
pub(crate) fn decode(
    entry: &redis::streams::StreamId,
    topic: &'static str,
) -> Option<(String, Event)> {
    let text = |field: &str| entry.get::<String>(field);
    Some((
        text("origin")?,
        Event {
            id: text("id")?,
            topic,
            tenant_id: text("tenant")?,
            scope: text("scope")?,
            payload: entry.get::<Vec<u8>>("payload")?,
            traceparent: text("traceparent"),
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::{Bus, Event, Missed};
    use crate::server::Shutdown;

    const LIVE: &str = "test.live";

    /// `TEST_REDIS_URL`, or `None` (with a note) outside CI.
    fn redis_url() -> Option<String> {
        match std::env::var("TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but TEST_REDIS_URL is not: Redis tests must run in CI"
                );
                eprintln!("skipped: TEST_REDIS_URL is not set");
                None
            }
        }
    }

    /// Two replicas' buses on one Redis, under a prefix of this test's own.
    fn replicas(url: &str) -> (Bus, Bus, String) {
        let prefix = format!("recovery-test-{}", crate::ids::new_id());
        let a = Bus::with_redis(url, &prefix, &[LIVE]).unwrap();
        let b = Bus::with_redis(url, &prefix, &[LIVE]).unwrap();
        a.spawn_reader(Shutdown::never());
        b.spawn_reader(Shutdown::never());
        (a, b, prefix)
    }

    async fn forget(url: &str, prefix: &str) {
        let client = redis::Client::open(url).unwrap();
        if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
            let _: redis::RedisResult<()> = redis::cmd("DEL")
                .arg(super::stream_key(prefix, LIVE))
                .query_async(&mut connection)
                .await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_published_on_one_replica_reaches_the_others_watchers_once() {
        let Some(url) = redis_url() else {
            return;
        };
        let (a, b, prefix) = replicas(&url);
        let mut on_a = a.subscribe(LIVE, "t1", "loc1");
        let mut on_b = b.subscribe(LIVE, "t1", "loc1");

        // B's reader starts from "now": publish until it is reading.
        let started = Instant::now();
        let mut event = Event::new(LIVE, "t1", "loc1", vec![1]);
        event.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        let got = loop {
            a.publish(event.clone());
            match tokio::time::timeout(std::time::Duration::from_millis(200), on_b.next()).await {
                Ok(got) => break got.unwrap(),
                Err(_) => assert!(
                    started.elapsed() < std::time::Duration::from_secs(10),
                    "B never saw A's event"
                ),
            }
        };
        assert_eq!(*got, event, "every field crosses, the traceparent too");

        // A's own watcher sees its events from A directly, not again
        // through Redis: after them comes B's event, not a copy.
        while let Ok(Ok(mine)) =
            tokio::time::timeout(std::time::Duration::from_millis(300), on_a.next()).await
        {
            assert_eq!(mine.id, event.id);
        }
        b.publish(Event::new(LIVE, "t1", "loc1", vec![2]));
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), on_a.next())
            .await
            .expect("A sees B's event")
            .unwrap();
        assert_eq!(next.payload, [2]);
        forget(&url, &prefix).await;
    }

    /// A TCP relay to Redis at `url`'s address that can be cut (its
    /// connections dropped, new ones refused) and restored: Redis going
    /// away and coming back, as one process sees it.
    async fn relay(url: &str) -> (String, tokio::sync::watch::Sender<bool>) {
        let rest = url.strip_prefix("redis://").expect("a redis:// url");
        let (target, db) = rest.split_once('/').unwrap_or((rest, "0"));
        let target = target.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relayed = format!("redis://{}/{db}", listener.local_addr().unwrap());
        let (up, is_up) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*is_up.borrow() {
                    continue;
                }
                let mut is_up = is_up.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = is_up.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        (relayed, up)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_redis_was_away_watchers_are_told_they_lagged_then_see_what_they_missed() {
        let Some(url) = redis_url() else {
            return;
        };
        let (relayed, up) = relay(&url).await;
        let prefix = format!("recovery-test-{}", crate::ids::new_id());
        let a = Bus::with_redis(&relayed, &prefix, &[LIVE]).unwrap();
        let b = Bus::with_redis(&url, &prefix, &[LIVE]).unwrap();
        a.spawn_reader(Shutdown::never());
        let mut on_a = a.subscribe(LIVE, "t1", "loc1");
        // A's reader is reading once it sees B's events.
        let started = Instant::now();
        loop {
            b.publish(Event::new(LIVE, "t1", "loc1", vec![0]));
            if let Ok(got) =
                tokio::time::timeout(std::time::Duration::from_millis(200), on_a.next()).await
            {
                assert_eq!(got.unwrap().payload, [0]);
                break;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
        }
        while tokio::time::timeout(std::time::Duration::from_millis(200), on_a.next())
            .await
            .is_ok()
        {}

        // Redis goes away for A: A's own publishing still works locally.
        up.send_replace(false);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        a.publish(Event::new(LIVE, "t1", "loc1", vec![1]));
        assert_eq!(on_a.next().await.unwrap().payload, [1]);
        // B's change while A cannot see Redis.
        b.publish(Event::new(LIVE, "t1", "loc1", vec![2]));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        // Back: A's watcher is told it lagged (so it resends a snapshot),
        // then gets what it missed.
        up.send_replace(true);
        let back = tokio::time::timeout(std::time::Duration::from_secs(15), on_a.next())
            .await
            .expect("A's reader reaches Redis again");
        assert_eq!(back.unwrap_err(), Missed::Lagged);
        let missed = tokio::time::timeout(std::time::Duration::from_secs(5), on_a.next())
            .await
            .expect("B's change arrives")
            .unwrap();
        assert_eq!(missed.payload, [2]);
        forget(&url, &prefix).await;
    }

    #[tokio::test]
    async fn with_redis_unreachable_publishing_still_succeeds_locally() {
        // Nothing listens on port 1.
        let bus = Bus::with_redis("redis://127.0.0.1:1/0", "unreachable", &[LIVE]).unwrap();
        bus.spawn_reader(Shutdown::never());
        let mut watcher = bus.subscribe(LIVE, "t1", "loc1");
        for i in 0..3 {
            bus.publish(Event::new(LIVE, "t1", "loc1", vec![i]));
        }
        for i in 0..3 {
            assert_eq!(watcher.next().await.unwrap().payload, [i]);
        }
        // The reader keeps retrying; it never closes the bus.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let late =
            tokio::time::timeout(std::time::Duration::from_millis(100), watcher.next()).await;
        assert!(late.is_err() || late.unwrap() != Err(Missed::Closed));
    }

    #[test]
    fn a_bad_url_is_refused_at_start() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert!(Bus::with_redis("http://not-redis", "p", &[LIVE]).is_err());
        });
    }
}
