//! Noisy neighbour: a quiet tenant's cheap call (`ListLocations`, one
//! location) alone, and beside another tenant running 64 concurrent
//! `SearchAvailability` loops over a day with 4 chambers and 200 bookings,
//! on one server (tenancy, booking, protocols and fleet in one process).
//! The quiet tenant's p99 alone is the baseline, measured in the same run
//! on the same server just before the noise starts; the target is at most
//! 5x it beside the noise.
//!
//! Four servers on the same database: each tenant's share of the server
//! (`tenant_running`: calls of one tenant that run at once, the others
//! waiting in the tenant's own queue) either as large as the cap in flight
//! (64: no share, as before the share existed) or the default, and each
//! with the shipped rate limit (100 calls/s, a burst of 200 per key) or
//! with the noisy tenant's key unmetered (as if it spread its calls over
//! many keys): then only the per-tenant caps stand between it and everyone
//! else. The noisy loops do not back off when refused.
//!
//! Then what the share costs a tenant alone: one tenant's 32 concurrent
//! searches for a few seconds, searches answered a second, with no share
//! and with the default share (unmetered key, same run).
//!
//! The quiet desk and the noisy load run in this process, each on a
//! runtime (a thread) of its own, so that the server's runtime holds only
//! the server's work, as it would with callers on other machines; they
//! still share the machine's cores with the server.
//!
//!     cargo run --release -p recovery-booking --example noisy_neighbour
//!     TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!         cargo run --release -p recovery-booking --example noisy_neighbour -- postgres
//!
//! `TENANT_RUNNING=n` measures a share of `n` in place of the default.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use recovery_kit::Role;
use recovery_kit::events::Bus;
use recovery_kit::limits::{Admission, DEFAULT_TENANT_RUNNING, Limits};
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::ManualClock;
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_proto::tenancy::v1 as tenancy_pb;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use recovery_tenancy::testing::Studio;
use std::error::Error as _;
use tokio::runtime::Runtime;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

#[path = "common/mod.rs"]
mod common;
use common::{Backends, chambers_and_cryo, day_search, fill_day, fleet_config, open_slots};

/// Concurrent searches of the noisy tenant.
const NOISE: usize = 64;
/// Calls the quiet tenant makes per measurement, after [`WARM_UP`].
const QUIET_CALLS: usize = 200;
const WARM_UP: usize = 20;
/// Bookings on the searched day.
const BOOKINGS: usize = 200;
/// Chambers of the noisy tenant's location.
const CHAMBERS: usize = 4;
/// Concurrent searches of the tenant alone, how long they run per round,
/// and the rounds (alternating servers, so both see the same machine).
const ALONE: usize = 32;
const ALONE_FOR: Duration = Duration::from_secs(3);
const ROUNDS: usize = 3;

#[tokio::main]
#[allow(clippy::too_many_lines)] // one straight-line scenario reads best in one place
async fn main() -> anyhow::Result<()> {
    let postgres = std::env::args().nth(1).as_deref() == Some("postgres");
    let share = match std::env::var("TENANT_RUNNING") {
        Ok(n) => n.parse()?,
        Err(_) => DEFAULT_TENANT_RUNNING,
    };
    let db = if postgres {
        TestDb::postgres()
            .await
            .ok_or_else(|| anyhow::anyhow!("set TEST_DATABASE_URL"))?
    } else {
        TestDb::sqlite().await
    };
    // Monday 2026-12-07, 05:00 in New York.
    let clock = Arc::new(ManualClock::new("2026-12-07T10:00:00Z".parse()?));
    let backends = Backends::start(&db, clock, fleet_config(), Bus::default).await?;
    let server = |limits: Limits| TestServer::start(backends.services_with(Admission::new(limits)));
    let unmetered = |limits: Limits| Limits {
        key_rate: 1e9,
        key_burst: u32::MAX,
        ..limits
    };
    let before = Limits {
        tenant_running: Limits::default().tenant_in_flight,
        ..Limits::default()
    };
    let after = Limits {
        tenant_running: share,
        ..Limits::default()
    };
    let servers = [
        ("no share, shipped rate", server(before.clone()).await, true),
        (
            "no share, noisy key unmetered",
            server(unmetered(before)).await,
            false,
        ),
        ("share, shipped rate", server(after.clone()).await, true),
        (
            "share, noisy key unmetered",
            server(unmetered(after)).await,
            false,
        ),
    ];
    let channel = servers[1].1.channel().await;
    let roles = [Role::Manager];
    let quiet = Studio::create(
        channel.clone(),
        &backends.platform.operator,
        "Quiet",
        "America/New_York",
        &roles,
    )
    .await;
    let noisy = Studio::create(
        channel.clone(),
        &backends.platform.operator,
        "Noisy",
        "America/New_York",
        &roles,
    )
    .await;

    let (search, open) = seed(&channel, &noisy).await?;
    // The callers' runtimes: the server's holds only the server's work.
    let desk = runtime("quiet desk")?;
    let load = runtime("noisy load")?;
    let (quiet_key, noisy_key) = (
        quiet.key(Role::Manager).to_owned(),
        noisy.key(Role::Manager).to_owned(),
    );
    println!(
        "{} engine; noisy tenant: {CHAMBERS} chambers, {BOOKINGS} bookings on the searched day, {open} slots open; share = {share} calls running per tenant",
        if postgres { "PostgreSQL" } else { "SQLite" }
    );
    println!(
        "| server | quiet p50 alone | p99 alone | p50 beside {NOISE} searches | p99 beside | p99 ratio | noisy searches answered a second / refused (rate, busy) / dropped |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, server, metered) in &servers {
        let addr = format!("http://{}", server.addr);
        let alone = desk
            .spawn(latencies(addr.clone(), quiet_key.clone()))
            .await??;
        let searches = Noise::start(&load, &addr, &noisy_key, &search, open, NOISE).await?;
        // Let the noise reach its stride.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (counted, started) = (searches.counts(), Instant::now());
        let beside = desk
            .spawn(latencies(addr.clone(), quiet_key.clone()))
            .await??;
        let (counts, took) = (searches.stop().await?.since(counted), started.elapsed());
        anyhow::ensure!(counts.answered > 0, "{name}: no search was answered");
        anyhow::ensure!(
            (counts.rate_limited > 0) == *metered,
            "{name}: {} searches refused RATE_LIMITED",
            counts.rate_limited
        );
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.1}x | {:.0} / {}, {} / {} |",
            ms(alone.p50),
            ms(alone.p99),
            ms(beside.p50),
            ms(beside.p99),
            beside.p99.as_secs_f64() / alone.p99.as_secs_f64(),
            per_second(counts.answered, took),
            counts.rate_limited,
            counts.busy,
            counts.dropped,
        );
    }

    println!();
    println!(
        "| one tenant alone, {ALONE} callers, {ROUNDS} rounds of {} s | searches answered a second, by round | all rounds | refused busy | ratio |",
        ALONE_FOR.as_secs()
    );
    println!("|---|---|---|---|---|");
    let alone: Vec<_> = servers.iter().filter(|(_, _, metered)| !metered).collect();
    let mut rounds = vec![(Vec::new(), Counts::default(), Duration::ZERO); alone.len()];
    for _ in 0..ROUNDS {
        for ((_, server, _), (rates, total, time)) in alone.iter().zip(rounds.iter_mut()) {
            let addr = format!("http://{}", server.addr);
            let searches = Noise::start(&load, &addr, &noisy_key, &search, open, ALONE).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (counted, started) = (searches.counts(), Instant::now());
            tokio::time::sleep(ALONE_FOR).await;
            let (counts, took) = (searches.counts().since(counted), started.elapsed());
            searches.stop().await?;
            rates.push(per_second(counts.answered, took));
            total.answered += counts.answered;
            total.busy += counts.busy;
            *time += took;
        }
    }
    let mut baseline = None;
    for ((name, _, _), (rates, total, time)) in alone.iter().zip(&rounds) {
        let rate = per_second(total.answered, *time);
        let base = *baseline.get_or_insert(rate);
        let by_round: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "| {name} | {} | {rate:.0} | {} | {:.2} |",
            by_round.join(" / "),
            total.busy,
            rate / base
        );
    }
    Ok(())
}

/// A runtime of one thread for callers, shut down without waiting when
/// dropped (a runtime cannot be dropped inside another's task).
struct Side(Option<Runtime>);

impl std::ops::Deref for Side {
    type Target = Runtime;

    fn deref(&self) -> &Runtime {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken on drop only"))
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

fn runtime(name: &str) -> anyhow::Result<Side> {
    Ok(Side(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()?,
    )))
}

async fn connect(addr: String) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(addr)?.connect().await?)
}

#[allow(clippy::cast_precision_loss)]
fn per_second(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What the noisy loops were answered.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    answered: usize,
    rate_limited: usize,
    busy: usize,
    dropped: usize,
}

impl Counts {
    fn since(self, earlier: Counts) -> Counts {
        Counts {
            answered: self.answered.saturating_sub(earlier.answered),
            rate_limited: self.rate_limited.saturating_sub(earlier.rate_limited),
            busy: self.busy.saturating_sub(earlier.busy),
            dropped: self.dropped.saturating_sub(earlier.dropped),
        }
    }
}

/// Loops of one tenant's searches, each on its own connection's stream,
/// never backing off; an answer other than the expected day or a refusal
/// for its limits ends the run.
struct Noise {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    rate_limited: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    loops: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Noise {
    async fn start(
        on: &Runtime,
        addr: &str,
        key: &str,
        search: &pb::SearchAvailabilityRequest,
        open: usize,
        loops: usize,
    ) -> anyhow::Result<Noise> {
        let channel = on.spawn(connect(addr.to_owned())).await??;
        let mut noise = Noise {
            stop: Arc::new(AtomicBool::new(false)),
            answered: Arc::new(AtomicUsize::new(0)),
            rate_limited: Arc::new(AtomicUsize::new(0)),
            busy: Arc::new(AtomicUsize::new(0)),
            dropped: Arc::new(AtomicUsize::new(0)),
            loops: Vec::with_capacity(loops),
        };
        for _ in 0..loops {
            let mut client =
                BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
            let (stop, answered, rate_limited, busy, dropped, search) = (
                noise.stop.clone(),
                noise.answered.clone(),
                noise.rate_limited.clone(),
                noise.busy.clone(),
                noise.dropped.clone(),
                search.clone(),
            );
            noise.loops.push(on.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match client.search_availability(search.clone()).await {
                        Ok(found) => {
                            let slots = found.into_inner().slots.len();
                            anyhow::ensure!(slots == open, "{slots} slots, not {open}");
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(status) => {
                            let reason = status
                                .get_error_details()
                                .error_info()
                                .map(|info| info.reason.clone());
                            match (status.code(), reason.as_deref()) {
                                (tonic::Code::ResourceExhausted, Some("RATE_LIMITED")) => {
                                    rate_limited.fetch_add(1, Ordering::Relaxed)
                                }
                                (tonic::Code::ResourceExhausted, Some("TENANT_BUSY")) => {
                                    busy.fetch_add(1, Ordering::Relaxed)
                                }
                                // The server closed the connection (h2's
                                // guard against small DATA frames: see
                                // docs/BENCHMARKS.md); the channel
                                // reconnects, as a real client's would.
                                _ if status.source().is_some() => {
                                    dropped.fetch_add(1, Ordering::Relaxed)
                                }
                                _ => anyhow::bail!("a search failed: {status:?}"),
                            };
                        }
                    }
                }
                Ok(())
            }));
        }
        Ok(noise)
    }

    fn counts(&self) -> Counts {
        Counts {
            answered: self.answered.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    async fn stop(self) -> anyhow::Result<Counts> {
        self.stop.store(true, Ordering::Relaxed);
        let counts = self.counts();
        for task in self.loops {
            task.await??;
        }
        Ok(counts)
    }
}

struct Spread {
    p50: Duration,
    p99: Duration,
}

/// The quiet tenant's `ListLocations` on a connection of its own, one call
/// at a time: warm-up, then [`QUIET_CALLS`] timed, one every 12 ms or so.
async fn latencies(addr: String, key: String) -> anyhow::Result<Spread> {
    let channel = connect(addr).await?;
    let mut client = TenancyServiceClient::with_interceptor(channel, Bearer::new(&key));
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
    anyhow::ensure!(times.len() == QUIET_CALLS);
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

/// The noisy tenant's studio: [`CHAMBERS`] chambers, cryo, [`BOOKINGS`]
/// bookings on Tuesday; returns the search of that day and how many slots
/// it finds open.
async fn seed(
    channel: &Channel,
    noisy: &Studio,
) -> anyhow::Result<(pb::SearchAvailabilityRequest, usize)> {
    let key = noisy.key(Role::Manager);
    let mut manager = BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
    let mut people = ProtocolServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
    let cryo = chambers_and_cryo(&mut manager, &noisy.location_id, CHAMBERS).await?;
    let day = day_search(
        &noisy.location_id,
        &cryo,
        "2026-12-08T11:00:00Z",
        "2026-12-09T03:00:00Z",
    )?;
    // A chamber free at a slot, for every slot: what the bookings take.
    let free = |slots: &[pb::Slot]| -> usize {
        slots
            .iter()
            .map(|slot| slot.free.first().map_or(0, |f| f.resource_ids.len()))
            .sum()
    };
    let empty = open_slots(&mut manager, &day).await?;
    anyhow::ensure!(
        empty
            .iter()
            .all(|slot| slot.free.first().map_or(0, |f| f.resource_ids.len()) == CHAMBERS),
        "every slot of the empty day has its {CHAMBERS} chambers free"
    );
    let booked = fill_day(&mut manager, &mut people, &day, BOOKINGS).await?;
    anyhow::ensure!(booked == BOOKINGS, "only {booked} bookings fit the day");
    let slots = open_slots(&mut manager, &day).await?;
    let taken = free(&empty).checked_sub(free(&slots));
    anyhow::ensure!(
        taken == Some(BOOKINGS),
        "the day's {BOOKINGS} bookings take {taken:?} chamber slots"
    );
    anyhow::ensure!(!slots.is_empty(), "the searched day is full");
    Ok((day, slots.len()))
}
