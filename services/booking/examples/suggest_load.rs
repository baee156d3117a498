//! `SuggestSlots` against `SearchAvailability`, end to end on loopback, in
//! the same run: a real server (tenancy, booking, protocols and fleet on
//! SQLite in a temp directory), a studio with 4 chambers and `BOOKINGS`
//! (default 300) bookings on one day, and a runner whose long run ended
//! that morning. One suggestion call (one location, one day, after the run,
//! 10 suggestions) costs the day's search plus one batch call to the rules
//! and the ranking; the target is at most twice the search. Rounds
//! alternate so both see the same machine.
//!
//!     cargo run --release -p recovery-booking --example suggest_load

use std::sync::Arc;
use std::time::{Duration, Instant};

use recovery_kit::testing::{Bearer, TestDb};
use recovery_kit::time::{ManualClock, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::protocols::v1 as protocols_pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;

#[path = "common/mod.rs"]
mod common;
use common::{Stack, chambers_and_cryo, screened_client};

/// Concurrent clients (`CLIENTS` in the environment overrides).
fn clients() -> usize {
    env("CLIENTS", 1)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const CALLS_PER_CLIENT: usize = 200;
const ROUNDS: usize = 3;

#[tokio::main]
#[allow(clippy::too_many_lines)] // one straight-line scenario reads best in one place
async fn main() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await;
    // Monday 2026-12-07, 05:00 in New York: the demo studio opens at 06:00.
    let clock = Arc::new(ManualClock::new("2026-12-07T10:00:00Z".parse()?));
    let stack = Stack::start(&db, clock.clone()).await?;
    let (server, demo) = (&stack.server, &stack.demo);
    let channel = server.channel().await;
    let mut manager =
        BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&demo.manager_key));
    let cryo = chambers_and_cryo(&mut manager, &demo.location_id, 4).await?;
    let (day_start, day_end) = (
        to_proto("2026-12-07T11:00:00Z".parse()?),
        to_proto("2026-12-08T03:00:00Z".parse()?),
    );
    let day = pb::SearchAvailabilityRequest {
        location_id: demo.location_id.clone(),
        treatment_id: cryo.clone(),
        start_time: Some(day_start),
        end_time: Some(day_end),
        resource_id: String::new(),
    };

    let mut people =
        ProtocolServiceClient::with_interceptor(channel.clone(), Bearer::new(&demo.manager_key));

    // Fill the day from the first open slot on.
    let target = env("BOOKINGS", 300);
    let started = Instant::now();
    let mut booked = 0;
    while booked < target {
        let slots = manager
            .search_availability(day.clone())
            .await?
            .into_inner()
            .slots;
        let Some(slot) = slots.first() else { break };
        let free = slot.free.first().map_or(0, |f| f.resource_ids.len());
        for _ in 0..free {
            if booked == target {
                break;
            }
            let client_id = screened_client(&mut people, booked).await?;
            manager
                .create_booking(pb::CreateBookingRequest {
                    location_id: demo.location_id.clone(),
                    treatment_id: cryo.clone(),
                    client_id,
                    start_time: slot.start_time,
                    ..Default::default()
                })
                .await?;
            booked += 1;
        }
    }
    let runner = screened_client(&mut people, booked).await?;
    let run = people
        .log_activity(protocols_pb::LogActivityRequest {
            activity: Some(protocols_pb::Activity {
                client_id: runner.clone(),
                kind: protocols_pb::ActivityKind::Training as i32,
                start_time: Some(to_proto("2026-12-07T12:00:00Z".parse()?)),
                end_time: Some(to_proto("2026-12-07T15:00:00Z".parse()?)),
                distance_meters: 30_000,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .activity
        .unwrap_or_default()
        .id;
    let suggest = pb::SuggestSlotsRequest {
        client_id: runner,
        modality: pb::Modality::WholeBodyCryotherapy as i32,
        activity_id: run,
        location_id: demo.location_id.clone(),
        start_time: Some(day_start),
        end_time: Some(day_end),
        max_suggestions: 10,
        ..Default::default()
    };
    let open = manager
        .search_availability(day.clone())
        .await?
        .into_inner()
        .slots
        .len();
    let first = manager
        .suggest_slots(suggest.clone())
        .await?
        .into_inner()
        .suggestions;
    println!(
        "seeded {booked} bookings in {:.1} s; {open} open slots that day; first suggestion {:?} ({:?})",
        started.elapsed().as_secs_f64(),
        first.first().and_then(|s| s.start_time),
        first.first().map(pb::Suggestion::fit),
    );
    println!(
        "{} concurrent client(s) x {CALLS_PER_CLIENT} calls per round, {ROUNDS} rounds, one day of 3-minute slots, 4 chambers",
        clients()
    );
    let (mut searches, mut suggestions) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let search = measure(clients(), CALLS_PER_CLIENT, {
            let channel = channel.clone();
            let key = demo.manager_key.clone();
            let day = day.clone();
            move || {
                let mut client =
                    BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
                let request = day.clone();
                async move { client.search_availability(request).await.map(|_| ()) }
            }
        })
        .await?;
        let suggested = measure(clients(), CALLS_PER_CLIENT, {
            let channel = channel.clone();
            let key = demo.manager_key.clone();
            let suggest = suggest.clone();
            move || {
                let mut client =
                    BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
                let request = suggest.clone();
                async move { client.suggest_slots(request).await.map(|_| ()) }
            }
        })
        .await?;
        println!(
            "round {round}: SearchAvailability (baseline) mean {:>7.1} µs, SuggestSlots mean {:>7.1} µs  ({:.2}x)",
            search.1,
            suggested.1,
            suggested.1 / search.1
        );
        searches.push(search.1);
        suggestions.push(suggested.1);
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "all rounds: SearchAvailability {:.1} µs, SuggestSlots {:.1} µs: {:.2}x the search",
        mean(&searches),
        mean(&suggestions),
        mean(&suggestions) / mean(&searches)
    );
    Ok(())
}

/// Calls/s and mean latency in µs of `clients` tasks each making `calls`.
async fn measure<F, Fut>(clients: usize, calls: usize, make: F) -> anyhow::Result<(f64, f64)>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let make = Arc::new(make);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let make = Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            let mut total = Duration::ZERO;
            for _ in 0..calls {
                let t = Instant::now();
                make().await?;
                total += t.elapsed();
            }
            Ok::<_, tonic::Status>(total)
        }));
    }
    let mut latency = Duration::ZERO;
    for task in tasks {
        latency += task.await??;
    }
    let wall = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let n = (clients * calls) as f64;
    Ok((n / wall, latency.as_secs_f64() * 1e6 / n))
}
