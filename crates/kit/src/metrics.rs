//! The named instruments, exported over OTLP with the traces: the RPC
//! conventions' call durations, and the studio's own counts. Each is
//! recorded at one place (the server and client layers, booking's create
//! path, fleet's ingest, the outbox relay). Until
//! [`crate::telemetry::init`] installs an exporter, every instrument is a
//! no-op.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};

/// Bucket bounds in seconds, as the RPC conventions advise for
/// `rpc.*.call.duration`.
const SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

struct Instruments {
    server_calls: Histogram<f64>,
    client_calls: Histogram<f64>,
    bookings_created: Counter<u64>,
    bookings_refused: Counter<u64>,
    readings: Counter<u64>,
    outbox_backlog: Gauge<u64>,
    outbox_lag: Gauge<f64>,
    panics: Counter<u64>,
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

/// Called once the meter provider is installed.
pub(crate) fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether metrics are exported: work done only to measure (a count of
/// the outbox) is skipped otherwise.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn instruments() -> &'static Instruments {
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("recovery");
        Instruments {
            server_calls: meter
                .f64_histogram("rpc.server.call.duration")
                .with_unit("s")
                .with_description("Duration of RPCs served, to the response headers")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            client_calls: meter
                .f64_histogram("rpc.client.call.duration")
                .with_unit("s")
                .with_description("Duration of calls to other services, to the response headers")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            bookings_created: meter
                .u64_counter("recovery.bookings.created")
                .with_unit("{booking}")
                .with_description("Bookings made (a replayed request_id is not counted again)")
                .build(),
            bookings_refused: meter
                .u64_counter("recovery.bookings.refused")
                .with_unit("{booking}")
                .with_description("Bookings refused, by reason (recovery.reason)")
                .build(),
            readings: meter
                .u64_counter("recovery.fleet.readings.ingested")
                .with_unit("{reading}")
                .with_description("Device telemetry readings stored")
                .build(),
            panics: meter
                .u64_counter("recovery.rpc.panics")
                .with_unit("{panic}")
                .with_description(
                    "Handlers that panicked and were answered INTERNAL (each is a bug)",
                )
                .build(),
            outbox_backlog: meter
                .u64_gauge("recovery.outbox.backlog")
                .with_unit("{event}")
                .with_description("Events in an outbox not yet taken by every consumer")
                .build(),
            outbox_lag: meter
                .f64_gauge("recovery.outbox.lag")
                .with_unit("s")
                .with_description("Age of the oldest event waiting in an outbox (0 when empty)")
                .build(),
        }
    })
}

/// One call served: `rpc.server.call.duration`.
pub fn rpc_server_call(method: &str, code: &'static str, elapsed: Duration) {
    if !enabled() {
        return;
    }
    instruments().server_calls.record(
        elapsed.as_secs_f64(),
        &[
            KeyValue::new("rpc.system.name", "grpc"),
            KeyValue::new("rpc.method", method.to_owned()),
            KeyValue::new("rpc.response.status_code", code),
        ],
    );
}

/// One call to another service: `rpc.client.call.duration`.
pub fn rpc_client_call(method: &str, code: &'static str, server: &str, elapsed: Duration) {
    if !enabled() {
        return;
    }
    instruments().client_calls.record(
        elapsed.as_secs_f64(),
        &[
            KeyValue::new("rpc.system.name", "grpc"),
            KeyValue::new("rpc.method", method.to_owned()),
            KeyValue::new("rpc.response.status_code", code),
            KeyValue::new("server.address", server.to_owned()),
        ],
    );
}

/// A handler panicked (answered INTERNAL by the server's catch-panic
/// layer).
pub fn rpc_panicked() {
    instruments().panics.add(1, &[]);
}

/// A booking was made.
pub fn booking_created() {
    instruments().bookings_created.add(1, &[]);
}

/// A booking was refused for `reason` (an `ErrorInfo` reason such as
/// `SLOT_UNAVAILABLE` or `CONTRAINDICATED`).
pub fn booking_refused(reason: &str) {
    if !enabled() {
        return;
    }
    instruments()
        .bookings_refused
        .add(1, &[KeyValue::new("recovery.reason", reason.to_owned())]);
}

/// `count` telemetry readings were stored.
pub fn readings_ingested(count: u64) {
    instruments().readings.add(count, &[]);
}

/// The outbox `table` holds `backlog` events, the oldest waiting for
/// `lag`.
pub fn outbox(table: &'static str, backlog: u64, lag: Duration) {
    let attributes = [KeyValue::new("recovery.outbox", table)];
    let i = instruments();
    i.outbox_backlog.record(backlog, &attributes);
    i.outbox_lag.record(lag.as_secs_f64(), &attributes);
}
