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
use std::time::Instant;

use recovery_kit::testing::{Bearer, TestDb};
use recovery_kit::time::ManualClock;
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::protocols::v1 as protocols_pb;

#[path = "common/mod.rs"]
mod common;
use common::{
    Monday, Stack, fill_day, log_activity, measure, open_slots, screened_client, setting,
};

/// Concurrent clients (`CLIENTS` in the environment overrides).
fn clients() -> usize {
    setting("CLIENTS", 1)
}

const CALLS_PER_CLIENT: usize = 200;
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await;
    // Monday 2026-12-07, 05:00 in New York: the demo studio opens at 06:00.
    let clock = Arc::new(ManualClock::new("2026-12-07T10:00:00Z".parse()?));
    let stack = Stack::start(&db, clock.clone()).await?;
    let demo = &stack.demo;
    let Monday {
        channel,
        mut manager,
        mut people,
        day,
    } = stack.monday(4).await?;

    // Fill the day from the first open slot on.
    let started = Instant::now();
    let booked = fill_day(&mut manager, &mut people, &day, setting("BOOKINGS", 300)).await?;
    let runner = screened_client(&mut people, booked).await?;
    let run = log_activity(
        &mut people,
        &runner,
        protocols_pb::ActivityKind::Training,
        ("2026-12-07T12:00:00Z", "2026-12-07T15:00:00Z"),
    )
    .await?;
    let suggest = pb::SuggestSlotsRequest {
        client_id: runner,
        modality: pb::Modality::WholeBodyCryotherapy as i32,
        activity_id: run,
        location_id: demo.location_id.clone(),
        start_time: day.start_time,
        end_time: day.end_time,
        max_suggestions: 10,
        ..Default::default()
    };
    let open = open_slots(&mut manager, &day).await?.len();
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
            search.mean,
            suggested.mean,
            suggested.mean / search.mean
        );
        searches.push(search.mean);
        suggestions.push(suggested.mean);
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
