//! The transactional outbox: a service writes each event into its own
//! outbox table in the same transaction as the change it describes, and a
//! relay hands it on after commit — to the live views on the [`Bus`], and to
//! every consumer that must see it (another service's history, an erasure),
//! at least once and in order. A crash between the commit and the hand-off
//! loses nothing: the row is still there when the relay next runs.
//!
//! The table has the columns `id` (the event id, UUIDv7, so ids sort by
//! creation), `topic`, `tenant_id`, `scope`, `payload`, `create_time` and
//! `traceparent` (the producer's trace context, nullable): each delivery is
//! a span linked to the span that made the change.
//! A row is deleted once every consumer took it.
//!
//! Consumers are idempotent by event id: a consumer that failed is retried
//! with the same event (after a backoff), and the events behind it wait, so
//! each consumer sees one tenant's changes in the order they were made.
//!
//! With Redis (a bus made by [`Bus::with_redis`]) the relay appends each
//! row to the Redis Stream of its topic instead and deletes the row once
//! Redis took it; Redis down, the rows wait (the relay retries with
//! backoff) and go out in order when it is back. On PostgreSQL one relay at
//! a time appends a table's rows (a transaction-scoped advisory lock taken
//! with `pg_try_advisory_xact_lock`; a replica that does not get it leaves
//! the pass to the one that did), so replicas do not append one row twice
//! except when a relay dies between the append and its commit. Consumers
//! then read through a consumer group per consumer ([`groups`]), so
//! replicas split the work, entries a dead process left pending are
//! claimed, and an event id is decided once (a marker in Redis), whichever
//! entry carries it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::Row as _;

use crate::db::Tx;
use tokio::sync::Notify;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::auth::BoxFuture;
use crate::events::streams::Streams;
use crate::events::{Bus, Event};
use crate::{Db, Engine, Error};

mod groups;

/// Takes events of some topics: another service's side of a workflow.
pub trait Consumer: Send + Sync + 'static {
    /// A name for logs, e.g. `protocols.history`.
    fn name(&self) -> &'static str;
    /// Whether it takes events of `topic`.
    fn wants(&self, topic: &str) -> bool;
    /// Takes one event. It may see the same event again (after a failure or
    /// a restart): it must dedupe by `event.id` or by what the event names.
    fn consume<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), Error>>;
}

/// Writes `event` into the outbox `table` inside `tx`, the transaction of
/// the change it describes.
pub async fn record(
    tx: &mut Tx,
    table: &'static str,
    event: &Event,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO {table} (id, topic, tenant_id, scope, payload, create_time, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&event.id)
    .bind(event.topic)
    .bind(&event.tenant_id)
    .bind(&event.scope)
    .bind(event.payload.clone())
    .bind(now_micros)
    .bind(event.traceparent.as_deref())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The longest wait before a failed consumer is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the relay looks even when nobody woke it (rows left by a
/// crash, or written by another replica).
const POLL: Duration = Duration::from_secs(1);
/// Rows read at once.
const BATCH: i64 = 100;
/// The key space of the relays' advisory locks (PostgreSQL): one relay
/// per outbox table at a time across replicas. Its own two-key space, so
/// it never meets the services' locks.
const RELAY_LOCKS: i32 = 1_001;
/// How long an entry a consumer read stays with it before another process
/// may claim it (the consumer is taken for dead).
pub const CLAIM_IDLE: Duration = Duration::from_secs(30);

/// One service's outbox and its relay.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    table: &'static str,
    topics: &'static [&'static str],
    bus: Bus,
    consumers: Mutex<Vec<Arc<dyn Consumer>>>,
    wake: Notify,
    /// The newest event already shown to live views, so that a retry for a
    /// failed consumer does not show it twice.
    shown: Mutex<Option<String>>,
    /// Set by an operator (`--pause-outbox-relay`): events stay in the table.
    paused: AtomicBool,
    /// With Redis: how long an entry stays with a silent consumer before
    /// another claims it.
    claim_idle: Mutex<Duration>,
    /// With Redis: whether the last append failed (logged once an outage).
    unreachable: AtomicBool,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("table", &self.inner.table)
            .finish_non_exhaustive()
    }
}

/// What one pass of the relay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Events every consumer took (and removed from the outbox).
    pub delivered: usize,
    /// Whether a consumer failed and the rest waits.
    pub stalled: bool,
}

impl Outbox {
    /// The outbox in `table`, whose events have one of `topics`.
    pub fn new(db: Db, table: &'static str, topics: &'static [&'static str], bus: Bus) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                table,
                topics,
                bus,
                consumers: Mutex::new(Vec::new()),
                wake: Notify::new(),
                shown: Mutex::new(None),
                paused: AtomicBool::new(false),
                claim_idle: Mutex::new(CLAIM_IDLE),
                unreachable: AtomicBool::new(false),
            }),
        }
    }

    /// Keeps every event in the table until the process restarts without
    /// the pause: nothing is handed on (an operator's switch, e.g. while
    /// Redis moves; and how the crash test stops between commit and
    /// publish).
    pub fn pause(&self) {
        self.inner.paused.store(true, Ordering::Relaxed);
    }

    /// With Redis: entries a consumer read and did not acknowledge for
    /// `idle` are claimed by another process (default [`CLAIM_IDLE`]).
    /// Takes effect for relays spawned after.
    pub fn claim_after(&self, idle: Duration) {
        *self
            .inner
            .claim_idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = idle;
    }

    /// The table events are written to, for [`record`].
    pub fn table(&self) -> &'static str {
        self.inner.table
    }

    /// Adds a consumer; events from now on (and those still waiting) reach
    /// it.
    pub fn add_consumer(&self, consumer: Arc<dyn Consumer>) {
        self.inner
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(consumer);
    }

    /// Tells the relay that a transaction with events committed.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Events not yet taken by every consumer.
    pub async fn backlog(&self) -> Result<i64, Error> {
        let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {}", self.inner.table))
            .fetch_one(&mut *self.inner.db.read().await?)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Records the backlog and the age of the oldest waiting event
    /// (`recovery.outbox.backlog`, `recovery.outbox.lag`).
    async fn measure(&self) {
        let table = self.inner.table;
        let row = match self.inner.db.read().await {
            Ok(mut conn) => {
                sqlx::query(&format!(
                    "SELECT COUNT(*) AS n, MIN(create_time) AS oldest FROM {table}"
                ))
                .fetch_one(&mut *conn)
                .await
            }
            Err(error) => Err(error),
        };
        let (backlog, oldest): (i64, Option<i64>) = match row {
            Ok(row) => match (row.try_get("n"), row.try_get("oldest")) {
                (Ok(n), Ok(oldest)) => (n, oldest),
                _ => return,
            },
            Err(error) => {
                tracing::debug!(table, %error, "outbox not measured");
                return;
            }
        };
        let now = crate::time::to_micros(jiff::Timestamp::now());
        let lag = oldest.map_or(Duration::ZERO, |oldest| {
            Duration::from_micros(u64::try_from(now - oldest).unwrap_or(0))
        });
        crate::metrics::outbox(table, u64::try_from(backlog).unwrap_or(0), lag);
    }

    /// Runs the relay until `shutdown` resolves. With Redis it also runs a
    /// consumer group reader per consumer added before.
    pub fn spawn_relay(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let outbox = self.clone();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            // Ended with the relay (dropping the set aborts them).
            let mut readers = tokio::task::JoinSet::new();
            if let Some(streams) = outbox.inner.bus.streams() {
                let idle = *outbox
                    .inner
                    .claim_idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                for consumer in outbox.consumers() {
                    let topics: Vec<&'static str> = outbox
                        .inner
                        .topics
                        .iter()
                        .copied()
                        .filter(|topic| consumer.wants(topic))
                        .collect();
                    if !topics.is_empty() {
                        readers.spawn(
                            groups::Group::new(consumer, Arc::clone(streams), topics, idle).run(),
                        );
                    }
                }
            }
            let mut backoff = Duration::ZERO;
            loop {
                let wait = if backoff.is_zero() { POLL } else { backoff };
                tokio::select! {
                    () = &mut shutdown => break,
                    () = outbox.inner.wake.notified(), if backoff.is_zero() => {}
                    () = tokio::time::sleep(wait) => {}
                }
                if outbox.inner.paused.load(Ordering::Relaxed) {
                    continue;
                }
                let passed = outbox.pass().await;
                if crate::metrics::enabled() {
                    outbox.measure().await;
                }
                match passed {
                    Ok(pass) if !pass.stalled => backoff = Duration::ZERO,
                    Ok(_) => backoff = next_backoff(backoff),
                    Err(error) => {
                        tracing::warn!(table = outbox.inner.table, error = %error, "outbox relay failed");
                        backoff = next_backoff(backoff);
                    }
                }
            }
        })
    }

    /// Hands on every waiting event, oldest first, until the outbox is empty
    /// or a consumer fails (then the rest waits for the next pass). With
    /// Redis: appends them to their streams until the outbox is empty or
    /// Redis fails (`stalled`); the consumer groups take them from there.
    pub async fn pass(&self) -> Result<Pass, Error> {
        match self.inner.bus.streams() {
            Some(streams) => self.append_pass(streams).await,
            None => self.local_pass().await,
        }
    }

    /// The consumers added so far.
    fn consumers(&self) -> Vec<Arc<dyn Consumer>> {
        self.inner
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The oldest waiting rows, at most [`BATCH`].
    fn select(&self) -> String {
        format!(
            "SELECT id, topic, tenant_id, scope, payload, traceparent FROM {} ORDER BY id LIMIT $1",
            self.inner.table
        )
    }

    /// The event of an outbox row, or `None` for a topic this build does
    /// not know (written by a newer build: left for that build).
    fn event_of(&self, row: &sqlx::any::AnyRow) -> Result<Option<Event>, Error> {
        let topic: String = row.try_get("topic")?;
        let Some(topic) = self.inner.topics.iter().copied().find(|t| *t == topic) else {
            tracing::warn!(table = self.inner.table, %topic, "outbox event of an unknown topic left alone");
            return Ok(None);
        };
        Ok(Some(Event {
            id: row.try_get("id")?,
            topic,
            tenant_id: row.try_get("tenant_id")?,
            scope: row.try_get("scope")?,
            payload: row.try_get("payload")?,
            traceparent: row.try_get("traceparent")?,
        }))
    }

    /// One pass with Redis: rows to their streams, oldest first, each
    /// deleted only once Redis took it.
    async fn append_pass(&self, streams: &Streams) -> Result<Pass, Error> {
        let inner = &self.inner;
        let mut pass = Pass::default();
        loop {
            // PostgreSQL: one relay per table across replicas, holding the
            // lock (and its rows) until the deletes commit. SQLite has one
            // process and one writer connection, which must not wait on
            // Redis: its rows are read and deleted in two steps.
            let mut locked = match inner.db.engine() {
                Engine::Postgres => {
                    let mut tx = inner.db.begin().await?;
                    let got: i32 = sqlx::query_scalar(&format!(
                        "SELECT pg_try_advisory_xact_lock({RELAY_LOCKS}, hashtext($1))::int"
                    ))
                    .bind(inner.table)
                    .fetch_one(&mut *tx)
                    .await?;
                    if got == 0 {
                        // Another replica's relay is at it; it drains ours too.
                        return Ok(pass);
                    }
                    Some(tx)
                }
                Engine::Sqlite => None,
            };
            let select = self.select();
            let query = sqlx::query(&select).bind(BATCH);
            let rows = match locked.as_mut() {
                Some(tx) => query.fetch_all(&mut **tx).await?,
                None => query.fetch_all(&mut *inner.db.read().await?).await?,
            };
            let mut appended = Vec::with_capacity(rows.len());
            let mut stop = rows.is_empty();
            for row in &rows {
                let Some(event) = self.event_of(row)? else {
                    stop = true;
                    break;
                };
                let span = append_span(&event);
                match streams.append_now(&event).instrument(span).await {
                    Ok(()) => {
                        if inner.unreachable.swap(false, Ordering::Relaxed) {
                            tracing::info!(table = inner.table, "outbox relay reaches redis again");
                        }
                        inner.bus.show_here(event.clone());
                        appended.push(event.id);
                    }
                    Err(error) => {
                        if !inner.unreachable.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                table = inner.table,
                                error = %error,
                                "outbox relay cannot reach redis; events wait in the outbox"
                            );
                        }
                        pass.stalled = true;
                        stop = true;
                        break;
                    }
                }
            }
            let delete = format!("DELETE FROM {} WHERE id = $1", inner.table);
            let mut tx = match locked {
                Some(tx) => tx,
                None if appended.is_empty() => return Ok(pass),
                None => inner.db.begin().await?,
            };
            for id in &appended {
                sqlx::query(&delete).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            pass.delivered += appended.len();
            if stop {
                return Ok(pass);
            }
        }
    }

    /// One pass without Redis: every consumer in this process.
    async fn local_pass(&self) -> Result<Pass, Error> {
        let inner = &self.inner;
        let mut pass = Pass::default();
        loop {
            let rows = sqlx::query(&self.select())
                .bind(BATCH)
                .fetch_all(&mut *inner.db.read().await?)
                .await?;
            if rows.is_empty() {
                return Ok(pass);
            }
            for row in rows {
                let Some(event) = self.event_of(&row)? else {
                    return Ok(pass);
                };
                self.show(&event);
                let delivery = delivery_span(&event);
                if !self.hand_on(&event).instrument(delivery.clone()).await {
                    pass.stalled = true;
                    return Ok(pass);
                }
                async {
                    let mut tx = inner.db.begin().await?;
                    sqlx::query(&format!("DELETE FROM {} WHERE id = $1", inner.table))
                        .bind(&event.id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await
                }
                .instrument(delivery)
                .await?;
                pass.delivered += 1;
            }
        }
    }

    /// Publishes `event` to the live views once.
    fn show(&self, event: &Event) {
        let mut shown = self
            .inner
            .shown
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shown
            .as_deref()
            .is_some_and(|last| last >= event.id.as_str())
        {
            return;
        }
        *shown = Some(event.id.clone());
        drop(shown);
        self.inner.bus.publish(event.clone());
    }

    /// Gives `event` to every consumer that wants it; false if one failed.
    async fn hand_on(&self, event: &Event) -> bool {
        for consumer in self.consumers() {
            if !consumer.wants(event.topic) {
                continue;
            }
            if let Err(error) = consumer.consume(event).await {
                tracing::warn!(
                    consumer = consumer.name(),
                    event_id = %event.id,
                    topic = event.topic,
                    error = %error,
                    "consumer failed; retrying later"
                );
                return false;
            }
        }
        true
    }
}

/// The span of one delivery, by the messaging conventions (`process
/// <topic>`, kind consumer), a new trace linked to the producer's span:
/// the change's trace shows the event made, this one what became of it.
fn delivery_span(event: &Event) -> tracing::Span {
    if !crate::metrics::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "outbox.deliver",
        otel.name = %format_args!("process {}", event.topic),
        otel.kind = "consumer",
        messaging.system = "recovery.outbox",
        messaging.operation.type = "process",
        messaging.destination.name = event.topic,
        messaging.message.id = %event.id,
        recovery.tenant.id = %event.tenant_id,
    );
    // A root of its own: not a child of whatever the relay runs in.
    let _ = span.set_parent(opentelemetry::Context::new());
    if let Some(producer) = event
        .traceparent
        .as_deref()
        .and_then(crate::telemetry::span_context_of)
    {
        span.add_link(producer);
    }
    span
}

/// The span of one append to a stream (`send <topic>`, kind producer),
/// linked to the span that made the change.
fn append_span(event: &Event) -> tracing::Span {
    if !crate::metrics::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "outbox.append",
        otel.name = %format_args!("send {}", event.topic),
        otel.kind = "producer",
        messaging.system = "redis",
        messaging.operation.type = "send",
        messaging.destination.name = event.topic,
        messaging.message.id = %event.id,
        recovery.tenant.id = %event.tenant_id,
    );
    let _ = span.set_parent(opentelemetry::Context::new());
    if let Some(producer) = event
        .traceparent
        .as_deref()
        .and_then(crate::telemetry::span_context_of)
    {
        span.add_link(producer);
    }
    span
}

fn next_backoff(current: Duration) -> Duration {
    if current.is_zero() {
        Duration::from_millis(200)
    } else {
        (current * 2).min(MAX_BACKOFF)
    }
}
