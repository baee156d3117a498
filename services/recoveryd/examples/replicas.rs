//! Two `recoveryd` replicas on one PostgreSQL and one Redis: how long a
//! booking made on replica B takes to reach a `WatchSchedule` open on
//! replica A (through the Redis Stream of the topic), against a
//! `WatchSchedule` open on B itself (the in-process bus) as the baseline
//! in the same run.
//!
//! The replicas are the real binary (`target/<profile>/recoveryd`, built
//! first) on a fresh database next to `TEST_DATABASE_URL` and under a key
//! prefix of this run's own in `TEST_REDIS_URL`. A seeds the demo studio;
//! the example adds chambers and screened clients through B, then books
//! `BOOKINGS` (default 200) cryo sessions on B one after another, each for
//! another client, and prints p50, p99 and max of:
//!
//! - A's event after the call on B began (the issue's measure),
//! - B's own watcher's event after the call on B began (the baseline: the
//!   same booking, in process, no Redis hop),
//! - A's event after B's answer (what a tablet on A lags a desk on B).
//!
//! ```sh
//! cargo build --release -p recoveryd
//! TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//! TEST_REDIS_URL=redis://127.0.0.1:6379/15 \
//!     cargo run --release -p recoveryd --example replicas
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
#[path = "../../booking/examples/common/mod.rs"]
mod common;
use common::screened_client;
use recovery_kit::testing::{Bearer, Daemon, TestDb};
use recovery_proto::booking::v1 as bk;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use tokio::sync::mpsc;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const OPERATOR_KEY: &str = "rk_replicas-benchmark-operator-key-only";
/// Chambers at the location (the demo's two and more): bookings per slot.
const CHAMBERS: usize = 8;
/// How long one booking's event may take to arrive before the run fails.
const LOST_AFTER: Duration = Duration::from_secs(5);

type Desk = BookingServiceClient<InterceptedService<Channel, Bearer>>;

#[tokio::main]
#[allow(clippy::too_many_lines)] // one straight-line scenario reads best in one place
async fn main() -> anyhow::Result<()> {
    let bookings: usize = std::env::var("BOOKINGS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let redis = std::env::var("TEST_REDIS_URL").context("set TEST_REDIS_URL")?;
    let Some(db) = TestDb::postgres().await else {
        anyhow::bail!("set TEST_DATABASE_URL to a PostgreSQL server");
    };
    let bin = std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("recoveryd"))
        .context("no target directory")?;
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: cargo build (same profile) -p recoveryd first",
        bin.display()
    );
    let bin = bin.to_string_lossy().into_owned();
    let prefix = format!("recovery-bench-{}", std::process::id());
    let replica = |extra: &[&str]| {
        let mut args = vec![
            "--database-url",
            db.url(),
            "--redis-url",
            &redis,
            "--redis-prefix",
            &prefix,
            // The benchmark's own calls, not the limiter, set the pace.
            "--key-rate",
            "100000",
            "--key-burst",
            "100000",
        ];
        args.extend_from_slice(extra);
        Daemon::start(&bin, &args, &[("RECOVERY_BOOTSTRAP_KEY", OPERATOR_KEY)])
    };
    let a = replica(&["--demo"]);
    let b = replica(&[]);
    let mut said = Vec::new();
    let line = |said: &mut Vec<String>, start: &str| -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            said.extend(a.said());
            if let Some(rest) = said.iter().find_map(|l| l.strip_prefix(start)) {
                return Ok(rest.trim().to_owned());
            }
            anyhow::ensure!(Instant::now() < deadline, "A never printed {start:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let studio = line(&mut said, "demo studio: tenant ")?;
    let location = studio
        .split_whitespace()
        .nth(2)
        .context("location")?
        .to_owned();
    let cryo = line(&mut said, "demo cryo treatment ")?
        .split_whitespace()
        .next()
        .context("cryo")?
        .to_owned();
    let manager = line(&mut said, "demo manager key:")?;

    let channel_b = channel(&b.addr).await?;
    let mut desk: Desk =
        BookingServiceClient::with_interceptor(channel_b.clone(), Bearer::new(&manager));
    for n in 3..=CHAMBERS {
        desk.create_resource(bk::CreateResourceRequest {
            resource: Some(bk::Resource {
                location_id: location.clone(),
                display_name: format!("Chamber {n}"),
                kind: bk::ResourceKind::CryoChamber as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;
    }
    let mut people =
        ProtocolServiceClient::with_interceptor(channel_b.clone(), Bearer::new(&manager));
    let seeding = Instant::now();
    let mut clients = Vec::with_capacity(bookings);
    for n in 0..bookings {
        clients.push(screened_client(&mut people, n).await?);
    }
    eprintln!(
        "seeded {CHAMBERS} chambers and {bookings} screened clients in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    // The first day at the studio with enough slots a quarter hour apart.
    let zone = jiff::tz::TimeZone::get("America/New_York")?;
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(zone.clone())
        .date();
    let needed = bookings.div_ceil(CHAMBERS);
    let mut chosen = None;
    for ahead in 1..=7 {
        let day = today.checked_add(jiff::Span::new().days(ahead))?;
        let from = day.to_zoned_datetime(zone.clone())?.timestamp();
        let to = day.tomorrow()?.to_zoned_datetime(zone.clone())?.timestamp();
        let slots = desk
            .search_availability(bk::SearchAvailabilityRequest {
                location_id: location.clone(),
                treatment_id: cryo.clone(),
                start_time: Some(recovery_kit::time::to_proto(from)),
                end_time: Some(recovery_kit::time::to_proto(to)),
                ..Default::default()
            })
            .await?
            .into_inner()
            .slots;
        let mut starts: Vec<prost_types::Timestamp> = Vec::new();
        for slot in slots {
            let Some(start) = slot.start_time else {
                continue;
            };
            if starts
                .last()
                .is_none_or(|last| start.seconds >= last.seconds + 15 * 60)
            {
                starts.push(start);
            }
        }
        if starts.len() >= needed {
            chosen = Some((day, starts));
            break;
        }
    }
    let (day, starts) = chosen.context("no day in the next week has enough slots")?;

    // Watches on A (across replicas) and on B (the baseline), each after
    // its snapshot.
    let staff = manager.clone();
    let mut on_a = watch(channel(&a.addr).await?, &staff, &location, &day.to_string()).await?;
    let mut on_b = watch(channel_b.clone(), &staff, &location, &day.to_string()).await?;

    let mut across_after_answer = Vec::with_capacity(bookings);
    let mut across_after_start = Vec::with_capacity(bookings);
    let mut here_after_start = Vec::with_capacity(bookings);
    let mut early_a = HashMap::new();
    let mut early_b = HashMap::new();
    let run = Instant::now();
    for (n, client) in clients.iter().enumerate() {
        let start = starts[n / CHAMBERS];
        let began = Instant::now();
        let booking = desk
            .create_booking(bk::CreateBookingRequest {
                location_id: location.clone(),
                treatment_id: cryo.clone(),
                client_id: client.clone(),
                start_time: Some(start),
                ..Default::default()
            })
            .await
            .with_context(|| format!("booking {n}"))?
            .into_inner()
            .booking
            .context("a booking")?;
        let answered = Instant::now();
        let seen_a = arrival(&mut on_a, &mut early_a, &booking.id).await?;
        let seen_b = arrival(&mut on_b, &mut early_b, &booking.id).await?;
        across_after_answer.push(seen_a.saturating_duration_since(answered));
        across_after_start.push(seen_a.saturating_duration_since(began));
        here_after_start.push(seen_b.saturating_duration_since(began));
    }
    let took = run.elapsed();

    println!(
        "{bookings} bookings on B, one at a time, in {:.1} s; WatchSchedule on A and on B",
        took.as_secs_f64()
    );
    println!("| latency | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for (what, latencies) in [
        ("A's event after B's call began", &across_after_start),
        (
            "baseline: B's own event after B's call began",
            &here_after_start,
        ),
        ("A's event after B's answer", &across_after_answer),
    ] {
        println!(
            "| {what} | {} | {} | {} |",
            ms(percentile(latencies, 50)),
            ms(percentile(latencies, 99)),
            ms(percentile(latencies, 100)),
        );
    }
    let ratio = |p| {
        percentile(&across_after_start, p).as_secs_f64()
            / percentile(&here_after_start, p).as_secs_f64().max(1e-6)
    };
    println!(
        "A (across replicas) vs B (same replica), from the call's start: p50 {:.2}x, p99 {:.2}x",
        ratio(50),
        ratio(99)
    );
    println!(
        "target p99 under 100 ms (A after B's call began): {}",
        if percentile(&across_after_start, 99) < Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        }
    );
    drop((a, b));
    forget(&redis, &prefix).await;
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(latencies: &[Duration], p: usize) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let i = (sorted.len() * p).div_ceil(100).max(1) - 1;
    sorted.get(i).copied().unwrap_or_default()
}

async fn channel(addr: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?)
}

/// Opens `WatchSchedule` and forwards (booking id, arrival) of each change.
async fn watch(
    channel: Channel,
    key: &str,
    location_id: &str,
    day: &str,
) -> anyhow::Result<mpsc::UnboundedReceiver<(String, Instant)>> {
    let mut client = BookingServiceClient::with_interceptor(channel, Bearer::new(key));
    let mut stream = client
        .watch_schedule(bk::WatchScheduleRequest {
            location_id: location_id.to_owned(),
            day: day.to_owned(),
        })
        .await?
        .into_inner();
    stream.message().await?.context("a snapshot first")?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(message)) = stream.message().await {
            if let Some(bk::watch_schedule_response::Event::Changed(booking)) = message.event {
                let _ = tx.send((booking.id, Instant::now()));
            }
        }
    });
    Ok(rx)
}

/// When `id` arrived on `rx` (other ids that came first are kept in
/// `early`); an error after [`LOST_AFTER`].
async fn arrival(
    rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    early: &mut HashMap<String, Instant>,
    id: &str,
) -> anyhow::Result<Instant> {
    if let Some(at) = early.remove(id) {
        return Ok(at);
    }
    let deadline = tokio::time::Instant::now() + LOST_AFTER;
    loop {
        let (got, at) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .with_context(|| format!("booking {id} not seen within {LOST_AFTER:?}"))?
            .context("the watch ended")?;
        if got == id {
            return Ok(at);
        }
        early.insert(got, at);
    }
}

/// Deletes the run's keys (the prefix is its own).
async fn forget(redis: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(redis) else {
        return;
    };
    if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut connection)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut connection)
                .await;
        }
    }
}
