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

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::{Any, Row as _, Transaction};
use tokio::sync::Notify;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::auth::BoxFuture;
use crate::events::{Bus, Event};
use crate::{Db, Error};

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
    tx: &mut Transaction<'static, Any>,
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
            }),
        }
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
            .fetch_one(self.inner.db.reader())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Records the backlog and the age of the oldest waiting event
    /// (`recovery.outbox.backlog`, `recovery.outbox.lag`).
    async fn measure(&self) {
        let table = self.inner.table;
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n, MIN(create_time) AS oldest FROM {table}"
        ))
        .fetch_one(self.inner.db.reader())
        .await;
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

    /// Runs the relay until `shutdown` resolves.
    pub fn spawn_relay(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let outbox = self.clone();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            let mut backoff = Duration::ZERO;
            loop {
                let wait = if backoff.is_zero() { POLL } else { backoff };
                tokio::select! {
                    () = &mut shutdown => break,
                    () = outbox.inner.wake.notified(), if backoff.is_zero() => {}
                    () = tokio::time::sleep(wait) => {}
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
    /// or a consumer fails (then the rest waits for the next pass).
    pub async fn pass(&self) -> Result<Pass, Error> {
        let inner = &self.inner;
        let mut pass = Pass::default();
        loop {
            let rows = sqlx::query(&format!(
                "SELECT id, topic, tenant_id, scope, payload, traceparent FROM {} ORDER BY id LIMIT $1",
                inner.table
            ))
            .bind(BATCH)
            .fetch_all(inner.db.reader())
            .await?;
            if rows.is_empty() {
                return Ok(pass);
            }
            for row in rows {
                let id: String = row.try_get("id")?;
                let topic: String = row.try_get("topic")?;
                let Some(topic) = inner.topics.iter().copied().find(|t| *t == topic) else {
                    // Written by a newer build: leave it for that build.
                    tracing::warn!(table = inner.table, %topic, "outbox event of an unknown topic left alone");
                    return Ok(pass);
                };
                let event = Event {
                    id,
                    topic,
                    tenant_id: row.try_get("tenant_id")?,
                    scope: row.try_get("scope")?,
                    payload: row.try_get("payload")?,
                    traceparent: row.try_get("traceparent")?,
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
        let consumers: Vec<_> = self
            .inner
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|c| c.wants(event.topic))
            .cloned()
            .collect();
        for consumer in consumers {
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

fn next_backoff(current: Duration) -> Duration {
    if current.is_zero() {
        Duration::from_millis(200)
    } else {
        (current * 2).min(MAX_BACKOFF)
    }
}
