//! `SearchAvailability` end to end on loopback: a real server (tenancy,
//! booking, protocols and fleet on SQLite in a temp directory), a studio
//! with 4 chambers and 1,000 bookings on one day (each for its own screened
//! client: the rules allow one cryo session a day), and concurrent clients
//! searching that day.
//! The baseline, measured in the same run on the same connections, is a
//! gRPC health check: the ratio is what a search costs over a bare call.
//!
//!     cargo run --release -p recovery-booking --example search_load

use std::sync::Arc;
use std::time::Instant;

use recovery_kit::testing::{Bearer, TestDb};
use recovery_kit::time::ManualClock;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[path = "common/mod.rs"]
mod common;
use common::{Monday, Stack, fill_day, measure, open_slots, setting};

/// Concurrent clients (`CLIENTS` in the environment overrides).
fn clients() -> usize {
    setting("CLIENTS", 8)
}

const CALLS_PER_CLIENT: usize = 200;

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

    // 1,000 bookings: fill the day from the first open slot on.
    let started = Instant::now();
    let booked = fill_day(&mut manager, &mut people, &day, 1000).await?;
    let open = open_slots(&mut manager, &day).await?.len();
    println!(
        "seeded {booked} bookings in {:.1} s; {open} open slots left that day",
        started.elapsed().as_secs_f64()
    );
    // What docs/BENCHMARKS.md quotes: 1,000 bookings, and of the day's
    // (960 - 12) / 3 = 316 slots (06:00-22:00, the first after a 10-minute
    // precool) the 250 filled on all four chambers gone: 66 left.
    anyhow::ensure!(booked == 1000, "seeded {booked} bookings, not 1,000");
    anyhow::ensure!(open == 316 - 1000 / 4, "{open} open slots left, not 66");

    let health = measure(clients(), CALLS_PER_CLIENT, {
        let channel = channel.clone();
        move || {
            let mut client = HealthClient::new(channel.clone());
            async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(|_| ())
            }
        }
    })
    .await?;
    let search = measure(clients(), CALLS_PER_CLIENT, {
        let channel = channel.clone();
        let key = demo.manager_key.clone();
        move || {
            let mut client =
                BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
            let request = day.clone();
            async move { client.search_availability(request).await.map(|_| ()) }
        }
    })
    .await?;
    println!(
        "{} concurrent clients x {CALLS_PER_CLIENT} calls, one day of 3-minute slots, 4 chambers, 1,000 bookings",
        clients()
    );
    println!(
        "health check (baseline): {:>8.0} calls/s, mean {:>7.1} µs, p99 {:>7.1} µs",
        health.rate, health.mean, health.p99
    );
    println!(
        "SearchAvailability:      {:>8.0} calls/s, mean {:>7.1} µs, p99 {:>7.1} µs  \
         ({:.3} of the baseline's calls/s)",
        search.rate,
        search.mean,
        search.p99,
        search.rate / health.rate
    );
    Ok(())
}
