//! What the load examples share: the whole stack on one server (tenancy,
//! booking, protocols and fleet in one process, as `recoveryd` mounts
//! them), and a client the rules let book (screened, waiver signed), made
//! through protocols' API as a front desk would. Booking's tests and
//! recoveryd's replicas example start and seed with it too.

// Each example (and test) includes this file and uses part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use recovery_booking::Bookings;
use recovery_fleet::Fleet;
use recovery_kit::events::Bus;
use recovery_kit::limits::{Admission, Limits};
use recovery_kit::server::Services;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::{Clock, ManualClock, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::fleet::v1 as fleet_pb;
use recovery_proto::protocols::v1 as protocols_pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_protocols::Protocols;
use recovery_tenancy::testing::Platform;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A booking client with a key.
pub(crate) type Desk = BookingServiceClient<InterceptedService<Channel, Bearer>>;
/// A protocols client with a key.
pub(crate) type People = ProtocolServiceClient<InterceptedService<Channel, Bearer>>;

/// Client `n`: created, screened (nothing that rules out a session) and
/// with a signed waiver; its id.
pub(crate) async fn screened_client(people: &mut People, n: usize) -> anyhow::Result<String> {
    let name = format!("Client {n}");
    let id = new_client(people, &name, "Load").await?;
    screen(people, &id, &[(protocols_pb::Condition::Pregnancy, false)]).await?;
    sign_waiver(people, &id, &name).await?;
    Ok(id)
}

/// Creates a client of that name; its id.
pub(crate) async fn new_client(
    people: &mut People,
    given_name: &str,
    family_name: &str,
) -> anyhow::Result<String> {
    create_client(
        people,
        protocols_pb::Client {
            given_name: given_name.to_owned(),
            family_name: family_name.to_owned(),
            ..Default::default()
        },
    )
    .await
}

/// Creates `client`; its id.
pub(crate) async fn create_client(
    people: &mut People,
    client: protocols_pb::Client,
) -> anyhow::Result<String> {
    Ok(people
        .create_client(protocols_pb::CreateClientRequest {
            client: Some(client),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .client
        .unwrap_or_default()
        .id)
}

/// Records a screening of the 2026-01 questionnaire: each condition
/// asked, and whether it is present.
pub(crate) async fn screen(
    people: &mut People,
    client_id: &str,
    answers: &[(protocols_pb::Condition, bool)],
) -> anyhow::Result<()> {
    people
        .record_screening(protocols_pb::RecordScreeningRequest {
            screening: Some(protocols_pb::Screening {
                client_id: client_id.to_owned(),
                questionnaire_version: "2026-01".into(),
                answers: answers
                    .iter()
                    .map(|&(condition, present)| protocols_pb::ScreeningAnswer {
                        condition: condition as i32,
                        present,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;
    Ok(())
}

/// Signs waiver v1 for the client, as `signer_name`.
pub(crate) async fn sign_waiver(
    people: &mut People,
    client_id: &str,
    signer_name: &str,
) -> anyhow::Result<()> {
    people
        .sign_waiver(protocols_pb::SignWaiverRequest {
            waiver: Some(protocols_pb::Waiver {
                client_id: client_id.to_owned(),
                version: "v1".into(),
                signer_name: signer_name.to_owned(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;
    Ok(())
}

/// Logs a 30 km activity of `kind` for the client from `start` to `end`
/// (RFC 3339 instants); its id.
pub(crate) async fn log_activity(
    people: &mut People,
    client_id: &str,
    kind: protocols_pb::ActivityKind,
    (start, end): (&str, &str),
) -> anyhow::Result<String> {
    Ok(people
        .log_activity(protocols_pb::LogActivityRequest {
            activity: Some(protocols_pb::Activity {
                client_id: client_id.to_owned(),
                kind: kind as i32,
                start_time: Some(to_proto(start.parse()?)),
                end_time: Some(to_proto(end.parse()?)),
                distance_meters: 30_000,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .activity
        .unwrap_or_default()
        .id)
}

/// Tenancy, booking, protocols and fleet on one test server over `db`,
/// with the demo studio seeded (its location opens 06:00-22:00, New York),
/// keys unmetered (the examples measure the calls, not the limiter).
pub(crate) struct Stack {
    pub(crate) server: TestServer,
    pub(crate) bookings: Arc<Bookings>,
    pub(crate) demo: recovery_tenancy::Demo,
    pub(crate) operator: String,
}

/// Admission without the per-key rate and the tenant's cap on calls at
/// once: with them a measure would measure the limiter, not the calls.
pub(crate) fn unlimited() -> Admission {
    Admission::new(Limits {
        key_rate: 1e9,
        key_burst: 1_000_000_000,
        tenant_in_flight: 100_000,
        ..Limits::default()
    })
}

impl Stack {
    pub(crate) async fn start(db: &TestDb, clock: Arc<ManualClock>) -> anyhow::Result<Stack> {
        let backends = Backends::start(db, clock, fleet_config(), Bus::default).await?;
        let demo = backends.platform.tenancy.seed_demo().await?;
        let server = TestServer::start(backends.services_with(unlimited())).await;
        Ok(Stack {
            server,
            bookings: backends.bookings,
            demo,
            operator: backends.platform.operator,
        })
    }

    /// Makes `chambers` chambers and cryo at the demo location; the
    /// Monday they serve.
    pub(crate) async fn monday(&self, chambers: usize) -> anyhow::Result<Monday> {
        let channel = self.server.channel().await;
        let key = &self.demo.manager_key;
        let mut manager = BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
        let cryo = chambers_and_cryo(&mut manager, &self.demo.location_id, chambers).await?;
        let day = day_search(
            &self.demo.location_id,
            &cryo,
            "2026-12-07T11:00:00Z",
            "2026-12-08T03:00:00Z",
        )?;
        let people = ProtocolServiceClient::with_interceptor(channel.clone(), Bearer::new(key));
        Ok(Monday {
            channel,
            manager,
            people,
            day,
        })
    }
}

/// The demo studio's Monday 2026-12-07 (open 06:00-22:00 in New York)
/// made searchable: new chambers, a cryo treatment, the day's search, and
/// the manager's booking and protocols clients on one channel.
pub(crate) struct Monday {
    pub(crate) channel: Channel,
    pub(crate) manager: Desk,
    pub(crate) people: People,
    pub(crate) day: pb::SearchAvailabilityRequest,
}

/// Tenancy, protocols, fleet and booking started on one database (booking
/// asking protocols and fleet in process), not yet mounted on a server.
pub(crate) struct Backends {
    pub(crate) platform: Platform,
    pub(crate) protocols: Arc<Protocols>,
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) bookings: Arc<Bookings>,
}

impl Backends {
    /// Starts the four services on `db`; `bus` gives each the bus it
    /// publishes on (`Bus::default` for one apiece, or clones of one).
    pub(crate) async fn start(
        db: &TestDb,
        clock: Arc<dyn Clock>,
        fleet: recovery_fleet::Config,
        bus: impl Fn() -> Bus,
    ) -> anyhow::Result<Backends> {
        let platform = Platform::start(&db.db, clock.clone()).await;
        let protocols =
            Protocols::start(db.db.clone(), clock.clone(), bus(), platform.directory()).await?;
        let fleet = Fleet::start(
            db.db.clone(),
            clock.clone(),
            bus(),
            platform.directory(),
            fleet,
        )
        .await?;
        let peers = recovery_booking::Peers {
            clients: protocols.clone(),
            history: protocols.clone(),
            devices: fleet.clone(),
        };
        let bookings =
            Bookings::start(db.db.clone(), clock, bus(), platform.directory(), peers).await?;
        Ok(Backends {
            platform,
            protocols,
            fleet,
            bookings,
        })
    }

    /// The four services mounted, with the default limits.
    pub(crate) fn services(&self) -> Services {
        self.services_with(Admission::new(Limits::default()))
    }

    /// The four services mounted, admitting calls with `admission`.
    pub(crate) fn services_with(&self, admission: Admission) -> Services {
        let mut services =
            Services::with_admission(self.platform.tenancy.authenticator(), admission);
        self.platform.tenancy.mount(&mut services);
        self.bookings.mount(&mut services);
        self.protocols.mount(&mut services);
        self.fleet.mount(&mut services);
        services
    }
}

/// Fleet as the examples run it: offline after 10 minutes without a
/// report, 100 readings kept a device, batches of up to 500.
pub(crate) fn fleet_config() -> recovery_fleet::Config {
    recovery_fleet::Config {
        offline_after_secs: 600,
        history: 100,
        batch: 500,
    }
}

/// A cryo chamber to register in fleet at `location_id`: -110 °C its
/// target, ready at -90 °C or colder.
pub(crate) fn chamber_device(
    location_id: &str,
    display_name: &str,
    serial_number: &str,
) -> fleet_pb::Device {
    fleet_pb::Device {
        location_id: location_id.to_owned(),
        kind: fleet_pb::DeviceKind::CryoChamber as i32,
        display_name: display_name.to_owned(),
        serial_number: serial_number.to_owned(),
        spec: Some(fleet_pb::device::Spec::CryoChamber(
            fleet_pb::CryoChamberSpec {
                target_temperature_celsius: -110.0,
                ready_threshold_celsius: -90.0,
            },
        )),
        ..Default::default()
    }
}

/// Makes `n` cryo chambers at `location_id` and a whole-body cryo
/// treatment (its defaults: 3 minutes, one chamber); the treatment's id.
pub(crate) async fn chambers_and_cryo(
    manager: &mut Desk,
    location_id: &str,
    n: usize,
) -> anyhow::Result<String> {
    for k in 1..=n {
        manager
            .create_resource(pb::CreateResourceRequest {
                resource: Some(pb::Resource {
                    location_id: location_id.to_owned(),
                    display_name: format!("Chamber {k}"),
                    kind: pb::ResourceKind::CryoChamber as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await?;
    }
    cryo(manager).await
}

/// Makes a whole-body cryo treatment (its defaults: 3 minutes, one
/// chamber); its id.
pub(crate) async fn cryo(manager: &mut Desk) -> anyhow::Result<String> {
    Ok(manager
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
        .id)
}

/// The search of `treatment_id` at `location_id` from `start` to `end`
/// (RFC 3339 instants).
pub(crate) fn day_search(
    location_id: &str,
    treatment_id: &str,
    start: &str,
    end: &str,
) -> anyhow::Result<pb::SearchAvailabilityRequest> {
    Ok(pb::SearchAvailabilityRequest {
        location_id: location_id.to_owned(),
        treatment_id: treatment_id.to_owned(),
        start_time: Some(to_proto(start.parse()?)),
        end_time: Some(to_proto(end.parse()?)),
        resource_id: String::new(),
        ..Default::default()
    })
}

/// The open slots `day` finds.
pub(crate) async fn open_slots(
    manager: &mut Desk,
    day: &pb::SearchAvailabilityRequest,
) -> anyhow::Result<Vec<pb::Slot>> {
    Ok(manager
        .search_availability(day.clone())
        .await?
        .into_inner()
        .slots)
}

/// Books up to `target` screened clients (made with `people`) on `day`,
/// each on the first open slot, until the day is full; how many it booked.
pub(crate) async fn fill_day(
    manager: &mut Desk,
    people: &mut People,
    day: &pb::SearchAvailabilityRequest,
    target: usize,
) -> anyhow::Result<usize> {
    let mut booked = 0;
    while booked < target {
        let slots = open_slots(manager, day).await?;
        let Some(slot) = slots.first() else { break };
        let free = slot.free.first().map_or(0, |f| f.resource_ids.len());
        for _ in 0..free.min(target - booked) {
            let client_id = screened_client(people, booked).await?;
            manager
                .create_booking(pb::CreateBookingRequest {
                    location_id: day.location_id.clone(),
                    treatment_id: day.treatment_id.clone(),
                    client_id,
                    start_time: slot.start_time,
                    ..Default::default()
                })
                .await?;
            booked += 1;
        }
    }
    Ok(booked)
}

/// `name` from the environment as a number, else `default`.
pub(crate) fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What [`measure`] found: calls/s, and the mean and 99th percentile
/// latency in µs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    pub(crate) rate: f64,
    pub(crate) mean: f64,
    pub(crate) p99: f64,
}

/// Calls/s and latency of `clients` tasks each making `calls`.
pub(crate) async fn measure<F, Fut>(
    clients: usize,
    calls: usize,
    make: F,
) -> anyhow::Result<Measured>
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
            let mut took = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t = Instant::now();
                make().await?;
                took.push(t.elapsed());
            }
            Ok::<_, tonic::Status>(took)
        }));
    }
    let mut latencies = Vec::with_capacity(clients * calls);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let wall = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    #[allow(clippy::cast_precision_loss)]
    let n = latencies.len().max(1) as f64;
    let total: Duration = latencies.iter().sum();
    let p99 = latencies
        .get(latencies.len() * 99 / 100)
        .or(latencies.last())
        .copied()
        .unwrap_or_default();
    Ok(Measured {
        rate: n / wall,
        mean: total.as_secs_f64() * 1e6 / n,
        p99: p99.as_secs_f64() * 1e6,
    })
}
