//! The front desk's paths against a bare gRPC call, in one run: a real
//! server on loopback (tenancy, booking, protocols and fleet in one process,
//! as `recoveryd` mounts them), the demo studio with 20 cryo chambers, 20
//! devices in the fleet and 1,000 screened clients, then, each path measured
//! right after a `grpc.health.v1.Health/Check` baseline on the same server
//! and connections:
//!
//! - `CreateBooking`, 16 callers on distinct slots, until the day holds
//!   1,000 bookings (on PostgreSQL also against pgbench's raw insert rate
//!   into a table with the same `btree_gist` exclusion constraint, 16
//!   clients, in the same run);
//! - `SearchAvailability` of that day (1,000 bookings), 32 callers, in the
//!   full view (every free chamber by id, about 200 KB) and the basic one
//!   (free chambers counted);
//! - `ListBookings` of the day, `ListClients`, `ListDevices`,
//!   `ListTimeline` (first pages), 32 callers.
//!
//! On PostgreSQL the tables are analyzed after the bookings, as autovacuum
//! keeps a live database's statistics. Callers share two HTTP/2 connections. SQLite in a temp directory always,
//! then PostgreSQL (a fresh database next to `TEST_DATABASE_URL`) when it is
//! set; `-- sqlite` or `-- postgres` runs one. `SECS` (default 3) is how
//! long each path and baseline runs, `CALLERS` (default 32) the callers of
//! the read paths, `DAYS` (default 1) the days `CreateBooking` fills (a
//! longer, steadier measure of it); `READS=0` stops after `CreateBooking`
//! (and pgbench), for pairs of runs of the booking path alone; `KEYS=1`
//! sends each booking with a request id, as a desk that retries safely
//! does (its answer is then stored with the booking).
//!
//!     TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!         cargo run --release -p recovery-booking --example front_desk

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use recovery_kit::testing::{Bearer, TestDb};
use recovery_kit::time::{ManualClock, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::fleet::v1 as fleet_pb;
use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use recovery_proto::protocols::v1 as protocols_pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[path = "common/mod.rs"]
mod common;
use common::{Stack, chambers_and_cryo, screened_client};

const CHAMBERS: usize = 20;
const BOOKINGS: usize = 1000;
const BOOKING_CALLERS: usize = 16;
/// The day measured: Monday 2026-12-07 in New York, 06:00-22:00.
const DAY: &str = "2026-12-07";
const DAY_START: &str = "2026-12-07T11:00:00Z";
const DAY_END: &str = "2026-12-08T03:00:00Z";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let only = std::env::args().nth(1);
    let mut rows = Vec::new();
    if only.as_deref() != Some("postgres") {
        rows.extend(run(TestDb::sqlite().await, "SQLite").await?);
    }
    if only.as_deref() != Some("sqlite") {
        match TestDb::postgres().await {
            Some(db) => rows.extend(run(db, "PostgreSQL").await?),
            None => println!("TEST_DATABASE_URL unset: PostgreSQL skipped"),
        }
    }
    println!();
    println!(
        "| engine | path | callers | calls/s | p50 | p99 | errors | baseline | baseline calls/s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!("{row}");
    }
    Ok(())
}

/// One line of the table.
struct Row {
    engine: &'static str,
    path: &'static str,
    run: Run,
    baseline: &'static str,
    baseline_rate: f64,
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let errors = if self.run.errors.is_empty() {
            "0".to_owned()
        } else {
            self.run
                .errors
                .iter()
                .map(|(what, n)| format!("{n} {what}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "| {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {errors} | {} | {:.0} | {:.3} |",
            self.engine,
            self.path,
            self.run.callers,
            self.run.rate(),
            ms(self.run.percentile(50)),
            ms(self.run.percentile(99)),
            self.baseline,
            self.baseline_rate,
            self.run.rate() / self.baseline_rate,
        )
    }
}

/// CPU seconds spent so far by this process and by every PostgreSQL
/// process on the machine, from `/proc` (Linux; `None` elsewhere).
struct Cpu {
    process: f64,
    postgres: f64,
}

impl Cpu {
    fn now() -> Option<Cpu> {
        // utime and stime, the 14th and 15th fields, after the command.
        fn seconds(stat: &str) -> Option<(String, f64)> {
            let (head, rest) = stat.rsplit_once(") ")?;
            let comm = head.split_once(" (")?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some((comm, ticks / 100.0))
        }
        let process = seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)?.1;
        let mut postgres = 0.0;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
                && let Some((comm, secs)) = seconds(&stat)
                && comm == "postgres"
            {
                postgres += secs;
            }
        }
        Some(Cpu { process, postgres })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[allow(clippy::too_many_lines)] // one straight-line scenario reads best in one place
async fn run(db: TestDb, engine: &'static str) -> anyhow::Result<Vec<Row>> {
    let span = Duration::from_secs(env_or("SECS", 3));
    let callers = usize::try_from(env_or("CALLERS", 32))?;
    // Monday 2026-12-07, 05:00 in New York: the demo studio opens at 06:00.
    let clock = Arc::new(ManualClock::new("2026-12-07T10:00:00Z".parse()?));
    let stack = Stack::start(&db, clock).await?;
    let key = stack.demo.manager_key.clone();
    let location = stack.demo.location_id.clone();
    // Two connections, as a desk's client pool would hold.
    let channels = vec![connect(&stack).await?, connect(&stack).await?];
    let channel = channels[0].clone();
    let mut manager = BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
    let mut fleet = FleetServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
    let seeding = Instant::now();
    for n in 1..=CHAMBERS {
        fleet
            .register_device(fleet_pb::RegisterDeviceRequest {
                device: Some(fleet_pb::Device {
                    location_id: location.clone(),
                    kind: fleet_pb::DeviceKind::CryoChamber as i32,
                    display_name: format!("Chamber {n}"),
                    serial_number: format!("BENCH-CH-{n}"),
                    spec: Some(fleet_pb::device::Spec::CryoChamber(
                        fleet_pb::CryoChamberSpec {
                            target_temperature_celsius: -110.0,
                            ready_threshold_celsius: -90.0,
                        },
                    )),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await?;
    }
    let cryo = chambers_and_cryo(&mut manager, &location, CHAMBERS).await?;
    let day = pb::SearchAvailabilityRequest {
        location_id: location.clone(),
        treatment_id: cryo.clone(),
        start_time: Some(to_proto(DAY_START.parse()?)),
        end_time: Some(to_proto(DAY_END.parse()?)),
        resource_id: String::new(),
        ..Default::default()
    };
    let starts: Vec<_> = manager
        .search_availability(day.clone())
        .await?
        .into_inner()
        .slots
        .into_iter()
        .filter_map(|slot| slot.start_time)
        .collect();
    anyhow::ensure!(!starts.is_empty(), "the empty day has no open slot");

    // 1,000 screened clients (the rules allow one cryo session a day each),
    // made by 16 desks at once.
    let clients = {
        let mut tasks = Vec::new();
        for desk in 0..BOOKING_CALLERS {
            let mut people = ProtocolServiceClient::with_interceptor(
                channels[desk % 2].clone(),
                Bearer::new(&key),
            );
            tasks.push(tokio::spawn(async move {
                let mut made = Vec::new();
                for n in (desk..BOOKINGS).step_by(BOOKING_CALLERS) {
                    made.push((n, screened_client(&mut people, n).await?));
                }
                anyhow::Ok(made)
            }));
        }
        let mut all = vec![String::new(); BOOKINGS];
        for task in tasks {
            for (n, id) in task.await?? {
                all[n] = id;
            }
        }
        Arc::new(all)
    };
    // One client with a season of training: the timeline listed.
    let mut people = ProtocolServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
    let athlete = screened_client(&mut people, BOOKINGS).await?;
    for d in 0..40i64 {
        let start = jiff::Timestamp::from_second(1_788_000_000 + d * 86_400)?;
        people
            .log_activity(protocols_pb::LogActivityRequest {
                activity: Some(protocols_pb::Activity {
                    client_id: athlete.clone(),
                    kind: protocols_pb::ActivityKind::Training as i32,
                    start_time: Some(to_proto(start)),
                    end_time: Some(to_proto(start + jiff::SignedDuration::from_hours(1))),
                    distance_meters: 10_000,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await?;
    }
    println!(
        "{engine}: seeded {CHAMBERS} chambers, {CHAMBERS} devices, {} clients in {:.1} s",
        BOOKINGS + 1,
        seeding.elapsed().as_secs_f64()
    );

    let mut rows = Vec::new();
    let health = |callers: usize| {
        drive(&channels, callers, span, |channel, _, _| {
            let mut client = HealthClient::new(channel);
            Some(async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(|_| ())
            })
        })
    };

    // CreateBooking: desk `d` books the slots d, d + 16, ... of the day in
    // rounds (each round one more chamber of every slot), so no two desks
    // ever ask for the same slot; then the same on each of the `DAYS - 1`
    // days after it, for a longer measure (the paths after it read the
    // first day).
    let days = i64::try_from(env_or("DAYS", 1).max(1))?;
    let jobs: Arc<Vec<Vec<(usize, prost_types::Timestamp)>>> = Arc::new(
        (0..BOOKING_CALLERS)
            .map(|desk| {
                (0..days)
                    .flat_map(|d| {
                        (0..BOOKINGS)
                            .filter(|n| (n % starts.len()) % BOOKING_CALLERS == desk)
                            .map(|n| {
                                let mut start = starts[n % starts.len()];
                                start.seconds += d * 86_400;
                                (n, start)
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect()
            })
            .collect(),
    );
    let keys = env_or("KEYS", 0) == 1;
    let baseline = health(BOOKING_CALLERS).await?;
    let cpu_before = Cpu::now();
    let booked = drive(&channels, BOOKING_CALLERS, Duration::MAX, {
        let (key, location, cryo) = (key.clone(), location.clone(), cryo.clone());
        let clients = Arc::clone(&clients);
        move |channel, desk, call| {
            let &(n, start) = jobs[desk].get(call)?;
            let mut client = BookingServiceClient::with_interceptor(channel, Bearer::new(&key));
            let request = pb::CreateBookingRequest {
                location_id: location.clone(),
                treatment_id: cryo.clone(),
                client_id: clients[n].clone(),
                start_time: Some(start),
                request_id: if keys {
                    format!("front-desk-{n}-{}", start.seconds)
                } else {
                    String::new()
                },
                ..Default::default()
            };
            Some(async move { client.create_booking(request).await.map(|_| ()) })
        }
    })
    .await?;
    let booked_rate = booked.rate();
    if let (Some(before), Some(after)) = (cpu_before, Cpu::now()) {
        // CPU time is steadier than a rate on a shared machine.
        let n = f64::from(u32::try_from(booked.latencies.len().max(1)).unwrap_or(u32::MAX));
        println!(
            "{engine}: CPU per booking: {:.2} ms in this process (server and load \
             generator), {:.2} ms in PostgreSQL's processes",
            (after.process - before.process) * 1e3 / n,
            (after.postgres - before.postgres) * 1e3 / n,
        );
    }
    rows.push(Row {
        engine,
        path: "CreateBooking (distinct slots)",
        run: booked,
        baseline: "health check",
        baseline_rate: baseline.rate(),
    });
    if engine == "PostgreSQL" {
        // A live database's tables carry statistics (autovacuum analyzes a
        // table soon after a tenth of it changed); this one was filled
        // seconds ago. Without them the planner takes the tenant's 1,001
        // clients for a handful and sorts them all for a page of 50.
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url()).await?;
        sqlx::query("ANALYZE").execute(&mut conn).await?;
        match pgbench(db.url(), BOOKING_CALLERS, span).await {
            Ok(tps) => rows.push(Row {
                engine,
                path: "CreateBooking (distinct slots)",
                run: Run::of_rate(booked_rate, BOOKING_CALLERS),
                baseline: "pgbench insert, same exclusion constraint",
                baseline_rate: tps,
            }),
            Err(e) => println!("pgbench baseline failed: {e:#}"),
        }
    }
    if env_or("READS", 1) == 0 {
        return Ok(rows);
    }
    let open = manager
        .search_availability(day.clone())
        .await?
        .into_inner()
        .slots
        .len();
    println!("{engine}: the day now has {open} open slots");

    let mut read = |path: &'static str, run: Run, baseline: Run| {
        rows.push(Row {
            engine,
            path,
            run,
            baseline: "health check",
            baseline_rate: baseline.rate(),
        });
    };
    let booking_calls = {
        let key = key.clone();
        move |channel: Channel| BookingServiceClient::with_interceptor(channel, Bearer::new(&key))
    };

    let raw = raw();
    if raw {
        println!("{engine}: read paths' answers counted, not decoded (RAW=1)");
    }
    // The full view, then the basic one: each slot's free chambers
    // counted, not named (what a day's grid shows).
    let basic = pb::SearchAvailabilityRequest {
        view: pb::SlotView::Basic.into(),
        ..day.clone()
    };
    for (path, request) in [
        ("SearchAvailability (one day)", day),
        ("SearchAvailability (one day, basic view)", basic),
    ] {
        let baseline = health(callers).await?;
        let search = drive(&channels, callers, span, {
            let (booking_calls, key) = (booking_calls.clone(), key.clone());
            move |channel: Channel, _, _| {
                let mut client = booking_calls(channel.clone());
                let (request, key) = (request.clone(), key.clone());
                Some(async move {
                    if raw {
                        let path = "/recovery.booking.v1.BookingService/SearchAvailability";
                        return raw_call(channel, &key, path, request).await;
                    }
                    client.search_availability(request).await.map(|_| ())
                })
            }
        })
        .await?;
        read(path, search, baseline);
    }

    let baseline = health(callers).await?;
    let list = drive(&channels, callers, span, {
        let (location, key) = (location.clone(), key.clone());
        move |channel: Channel, _, _| {
            let mut client = booking_calls(channel.clone());
            let request = pb::ListBookingsRequest {
                location_id: location.clone(),
                day: DAY.into(),
                ..Default::default()
            };
            let key = key.clone();
            Some(async move {
                if raw {
                    let path = "/recovery.booking.v1.BookingService/ListBookings";
                    return raw_call(channel, &key, path, request).await;
                }
                client.list_bookings(request).await.map(|_| ())
            })
        }
    })
    .await?;
    read("ListBookings (a day, first page)", list, baseline);

    let baseline = health(callers).await?;
    let list = drive(&channels, callers, span, {
        let key = key.clone();
        move |channel: Channel, _, _| {
            let mut client =
                ProtocolServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
            let (request, key) = (protocols_pb::ListClientsRequest::default(), key.clone());
            Some(async move {
                if raw {
                    let path = "/recovery.protocols.v1.ProtocolService/ListClients";
                    return raw_call(channel, &key, path, request).await;
                }
                client.list_clients(request).await.map(|_| ())
            })
        }
    })
    .await?;
    read("ListClients (first page)", list, baseline);

    let baseline = health(callers).await?;
    let list = drive(&channels, callers, span, {
        let (key, location) = (key.clone(), location.clone());
        move |channel: Channel, _, _| {
            let mut client =
                FleetServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
            let request = fleet_pb::ListDevicesRequest {
                location_id: location.clone(),
                ..Default::default()
            };
            let key = key.clone();
            Some(async move {
                if raw {
                    let path = "/recovery.fleet.v1.FleetService/ListDevices";
                    return raw_call(channel, &key, path, request).await;
                }
                client.list_devices(request).await.map(|_| ())
            })
        }
    })
    .await?;
    read("ListDevices (a location)", list, baseline);

    let baseline = health(callers).await?;
    let list = drive(&channels, callers, span, {
        let key = key.clone();
        move |channel: Channel, _, _| {
            let mut client =
                ProtocolServiceClient::with_interceptor(channel.clone(), Bearer::new(&key));
            let request = protocols_pb::ListTimelineRequest {
                client_id: athlete.clone(),
                ..Default::default()
            };
            let key = key.clone();
            Some(async move {
                if raw {
                    let path = "/recovery.protocols.v1.ProtocolService/ListTimeline";
                    return raw_call(channel, &key, path, request).await;
                }
                client.list_timeline(request).await.map(|_| ())
            })
        }
    })
    .await?;
    read("ListTimeline (a client, first page)", list, baseline);
    drop(stack);
    Ok(rows)
}

/// A connection to the stack's server. `WINDOWS=1`: HTTP/2 flow-control
/// windows of 1 MiB per stream and 8 MiB per connection instead of h2's
/// 64 KiB (a day's search answer is ~250 KB: at 64 KiB it waits for
/// window updates), as gRPC clients with BDP probing grow to.
async fn connect(stack: &Stack) -> anyhow::Result<Channel> {
    let endpoint = Channel::from_shared(format!("http://{}", stack.server.addr))?;
    let endpoint = if env_or("WINDOWS", 0) == 1 {
        endpoint
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(8 << 20)
    } else {
        endpoint
    };
    Ok(endpoint.connect().await?)
}

/// What one path did: every call's latency and the failures by code and
/// reason.
struct Run {
    callers: usize,
    wall: Duration,
    latencies: Vec<Duration>,
    errors: BTreeMap<String, usize>,
    /// Set for a row that only restates another row's rate.
    rate: Option<f64>,
}

impl Run {
    fn of_rate(rate: f64, callers: usize) -> Run {
        Run {
            callers,
            wall: Duration::ZERO,
            latencies: Vec::new(),
            errors: BTreeMap::new(),
            rate: Some(rate),
        }
    }

    /// Answered calls (successes and refusals) a second.
    fn rate(&self) -> f64 {
        if let Some(rate) = self.rate {
            return rate;
        }
        #[allow(clippy::cast_precision_loss)]
        let n = self.latencies.len() as f64;
        n / self.wall.as_secs_f64().max(1e-9)
    }

    fn percentile(&self, p: usize) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = (self.latencies.len() * p / 100).min(self.latencies.len() - 1);
        self.latencies[i]
    }
}

/// Runs `callers` loops over `channels` (caller `c` on channel `c % n`)
/// for `span` or until `make` has no call left for a caller; `make(channel,
/// caller, n)` is caller's `n`th call.
async fn drive<F, Fut>(
    channels: &[Channel],
    callers: usize,
    span: Duration,
    make: F,
) -> anyhow::Result<Run>
where
    F: Fn(Channel, usize, usize) -> Option<Fut> + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let make = Arc::new(make);
    let started = Instant::now();
    let deadline = started.checked_add(span);
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let make = Arc::clone(&make);
        let channel = channels[caller % channels.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            for n in 0.. {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let Some(call) = make(channel.clone(), caller, n) else {
                    break;
                };
                let t = Instant::now();
                let answer = call.await;
                latencies.push(t.elapsed());
                if let Err(status) = answer {
                    let reason = recovery_kit::testing::answers::reason(&status);
                    *errors
                        .entry(format!("{:?} {reason}", status.code()))
                        .or_default() += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut run = Run {
        callers,
        wall: Duration::ZERO,
        latencies: Vec::new(),
        errors: BTreeMap::new(),
        rate: None,
    };
    for task in tasks {
        let (latencies, errors) = task.await?;
        run.latencies.extend(latencies);
        for (what, n) in errors {
            *run.errors.entry(what).or_default() += n;
        }
    }
    run.wall = started.elapsed();
    run.latencies.sort_unstable();
    Ok(run)
}

/// pgbench's rate (transactions a second, without connection time) of
/// single-row inserts by `clients` into a table with the allocations'
/// exclusion constraint, none of them overlapping, for `span`.
async fn pgbench(url: &str, clients: usize, span: Duration) -> anyhow::Result<f64> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
    for statement in [
        "CREATE EXTENSION IF NOT EXISTS btree_gist",
        "DROP TABLE IF EXISTS bench_allocations",
        "CREATE TABLE bench_allocations (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, \
         resource_id TEXT NOT NULL, kind TEXT NOT NULL, owner_id TEXT NOT NULL, \
         start_us BIGINT NOT NULL, end_us BIGINT NOT NULL, until_us BIGINT NOT NULL, \
         expire_us BIGINT)",
        "CREATE INDEX ON bench_allocations (resource_id, start_us)",
        "CREATE INDEX ON bench_allocations (owner_id)",
        "ALTER TABLE bench_allocations ADD EXCLUDE USING gist (resource_id WITH =, \
         tstzrange(to_timestamp(start_us / 1000000.0), to_timestamp(until_us / 1000000.0), \
         '[)') WITH &&)",
        "DROP SEQUENCE IF EXISTS bench_allocations_n",
        "CREATE SEQUENCE bench_allocations_n",
    ] {
        sqlx::query(statement).execute(&mut conn).await?;
    }
    // Slot n of resource n % 20: 3 minutes each, never overlapping.
    let script = std::env::temp_dir().join(format!("front_desk_{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "INSERT INTO bench_allocations (id, tenant_id, resource_id, kind, owner_id, start_us, \
         end_us, until_us) SELECT 'a' || n, 't', 'r' || (n % 20), 'cryo_chamber', 'o' || n, \
         1788000000000000 + n * 180000000, 1788000000000000 + n * 180000000 + 180000000, \
         1788000000000000 + n * 180000000 + 180000000 FROM (SELECT nextval('bench_allocations_n') n) s;\n",
    )?;
    let (clients, secs, url_arg, file) = (
        clients.to_string(),
        span.as_secs().max(1).to_string(),
        url.to_owned(),
        script.clone(),
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("pgbench")
            .args(["-n", "-c", &clients, "-j", "2", "-T", &secs, "-f"])
            .arg(&file)
            .arg(&url_arg)
            .output()
    })
    .await?;
    let _ = std::fs::remove_file(&script);
    let output = output?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench: {}{}",
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench's output: {text}"))?;
    sqlx::query("DROP TABLE bench_allocations")
        .execute(&mut conn)
        .await?;
    Ok(tps)
}

/// `RAW=1`: answers counted, not decoded (see the module docs).
fn raw() -> bool {
    env_or("RAW", 0) == 1
}

/// Calls `path` with `request` as the bearer of `key`, and takes the
/// answer off the wire without decoding it.
async fn raw_call<Req>(
    channel: Channel,
    key: &str,
    path: &'static str,
    request: Req,
) -> Result<(), tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(
        channel,
        Bearer::new(key),
    ));
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(request),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        Counted::<Req>(std::marker::PhantomData),
    )
    .await
    .map(|_| ())
}

/// A codec that encodes requests as prost does and answers the length of
/// each message received, its bytes skipped.
struct Counted<Req>(std::marker::PhantomData<Req>);

impl<Req: prost::Message + Send + 'static> tonic::codec::Codec for Counted<Req> {
    type Encode = Req;
    type Decode = usize;
    type Encoder = tonic_prost::ProstEncoder<Req>;
    type Decoder = Skip;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        Skip
    }
}

struct Skip;

impl tonic::codec::Decoder for Skip {
    type Item = usize;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<usize>, tonic::Status> {
        use prost::bytes::Buf as _;
        let n = buf.remaining();
        buf.advance(n);
        Ok(Some(n))
    }
}
