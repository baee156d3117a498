//! Noisy neighbour: a quiet tenant's cheap call (`ListLocations`, one
//! location) alone, and beside another tenant running 64 concurrent
//! `SearchAvailability` loops over a day with 4 chambers and 200 bookings,
//! on one server (tenancy, booking, protocols and fleet in one process).
//! The quiet tenant's p99 alone is the baseline, measured in the same run;
//! the target is at most 5x it beside the noise.
//!
//! Two servers on the same database: one with the shipped limits (64 calls
//! in flight per tenant, 100 calls/s per key), and one where the noisy
//! tenant's key is not rate-limited (as if it spread its calls over many
//! keys): only the per-tenant cap on calls in flight stands between it and
//! everyone else.
//!
//!     cargo run --release -p recovery-booking --example noisy_neighbour
//!     TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!         cargo run --release -p recovery-booking --example noisy_neighbour -- postgres

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use recovery_booking::Bookings;
use recovery_kit::Role;
use recovery_kit::events::Bus;
use recovery_kit::limits::{Admission, Limits};
use recovery_kit::server::Services;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::{ManualClock, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_proto::tenancy::v1 as tenancy_pb;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use recovery_tenancy::testing::{Platform, Studio};
use tonic::transport::Channel;

#[path = "common/mod.rs"]
mod common;
use common::screened_client;

/// Concurrent searches of the noisy tenant.
const NOISE: usize = 64;
/// Calls the quiet tenant makes per measurement, after [`WARM_UP`].
const QUIET_CALLS: usize = 200;
const WARM_UP: usize = 20;
/// Bookings on the searched day.
const BOOKINGS: usize = 200;

#[tokio::main]
#[allow(clippy::too_many_lines)] // one straight-line scenario reads best in one place
async fn main() -> anyhow::Result<()> {
    let postgres = std::env::args().nth(1).as_deref() == Some("postgres");
    let db = if postgres {
        TestDb::postgres()
            .await
            .ok_or_else(|| anyhow::anyhow!("set TEST_DATABASE_URL"))?
    } else {
        TestDb::sqlite().await
    };
    // Monday 2026-12-07, 05:00 in New York.
    let clock = Arc::new(ManualClock::new("2026-12-07T10:00:00Z".parse()?));
    let platform = Platform::start(&db.db, clock.clone()).await;
    let protocols = recovery_protocols::Protocols::start(
        db.db.clone(),
        clock.clone(),
        Bus::default(),
        platform.directory(),
    )
    .await?;
    let fleet = recovery_fleet::Fleet::start(
        db.db.clone(),
        clock.clone(),
        Bus::default(),
        platform.directory(),
        recovery_fleet::Config {
            offline_after_secs: 600,
            history: 100,
            batch: 500,
        },
    )
    .await?;
    let peers = recovery_booking::Peers {
        clients: protocols.clone(),
        history: protocols.clone(),
        devices: fleet.clone(),
    };
    let bookings = Bookings::start(
        db.db.clone(),
        clock.clone(),
        Bus::default(),
        platform.directory(),
        peers,
    )
    .await?;
    let server = |limits: Limits| {
        let mut services =
            Services::with_admission(platform.tenancy.authenticator(), Admission::new(limits));
        platform.tenancy.mount(&mut services);
        bookings.mount(&mut services);
        protocols.mount(&mut services);
        fleet.mount(&mut services);
        TestServer::start(services)
    };
    let shipped = server(Limits::default()).await;
    let unmetered = server(Limits {
        key_rate: 1e9,
        key_burst: u32::MAX,
        ..Limits::default()
    })
    .await;
    let channel = unmetered.channel().await;
    let roles = [Role::Manager];
    let quiet = Studio::create(
        channel.clone(),
        &platform.operator,
        "Quiet",
        "America/New_York",
        &roles,
    )
    .await;
    let noisy = Studio::create(
        channel.clone(),
        &platform.operator,
        "Noisy",
        "America/New_York",
        &roles,
    )
    .await;

    let search = seed(&channel, &noisy).await?;
    println!(
        "{} engine; noisy tenant: 4 chambers, {BOOKINGS} bookings on the searched day",
        if postgres { "PostgreSQL" } else { "SQLite" }
    );
    println!(
        "| server | quiet p50 alone | p99 alone | p50 beside {NOISE} searches | p99 beside | p99 ratio | noisy searches answered / refused |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, server) in [
        ("shipped limits", &shipped),
        ("noisy key unmetered", &unmetered),
    ] {
        let channel = server.channel().await;
        let quiet_key = quiet.key(Role::Manager).to_owned();
        let alone = latencies(&channel, &quiet_key).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let (answered, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut searchers = Vec::new();
        for _ in 0..NOISE {
            let mut client = BookingServiceClient::with_interceptor(
                channel.clone(),
                Bearer::new(noisy.key(Role::Manager)),
            );
            let (stop, answered, refused, search) = (
                stop.clone(),
                answered.clone(),
                refused.clone(),
                search.clone(),
            );
            searchers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match client.search_availability(search.clone()).await {
                        Ok(_) => answered.fetch_add(1, Ordering::Relaxed),
                        Err(_) => refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        // Let the noise reach its stride.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (answered_before, refused_before) = (
            answered.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
        );
        let beside = latencies(&channel, &quiet_key).await?;
        let (answered_n, refused_n) = (
            answered.load(Ordering::Relaxed) - answered_before,
            refused.load(Ordering::Relaxed) - refused_before,
        );
        stop.store(true, Ordering::Relaxed);
        for task in searchers {
            task.await?;
        }
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.1}x | {answered_n} / {refused_n} |",
            ms(alone.p50),
            ms(alone.p99),
            ms(beside.p50),
            ms(beside.p99),
            beside.p99.as_secs_f64() / alone.p99.as_secs_f64(),
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Spread {
    p50: Duration,
    p99: Duration,
}

/// The quiet tenant's `ListLocations`, one call at a time: warm-up, then
/// [`QUIET_CALLS`] timed, one every 12 ms or so.
async fn latencies(channel: &Channel, key: &str) -> anyhow::Result<Spread> {
    let mut client = TenancyServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
    let mut times = Vec::with_capacity(QUIET_CALLS);
    for n in 0..WARM_UP + QUIET_CALLS {
        let started = Instant::now();
        let listed = client
            .list_locations(tenancy_pb::ListLocationsRequest::default())
            .await?
            .into_inner();
        anyhow::ensure!(
            listed.locations.len() == 1,
            "the quiet tenant has one location"
        );
        if n >= WARM_UP {
            times.push(started.elapsed());
        }
        // A studio's desk, not a loop: under its key's 100 calls a second.
        tokio::time::sleep(Duration::from_millis(11)).await;
    }
    times.sort();
    let at = |q: f64| {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let i = ((times.len() as f64) * q) as usize;
        times[i.min(times.len() - 1)]
    };
    Ok(Spread {
        p50: at(0.50),
        p99: at(0.99),
    })
}

/// The noisy tenant's studio: 4 chambers, cryo, [`BOOKINGS`] bookings on
/// Tuesday; returns the search of that day.
async fn seed(channel: &Channel, noisy: &Studio) -> anyhow::Result<pb::SearchAvailabilityRequest> {
    let key = noisy.key(Role::Manager);
    let mut manager = BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
    let mut people = ProtocolServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
    for n in 1..=4 {
        manager
            .create_resource(pb::CreateResourceRequest {
                resource: Some(pb::Resource {
                    location_id: noisy.location_id.clone(),
                    display_name: format!("Chamber {n}"),
                    kind: pb::ResourceKind::CryoChamber as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await?;
    }
    let cryo = manager
        .create_treatment(pb::CreateTreatmentRequest {
            treatment: Some(pb::Treatment {
                display_name: "Whole-body cryo".into(),
                modality: pb::Modality::WholeBodyCryotherapy as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .treatment
        .unwrap_or_default()
        .id;
    let day = pb::SearchAvailabilityRequest {
        location_id: noisy.location_id.clone(),
        treatment_id: cryo.clone(),
        start_time: Some(to_proto("2026-12-08T11:00:00Z".parse()?)),
        end_time: Some(to_proto("2026-12-09T03:00:00Z".parse()?)),
        resource_id: String::new(),
    };
    let mut booked = 0;
    while booked < BOOKINGS {
        let slots = manager
            .search_availability(day.clone())
            .await?
            .into_inner()
            .slots;
        let Some(slot) = slots.first() else { break };
        let free = slot.free.first().map_or(0, |f| f.resource_ids.len());
        for _ in 0..free.min(BOOKINGS - booked) {
            let client_id = screened_client(&mut people, booked).await?;
            manager
                .create_booking(pb::CreateBookingRequest {
                    location_id: noisy.location_id.clone(),
                    treatment_id: cryo.clone(),
                    client_id,
                    start_time: slot.start_time,
                    ..Default::default()
                })
                .await?;
            booked += 1;
        }
    }
    Ok(day)
}
