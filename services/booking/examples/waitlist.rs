//! How fast a freed slot reaches the waitlist: a real server on loopback
//! (tenancy, booking, protocols and fleet in one process, SQLite in a temp
//! directory, the outbox relay running), one cryo chamber, and per scenario
//! five booked slots with a client waiting for each. Ahead of them in join
//! order wait `N` clients whom the rules now refuse (they declared a
//! pacemaker after joining), so each freed slot costs the matcher `N`
//! refused rule checks before the offer.
//!
//! Per cancellation it measures, from the moment `CancelBooking` is sent:
//! the cancelled booking arriving on `WatchSchedule` (the baseline: the
//! existing live path, in the same run) and the offer arriving on
//! `WatchOffers`. The ratio is what the waitlist adds to a cancellation
//! reaching a screen.
//!
//!     cargo run --release -p recovery-booking --example waitlist

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use recovery_kit::events::Bus;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::{ManualClock, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::protocols::v1 as protocols_pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use tokio::sync::mpsc;
use tonic::transport::Channel;

#[path = "common/mod.rs"]
mod common;
use common::{Backends, People, chambers_and_cryo, fleet_config, new_client, sign_waiver};

/// Cancellations per scenario.
const ROUNDS: usize = 5;
/// Refused clients ahead in the queue, per scenario.
const AHEAD: [usize; 3] = [0, 10, 100];
/// A pause per client made during setup, under the per-key rate limit.
const SETUP_PACE: Duration = Duration::from_millis(60);
/// The longest a change may take to arrive before the run fails.
const BOUND: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await;
    // Monday 2026-12-07, 05:00 in New York: the demo studio opens at 06:00.
    let clock = Arc::new(ManualClock::new("2026-12-07T10:00:00Z".parse()?));
    let bus = Bus::default();
    let backends = Backends::start(&db, clock, fleet_config(), || bus.clone()).await?;
    let demo = backends.platform.tenancy.seed_demo().await?;
    let services = backends.services();
    backends.bookings.spawn_workers(services.shutdown());
    let server = TestServer::start(services).await;
    let channel = server.channel().await;
    let key = demo.manager_key.as_str();
    let mut desk = BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
    let mut people = ProtocolServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
    let cryo = chambers_and_cryo(&mut desk, &demo.location_id, 1).await?;

    println!(
        "| refused ahead | cancel on WatchSchedule (baseline) | offer on WatchOffers | ratio |"
    );
    println!("|---|---|---|---|");
    for (day, ahead) in AHEAD.into_iter().enumerate() {
        // 10:00 in New York on Tuesday, Wednesday, Thursday: one day per
        // scenario (the rules allow one cryo session a client a day).
        let first: jiff::Timestamp = "2026-12-08T15:00:00Z".parse()?;
        let first = first + SignedDuration::from_hours(24 * i64::try_from(day)?);
        let slot = |i: usize| first + SignedDuration::from_mins(3 * i64::try_from(i).unwrap_or(0));
        let window = (to_proto(slot(0)), to_proto(slot(ROUNDS)));
        let join = |client: &str, from, to| pb::JoinWaitlistRequest {
            location_id: demo.location_id.clone(),
            treatment_id: cryo.clone(),
            client_id: client.to_owned(),
            start_time: Some(from),
            end_time: Some(to),
            ..Default::default()
        };
        let mut booked = Vec::new();
        for i in 0..ROUNDS {
            let client = ready_client(&mut people, &format!("Booked {day}-{i}")).await?;
            let booking = desk
                .create_booking(pb::CreateBookingRequest {
                    location_id: demo.location_id.clone(),
                    treatment_id: cryo.clone(),
                    client_id: client,
                    start_time: Some(to_proto(slot(i))),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .booking
                .unwrap_or_default();
            booked.push(booking.id);
        }
        for n in 0..ahead {
            let client = ready_client(&mut people, &format!("Refused {day}-{n}")).await?;
            desk.join_waitlist(join(&client, window.0, window.1))
                .await?;
            screen(&mut people, &client, true).await?;
            // Five calls a client: stay under the key's 100 calls a second.
            tokio::time::sleep(SETUP_PACE).await;
        }
        for i in 0..ROUNDS {
            let client = ready_client(&mut people, &format!("Waiting {day}-{i}")).await?;
            desk.join_waitlist(join(&client, to_proto(slot(i)), to_proto(slot(i + 1))))
                .await?;
        }
        let mut schedule = watch_schedule(&channel, key, &demo.location_id, &slot(0)).await?;
        let mut offers = watch_offers(&channel, key, &demo.location_id).await?;
        let (mut to_schedule, mut to_offer) = (Vec::new(), Vec::new());
        for id in &booked {
            let sent = Instant::now();
            desk.cancel_booking(pb::CancelBookingRequest {
                id: id.clone(),
                reason: String::new(),
            })
            .await?;
            let seen = arrival(&mut schedule, |(booking, _)| booking == id).await?;
            let offered = arrival(&mut offers, |_| true).await?;
            to_schedule.push(seen.1.duration_since(sent));
            to_offer.push(offered.1.duration_since(sent));
        }
        let (schedule_ms, offer_ms) = (median_ms(&mut to_schedule), median_ms(&mut to_offer));
        println!(
            "| {ahead} | {schedule_ms:.2} ms | {offer_ms:.2} ms | {:.1}x |",
            offer_ms / schedule_ms
        );
    }
    Ok(())
}

/// A client with a clean screening and a signed waiver.
async fn ready_client(people: &mut People, name: &str) -> anyhow::Result<String> {
    let id = new_client(people, name, "Waitlist").await?;
    screen(people, &id, false).await?;
    sign_waiver(people, &id, name).await?;
    Ok(id)
}

/// Records a screening; with `pacemaker`, cryo is contraindicated.
async fn screen(people: &mut People, client_id: &str, pacemaker: bool) -> anyhow::Result<()> {
    common::screen(
        people,
        client_id,
        &[(protocols_pb::Condition::Pacemaker, pacemaker)],
    )
    .await
}

/// Booking ids changed on the day's schedule, with when they arrived.
async fn watch_schedule(
    channel: &Channel,
    key: &str,
    location_id: &str,
    day: &jiff::Timestamp,
) -> anyhow::Result<mpsc::UnboundedReceiver<(String, Instant)>> {
    let mut client = BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
    let day = day
        .to_zoned_datetime(jiff::tz::TimeZone::get("America/New_York")?)
        .date();
    let stream = client
        .watch_schedule(pb::WatchScheduleRequest {
            location_id: location_id.to_owned(),
            day: day.to_string(),
        })
        .await?
        .into_inner();
    forward(stream, |message| match message.event {
        Some(pb::watch_schedule_response::Event::Changed(booking)) => Some(booking.id),
        _ => None,
    })
    .await
}

/// Offers made at the location, with when they arrived.
async fn watch_offers(
    channel: &Channel,
    key: &str,
    location_id: &str,
) -> anyhow::Result<mpsc::UnboundedReceiver<(String, Instant)>> {
    let mut client = BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
    let stream = client
        .watch_offers(pb::WatchOffersRequest {
            location_id: location_id.to_owned(),
        })
        .await?
        .into_inner();
    forward(stream, |message| match message.event {
        Some(pb::watch_offers_response::Event::Changed(offer))
            if offer.state == pb::OfferState::Open as i32 =>
        {
            Some(offer.id)
        }
        _ => None,
    })
    .await
}

/// Reads past the watch's first message (its snapshot), then sends on the
/// answer the id `pick` finds in each later message, with when it arrived.
async fn forward<M: Send + 'static>(
    mut stream: tonic::Streaming<M>,
    pick: impl Fn(M) -> Option<String> + Send + 'static,
) -> anyhow::Result<mpsc::UnboundedReceiver<(String, Instant)>> {
    stream.message().await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(message)) = stream.message().await {
            if let Some(id) = pick(message) {
                let _ = tx.send((id, Instant::now()));
            }
        }
    });
    Ok(rx)
}

/// The first item on `rx` that `want` takes, within [`BOUND`].
async fn arrival(
    rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    want: impl Fn(&(String, Instant)) -> bool,
) -> anyhow::Result<(String, Instant)> {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) if want(&item) => return Ok(item),
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!("the stream ended"),
            Err(elapsed) => anyhow::bail!("nothing within {BOUND:?}: {elapsed}"),
        }
    }
}

fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples
        .get(samples.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
