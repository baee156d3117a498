//! Searches while a hub streams telemetry: does a burst of readings slow
//! `SearchAvailability`? A real server on loopback (tenancy, booking,
//! protocols and fleet in one process on SQLite in a temp directory, fleet's
//! outbox relay telling booking about its chambers as in `recoveryd`), 4 cryo
//! chambers registered in fleet (booking's resources through `SyncDevice`)
//! and `BOOKINGS` bookings on one Monday. Concurrent clients search that day
//! three times: quiet (the baseline), while a hub streams readings of the
//! four chambers as fast as fleet takes them, or at `RATE` readings a
//! second (a steady, cold temperature: nothing booking must hear), and
//! quiet again. The ratio is the latency
//! under the burst over the quiet runs', measured in the same run.
//!
//!     cargo run --release -p recovery-booking --example search_under_telemetry

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use recovery_kit::events::Bus;
use recovery_kit::server::Shutdown;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::ManualClock;
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::fleet::v1 as fleet_pb;
use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_proto::tenancy::v1 as tenancy_pb;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;

#[path = "common/mod.rs"]
mod common;
use common::{Backends, chamber_device, cryo, day_search, fill_day, measure, open_slots, setting};

/// Readings per hub stream.
const BATCH: usize = 500;

#[tokio::main]
#[allow(clippy::too_many_lines)] // one straight-line scenario reads best in one place
async fn main() -> anyhow::Result<()> {
    // Environment overrides: `CLIENTS`, `CALLS`, `BOOKINGS`, and `RATE`
    // (readings a second the hub sends at most; 0, the default: as fast as
    // fleet takes them).
    let (clients, calls, bookings_wanted, rate) = (
        setting("CLIENTS", 4),
        setting("CALLS", 200),
        setting("BOOKINGS", 300),
        setting("RATE", 0),
    );
    let db = TestDb::sqlite().await;
    // Monday 2026-12-07, 05:00 in New York: the demo studio opens at 06:00.
    let clock = Arc::new(ManualClock::new("2026-12-07T10:00:00Z".parse()?));
    let backends = Backends::start(
        &db,
        clock,
        recovery_fleet::Config {
            offline_after_secs: 24 * 3600,
            history: 1000,
            batch: 500,
        },
        Bus::default,
    )
    .await?;
    let demo = backends.platform.tenancy.seed_demo().await?;
    let (fleet, bookings) = (&backends.fleet, &backends.bookings);
    fleet.on_device_links(bookings.clone());
    let told = Arc::new(Told::default());
    fleet.outbox().add_consumer(told.clone());
    fleet.spawn_relay(Shutdown::never());
    let server = TestServer::start(backends.services()).await;
    let channel = server.channel().await;
    let key = demo.manager_key.clone();
    let mut manager = BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
    let mut machines = FleetServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));

    let mut chambers = Vec::new();
    for n in 1..=4 {
        let device = machines
            .register_device(fleet_pb::RegisterDeviceRequest {
                device: Some(chamber_device(
                    &demo.location_id,
                    &format!("Chamber {n}"),
                    &format!("BENCH-CH-{n}"),
                )),
                request_id: String::new(),
            })
            .await?
            .into_inner()
            .device
            .unwrap_or_default();
        chambers.push(device.id);
    }
    let hub_key = TenancyServiceClient::with_interceptor(channel.clone(), Bearer::new(&key))
        .create_api_key(tenancy_pb::CreateApiKeyRequest {
            role: tenancy_pb::Role::Device as i32,
            display_name: "hub".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .secret;
    let cryo = cryo(&mut manager).await?;
    // The relay is woken by each registration; wait until booking has all.
    for _ in 0..100 {
        let linked = manager
            .list_resources(pb::ListResourcesRequest {
                location_id: demo.location_id.clone(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .resources
            .iter()
            .filter(|r| !r.device_id.is_empty())
            .count();
        if linked == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let day = day_search(
        &demo.location_id,
        &cryo,
        "2026-12-07T11:00:00Z",
        "2026-12-08T03:00:00Z",
    )?;
    let mut people = ProtocolServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
    let booked = fill_day(&mut manager, &mut people, &day, bookings_wanted).await?;
    let open = open_slots(&mut manager, &day).await?.len();
    // The chambers report once, cold: booking hears it (one event each).
    send_readings(&channel, &hub_key, &chambers, 1).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let told_before = told.0.load(Ordering::Relaxed);

    let search = |label: &'static str| {
        let channel = channel.clone();
        let key = key.clone();
        let day = day.clone();
        async move {
            let common::Measured { rate, mean, .. } = measure(clients, calls, move || {
                let mut client =
                    BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
                let request = day.clone();
                async move { client.search_availability(request).await.map(|_| ()) }
            })
            .await?;
            println!("{label:<28} {rate:>7.0} searches/s, mean {mean:>8.1} µs");
            Ok::<_, anyhow::Error>(mean)
        }
    };
    println!(
        "{clients} clients x {calls} searches of one day, 4 fleet chambers, {booked} bookings, {open} open slots"
    );
    let quiet = search("quiet (baseline)").await?;

    let streaming = Arc::new(AtomicBool::new(true));
    let readings = Arc::new(AtomicU64::new(0));
    let hub = tokio::spawn({
        let (channel, hub_key, chambers) = (channel.clone(), hub_key.clone(), chambers.clone());
        let (streaming, readings) = (Arc::clone(&streaming), Arc::clone(&readings));
        async move {
            while streaming.load(Ordering::Relaxed) {
                let began = Instant::now();
                let sent = send_readings(&channel, &hub_key, &chambers, BATCH / 4).await?;
                readings.fetch_add(sent, Ordering::Relaxed);
                // At most `RATE` readings a second when set.
                if rate > 0 {
                    #[allow(clippy::cast_precision_loss)]
                    let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                    tokio::time::sleep(due.saturating_sub(began.elapsed())).await;
                }
            }
            Ok::<_, anyhow::Error>(())
        }
    });
    let started = Instant::now();
    let burst = search("while a hub streams").await?;
    streaming.store(false, Ordering::Relaxed);
    hub.await??;
    let streamed = readings.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let again = search("quiet again").await?;
    let told_after = told.0.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let per_sec = streamed as f64 / secs;
    println!(
        "the hub streamed {streamed} readings ({per_sec:.0}/s) during the burst run; \
         fleet told booking {told_before} changes before the burst and {} during it and after",
        told_after - told_before
    );
    let baseline = f64::midpoint(quiet, again);
    println!(
        "latency under the burst: {:.2}x the quiet runs' mean ({baseline:.1} µs)",
        burst / baseline
    );
    Ok(())
}

/// Counts what fleet tells booking (every device-link event).
#[derive(Default)]
struct Told(AtomicU64);

impl recovery_kit::outbox::Consumer for Told {
    fn name(&self) -> &'static str {
        "bench.count"
    }

    fn wants(&self, topic: &str) -> bool {
        topic == recovery_fleet::LINK_TOPIC
    }

    fn consume<'a>(
        &'a self,
        _event: &'a recovery_kit::events::Event,
    ) -> recovery_kit::auth::BoxFuture<'a, Result<(), recovery_kit::Error>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

/// One hub stream of `each` readings per chamber at a steady -105 °C;
/// answers how many readings fleet accepted.
async fn send_readings(
    channel: &tonic::transport::Channel,
    key: &str,
    chambers: &[String],
    each: usize,
) -> anyhow::Result<u64> {
    let readings: Vec<fleet_pb::ReportTelemetryRequest> = (0..each)
        .flat_map(|_| chambers.iter())
        .map(|id| fleet_pb::ReportTelemetryRequest {
            reading: Some(fleet_pb::TelemetryReading {
                device_id: id.clone(),
                temperature_celsius: Some(-105.0),
                ..Default::default()
            }),
        })
        .collect();
    let accepted = FleetServiceClient::with_interceptor(channel.clone(), Bearer::new(key))
        .report_telemetry(tokio_stream::iter(readings))
        .await?
        .into_inner()
        .accepted;
    Ok(u64::try_from(accepted).unwrap_or(0))
}
