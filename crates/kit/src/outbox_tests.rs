//! The outbox with Redis, on both engines: the relay appends rows to their
//! streams and deletes them once Redis took them; consumers read through
//! consumer groups. Needs `TEST_REDIS_URL` (skipped with a note outside
//! CI) and, for the outage, `redis-server` on the PATH.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use sqlx::Executor as _;

use crate::auth::BoxFuture;
use crate::events::streams::stream_key;
use crate::events::{Bus, Event};
use crate::outbox::{Consumer, Outbox, record};
use crate::server::Shutdown;
use crate::testing::TestDb;
use crate::{Engine, Error};

const TOPIC: &str = "test.thing";
const TOPICS: &[&str] = &[TOPIC];
const TABLE: &str = "test_outbox";
const GROUP: &str = "test.effects";
/// How long a test waits for the consumers to settle before it fails.
const SETTLE_BOUND: Duration = Duration::from_secs(20);

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

/// What consumers did, shared by every "replica": per event id, how many
/// times its effect happened, and the order effects happened in.
#[derive(Default)]
struct Effects {
    count: Mutex<BTreeMap<String, usize>>,
    order: Mutex<Vec<String>>,
}

impl Effects {
    fn apply(&self, id: &str) {
        *self.count.lock().unwrap().entry(id.to_owned()).or_default() += 1;
        self.order.lock().unwrap().push(id.to_owned());
    }
    fn counts(&self) -> BTreeMap<String, usize> {
        self.count.lock().unwrap().clone()
    }
    fn order(&self) -> Vec<String> {
        self.order.lock().unwrap().clone()
    }
}

/// A consumer whose effect is a count (not idempotent on its own: what it
/// counts twice, the outbox delivered twice in effect).
struct Counting(Arc<Effects>);

impl Consumer for Counting {
    fn name(&self) -> &'static str {
        GROUP
    }
    fn wants(&self, topic: &str) -> bool {
        topic == TOPIC
    }
    fn consume<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.0.apply(&event.id);
            Ok(())
        })
    }
}

async fn create_table(db: &crate::Db) {
    let blob = if db.engine() == Engine::Sqlite {
        "BLOB"
    } else {
        "BYTEA"
    };
    let mut tx = db.begin().await.unwrap();
    tx.execute(
        format!(
            "CREATE TABLE {TABLE} (id TEXT PRIMARY KEY, topic TEXT NOT NULL, \
             tenant_id TEXT NOT NULL, scope TEXT NOT NULL, payload {blob} NOT NULL, \
             create_time BIGINT NOT NULL, traceparent TEXT)"
        )
        .as_str(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Commits `n` events, one change each; the writes never touch Redis.
async fn commit_events(db: &crate::Db, n: u8) -> Vec<Event> {
    let mut events = Vec::new();
    for i in 0..n {
        let event = Event::new(TOPIC, "t1", "loc", vec![i]);
        let mut tx = db.begin().await.unwrap();
        record(&mut tx, TABLE, &event, 0).await.unwrap();
        tx.commit()
            .await
            .expect("a write commits whatever Redis does");
        events.push(event);
    }
    events
}

async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis")
}

/// Removes every key under `prefix`.
async fn forget(url: &str, prefix: &str) {
    let mut connection = connect(url).await;
    let keys: Vec<String> = connection.keys(format!("{prefix}:*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = connection.del(keys).await.unwrap();
    }
}

/// Waits until the group has read every entry of the stream and holds none
/// pending; fails after [`SETTLE_BOUND`].
async fn settled(url: &str, key: &str) {
    let mut connection = connect(url).await;
    let started = Instant::now();
    loop {
        let last: redis::streams::StreamRangeReply =
            connection.xrevrange_count(key, "+", "-", 1).await.unwrap();
        let groups: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
            connection.xinfo_groups(key).await;
        if let (Some(last), Ok(groups)) = (last.ids.first(), groups)
            && groups
                .groups
                .iter()
                .any(|g| g.name == GROUP && g.pending == 0 && g.last_delivered_id == last.id)
        {
            return;
        }
        assert!(
            started.elapsed() < SETTLE_BOUND,
            "the consumer group did not settle within {SETTLE_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn test_prefix() -> String {
    format!("recovery-test-{}", crate::ids::new_id())
}

/// Two replicas (two buses and two outboxes on one table, one group) and
/// every event appended twice, as a relay that died between its append and
/// its commit would: each event's effect happens once.
async fn with_redis_duplicated_events_take_effect_once_across_replicas(test: TestDb) {
    let Some(url) = redis_url() else {
        return;
    };
    let db = &test.db;
    create_table(db).await;
    let prefix = test_prefix();
    let effects = Arc::new(Effects::default());
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let bus = Bus::with_redis(&url, &prefix, &[]).unwrap();
        bus.spawn_reader(Shutdown::never());
        let outbox = Outbox::new(db.clone(), TABLE, TOPICS, bus);
        outbox.add_consumer(Arc::new(Counting(Arc::clone(&effects))));
        outbox.claim_after(Duration::from_millis(500));
        let relay = outbox.spawn_relay(std::future::pending());
        replicas.push((outbox, relay));
    }
    let events = commit_events(db, 20).await;
    for (outbox, _) in &replicas {
        outbox.wake();
    }
    let key = stream_key(&prefix, TOPIC);
    settled(&url, &key).await;
    // The same rows again: appended a second time, with the same event ids.
    let mut tx = db.begin().await.unwrap();
    for event in &events {
        record(&mut tx, TABLE, event, 0).await.unwrap();
    }
    tx.commit().await.unwrap();
    replicas[1].0.wake();
    let started = Instant::now();
    while replicas[0].0.backlog().await.unwrap() > 0 {
        assert!(started.elapsed() < SETTLE_BOUND, "the relay did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settled(&url, &key).await;

    let mut connection = connect(&url).await;
    let entries: usize = connection.xlen(&key).await.unwrap();
    if db.engine() == Engine::Postgres {
        // One relay at a time per table: each row was appended once.
        assert_eq!(entries, 40, "every event is in the stream twice");
    } else {
        // SQLite has no lock across relays (one process per file is the
        // shape): two relays in one process may append a row twice more.
        assert!(entries >= 40, "{entries} entries");
    }
    let expected: BTreeMap<String, usize> = events.iter().map(|e| (e.id.clone(), 1)).collect();
    assert_eq!(effects.counts(), expected, "each event took effect once");
    for (_, relay) in replicas {
        relay.abort();
    }
    forget(&url, &prefix).await;
}

/// A member of the group read five entries, finished the first (effect,
/// marker, `XACK`), was killed after the second's effect and marker but
/// before its `XACK`, and never started the other three: another member
/// claims the four once they stayed idle. The second entry is so delivered
/// twice, and each event takes effect once.
async fn with_redis_entries_a_killed_consumer_left_are_claimed(test: TestDb) {
    let Some(url) = redis_url() else {
        return;
    };
    let db = &test.db;
    create_table(db).await;
    let prefix = test_prefix();
    let bus = Bus::with_redis(&url, &prefix, &[]).unwrap();
    let outbox = Outbox::new(db.clone(), TABLE, TOPICS, bus);
    let effects = Arc::new(Effects::default());
    outbox.add_consumer(Arc::new(Counting(Arc::clone(&effects))));
    let idle = Duration::from_millis(300);
    outbox.claim_after(idle);

    let events = commit_events(db, 5).await;
    let key = stream_key(&prefix, TOPIC);
    let mut connection = connect(&url).await;
    let _: () = connection
        .xgroup_create_mkstream(&key, GROUP, "0")
        .await
        .unwrap();
    // The relay appends (no reader runs yet).
    let pass = outbox.pass().await.unwrap();
    assert_eq!(pass.delivered, 5);
    assert_eq!(
        outbox.backlog().await.unwrap(),
        0,
        "appended rows are pruned"
    );

    // The member that dies.
    let read: redis::streams::StreamReadReply = connection
        .xread_options(
            &[&key],
            &[">"],
            &redis::streams::StreamReadOptions::default()
                .group(GROUP, "dead-member")
                .count(5),
        )
        .await
        .unwrap();
    let entries = &read.keys[0].ids;
    assert_eq!(entries.len(), 5);
    for (n, (entry, event)) in entries.iter().zip(&events).take(2).enumerate() {
        effects.apply(&event.id);
        let marker = format!("{prefix}:consumed:{GROUP}:{}", event.id);
        let _: () = connection.set_ex(&marker, "done", 60).await.unwrap();
        if n == 0 {
            let _: i64 = connection.xack(&key, GROUP, &[&entry.id]).await.unwrap();
        }
    }
    let pending: redis::streams::StreamPendingReply =
        connection.xpending(&key, GROUP).await.unwrap();
    assert_eq!(pending.count(), 4, "four entries were left read, unacked");

    // Another process starts its reader: it claims them once idle.
    let started = Instant::now();
    let relay = outbox.spawn_relay(std::future::pending());
    settled(&url, &key).await;
    let waited = started.elapsed();
    let expected: BTreeMap<String, usize> = events.iter().map(|e| (e.id.clone(), 1)).collect();
    assert_eq!(effects.counts(), expected, "each event took effect once");
    let order: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(effects.order(), order, "the claimed ones in order, after");
    // The claim waits for the idle time, and not for much longer.
    assert!(
        waited >= idle && waited < Duration::from_secs(5),
        "claimed after {waited:?}"
    );
    relay.abort();
    forget(&url, &prefix).await;
}

/// A `redis-server` of this test's own on `port`, stopped when dropped.
struct RedisServer(std::process::Child);

impl RedisServer {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        Self(child)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Redis is not there: every write still commits and the outbox grows;
/// once Redis is up the relay drains it, in order, and the consumer takes
/// every event in the order the changes were made.
async fn with_redis_down_writes_succeed_and_the_backlog_drains_in_order(test: TestDb) {
    // The test's own Redis; TEST_REDIS_URL only says Redis tests run here.
    if redis_url().is_none() {
        return;
    }
    let db = &test.db;
    create_table(db).await;
    let port = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().port()
    };
    let url = format!("redis://127.0.0.1:{port}/0");
    let prefix = test_prefix();
    let bus = Bus::with_redis(&url, &prefix, &[]).unwrap();
    let outbox = Outbox::new(db.clone(), TABLE, TOPICS, bus);
    let effects = Arc::new(Effects::default());
    outbox.add_consumer(Arc::new(Counting(Arc::clone(&effects))));
    let relay = outbox.spawn_relay(std::future::pending());

    let mut events = commit_events(db, 5).await;
    let pass = outbox.pass().await.unwrap();
    assert!(pass.stalled && pass.delivered == 0, "{pass:?}");
    assert_eq!(outbox.backlog().await.unwrap(), 5);
    events.extend(commit_events(db, 5).await);
    outbox.wake();
    assert_eq!(outbox.backlog().await.unwrap(), 10, "the outbox grows");

    let _redis = RedisServer::start(port);
    let started = Instant::now();
    loop {
        if outbox.backlog().await.unwrap() == 0 && effects.order().len() == events.len() {
            break;
        }
        assert!(
            started.elapsed() < SETTLE_BOUND,
            "not drained within {SETTLE_BOUND:?} of Redis coming up: backlog {}, consumed {}",
            outbox.backlog().await.unwrap(),
            effects.order().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let mut connection = connect(&url).await;
    let stream: redis::streams::StreamRangeReply = connection
        .xrange_all(stream_key(&prefix, TOPIC))
        .await
        .unwrap();
    let appended: Vec<String> = stream
        .ids
        .iter()
        .map(|entry| entry.get::<String>("id").unwrap())
        .collect();
    assert_eq!(appended, ids, "appended in the order of the changes");
    assert_eq!(effects.order(), ids, "consumed in that order, once each");
    relay.abort();
}

crate::engine_tests!(
    with_redis_duplicated_events_take_effect_once_across_replicas,
    with_redis_entries_a_killed_consumer_left_are_claimed,
    with_redis_down_writes_succeed_and_the_backlog_drains_in_order,
);
