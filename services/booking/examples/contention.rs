//! Same-slot contention on PostgreSQL: a real server on loopback (tenancy,
//! booking, protocols and fleet in one process, release build) on a fresh
//! database next to `TEST_DATABASE_URL`, a studio with 20 cryo chambers and
//! screened clients, and desks booking at once through tonic:
//!
//! - 16 callers on one slot (16 free chambers needed: all 16 booked);
//! - 100 callers on one slot (20 chambers: exactly 20 booked, the rest
//!   refused `SLOT_UNAVAILABLE`);
//! - 16 callers working through 20 clients per slot over 20 slots (400
//!   bookings, all of which fit).
//!
//! Each run prints the booked count against the capacity, the refusals by
//! code and reason, and p50/p99/max latency per call; beside each, a probe
//! reads a treatment (`GetTreatment`, one pooled connection) every 5 ms:
//! what everyone else at the studio, or on the server, waits meanwhile.
//!
//!     TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!         cargo run --release -p recovery-booking --example contention

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use recovery_kit::events::Bus;
use recovery_kit::testing::answers::reason;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::{ManualClock, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use tokio::sync::Mutex;

#[path = "common/mod.rs"]
mod common;
use common::{Backends, Desk, chambers_and_cryo, fleet_config, screened_client, unlimited};

const CHAMBERS: usize = 20;
const SLOTS: usize = 20;

#[tokio::main]
#[allow(clippy::too_many_lines)] // one straight-line scenario reads best in one place
async fn main() -> anyhow::Result<()> {
    let Some(db) = TestDb::postgres().await else {
        anyhow::bail!("set TEST_DATABASE_URL to a PostgreSQL server");
    };
    // Monday 2026-12-07, 05:00 in New York: the demo studio opens at 06:00.
    let clock = Arc::new(ManualClock::new("2026-12-07T10:00:00Z".parse()?));
    let backends = Backends::start(&db, clock, fleet_config(), Bus::default).await?;
    let demo = backends.platform.tenancy.seed_demo().await?;
    let server = TestServer::start(backends.services_with(unlimited())).await;
    let channel = server.channel().await;
    let mut manager =
        BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&demo.manager_key));
    let cryo = chambers_and_cryo(&mut manager, &demo.location_id, CHAMBERS).await?;
    let mut people =
        ProtocolServiceClient::with_interceptor(channel.clone(), Bearer::new(&demo.manager_key));
    let started = Instant::now();
    let mut clients = Vec::with_capacity(CHAMBERS * SLOTS);
    for n in 0..CHAMBERS * SLOTS {
        clients.push(screened_client(&mut people, n).await?);
    }
    println!(
        "seeded {CHAMBERS} chambers and {} screened clients in {:.1} s",
        clients.len(),
        started.elapsed().as_secs_f64()
    );

    // One day per scenario: the rules allow one cryo session a day.
    let days = [
        ("2026-12-08T11:00:00Z", "2026-12-09T03:00:00Z"),
        ("2026-12-09T11:00:00Z", "2026-12-10T03:00:00Z"),
        ("2026-12-10T11:00:00Z", "2026-12-11T03:00:00Z"),
    ];
    let mut first_slots = Vec::new();
    for (from, to) in days {
        let slots = manager
            .search_availability(pb::SearchAvailabilityRequest {
                location_id: demo.location_id.clone(),
                treatment_id: cryo.clone(),
                start_time: Some(to_proto(from.parse()?)),
                end_time: Some(to_proto(to.parse()?)),
                resource_id: String::new(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .slots;
        anyhow::ensure!(slots.len() >= SLOTS, "only {} open slots", slots.len());
        first_slots.push(
            slots
                .into_iter()
                .take(SLOTS)
                .map(|s| s.start_time)
                .collect::<Vec<_>>(),
        );
    }
    let request = |client: &str, start: Option<prost_types::Timestamp>| pb::CreateBookingRequest {
        location_id: demo.location_id.clone(),
        treatment_id: cryo.clone(),
        client_id: client.to_owned(),
        start_time: start,
        ..Default::default()
    };
    let desk =
        || BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&demo.manager_key));

    let one_slot = |day: &[Option<prost_types::Timestamp>], callers: usize| {
        (0..callers)
            .map(|i| request(&clients[i], day[0]))
            .collect::<Vec<_>>()
    };
    let runs = [
        (
            "16 callers, one slot",
            16,
            one_slot(&first_slots[0], 16),
            16,
        ),
        (
            "100 callers, one slot",
            100,
            one_slot(&first_slots[1], 100),
            CHAMBERS,
        ),
        (
            "16 callers, 20 clients per slot over 20 slots",
            16,
            (0..SLOTS)
                .flat_map(|s| (0..CHAMBERS).map(move |c| (s, c)))
                .map(|(s, c)| request(&clients[s * CHAMBERS + c], first_slots[2][s]))
                .collect(),
            CHAMBERS * SLOTS,
        ),
    ];
    let probe = pb::GetTreatmentRequest { id: cryo.clone() };
    for (name, callers, requests, capacity) in runs {
        let calls = requests.len();
        let outcome = run(&desk, callers, requests, probe.clone()).await?;
        println!(
            "{name}: {} of {calls} calls booked (capacity {capacity}), refused {:?}; \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, wall {:.2} s",
            outcome.booked,
            outcome.refused,
            ms(outcome.percentile(50)),
            ms(outcome.percentile(99)),
            ms(outcome.percentile(100)),
            outcome.wall.as_secs_f64(),
        );
        println!(
            "    probe GetTreatment meanwhile: {} calls, {} failed, p99 {:.1} ms, max {:.1} ms",
            outcome.probe.len(),
            outcome.probe_failed,
            ms(percentile(&outcome.probe, 99)),
            ms(percentile(&outcome.probe, 100)),
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What one scenario gave.
struct Outcome {
    booked: usize,
    /// Refusals by `code/REASON`.
    refused: BTreeMap<String, usize>,
    latencies: Vec<Duration>,
    wall: Duration,
    /// The probe's latencies while the callers ran, and its failures.
    probe: Vec<Duration>,
    probe_failed: usize,
}

impl Outcome {
    fn percentile(&self, p: usize) -> Duration {
        percentile(&self.latencies, p)
    }
}

fn percentile(latencies: &[Duration], p: usize) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let i = (sorted.len() * p).div_ceil(100).max(1) - 1;
    sorted.get(i).copied().unwrap_or_default()
}

/// `callers` desks, all started at once, taking `requests` from one queue,
/// and the probe beside them until they are done.
async fn run(
    desk: &impl Fn() -> Desk,
    callers: usize,
    requests: Vec<pb::CreateBookingRequest>,
    probe: pb::GetTreatmentRequest,
) -> anyhow::Result<Outcome> {
    let queue = Arc::new(Mutex::new(requests));
    let gate = Arc::new(tokio::sync::Barrier::new(callers + 1));
    let done = Arc::new(AtomicBool::new(false));
    let prober = {
        let mut reader = desk();
        let gate = Arc::clone(&gate);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            gate.wait().await;
            let mut seen = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = reader.get_treatment(probe.clone()).await.is_ok();
                seen.push((t.elapsed(), ok));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let mut desk = desk();
        let queue = Arc::clone(&queue);
        let gate = Arc::clone(&gate);
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let mut seen = Vec::new();
            loop {
                let Some(request) = queue.lock().await.pop() else {
                    break;
                };
                let t = Instant::now();
                let answer = desk.create_booking(request).await;
                seen.push((t.elapsed(), answer.map(|_| ())));
            }
            seen
        }));
    }
    let mut outcome = Outcome {
        booked: 0,
        refused: BTreeMap::new(),
        latencies: Vec::new(),
        wall: Duration::ZERO,
        probe: Vec::new(),
        probe_failed: 0,
    };
    for task in tasks {
        for (latency, answer) in task.await? {
            outcome.latencies.push(latency);
            match answer {
                Ok(()) => outcome.booked += 1,
                Err(status) => {
                    *outcome
                        .refused
                        .entry(format!("{:?}/{}", status.code(), reason(&status)))
                        .or_default() += 1;
                }
            }
        }
    }
    outcome.wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    for (latency, ok) in prober.await? {
        outcome.probe.push(latency);
        outcome.probe_failed += usize::from(!ok);
    }
    Ok(outcome)
}
