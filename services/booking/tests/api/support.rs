//! The studio every test starts from: tenancy, booking and the real
//! protocols and fleet in one server on one test database, a location, keys
//! per role, a chamber and a cryo treatment; clients (real protocols
//! clients, screened, with a waiver) made by name on first use; helpers to
//! read answers.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use recovery_booking::{Bookings, Peers};
use recovery_fleet::Fleet;
use recovery_kit::Role;
use recovery_kit::events::Bus;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::{Clock as _, ManualClock, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::fleet::v1 as fleet_pb;
use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use recovery_proto::protocols::v1 as protocols_pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_proto::tenancy::v1 as tenancy_pb;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use recovery_protocols::Protocols;
use recovery_tenancy::testing as tenancy;
use tokio::sync::Mutex;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

pub(crate) use recovery_kit::testing::answers::{fields, reason};

use crate::common::{Backends, create_client, screen, sign_waiver};

pub(crate) type Client = BookingServiceClient<InterceptedService<Channel, Bearer>>;
pub(crate) type FleetClient = FleetServiceClient<InterceptedService<Channel, Bearer>>;
pub(crate) type ProtocolsClient = ProtocolServiceClient<InterceptedService<Channel, Bearer>>;

/// Tuesday 2026-12-01, 05:00 in New York.
pub(crate) const NOW: &str = "2026-12-01T10:00:00Z";
/// Wednesday 2026-12-02, 10:00 in New York.
pub(crate) const TEN_AM: &str = "2026-12-02T15:00:00Z";

pub(crate) struct Studio {
    pub(crate) db: TestDb,
    pub(crate) server: TestServer,
    pub(crate) bookings: Arc<Bookings>,
    pub(crate) protocols: Arc<Protocols>,
    pub(crate) fleet: Arc<Fleet>,
    /// Tenancy's locations, for a second booking service on the database.
    pub(crate) directory: Arc<dyn recovery_tenancy::Directory>,
    /// Tenancy's key check, for a second server (a replica).
    pub(crate) authenticator: Arc<dyn recovery_kit::auth::Authenticator>,
    pub(crate) tenant_id: String,
    pub(crate) hub: String,
    /// Protocols client ids by the names tests call them.
    people: Mutex<HashMap<String, String>>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) operator: String,
    pub(crate) location_id: String,
    pub(crate) manager: String,
    pub(crate) desk: String,
    pub(crate) staff: String,
    pub(crate) chamber_id: String,
    pub(crate) cryo_id: String,
}

pub(crate) fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

pub(crate) fn t(text: &str) -> Option<prost_types::Timestamp> {
    Some(to_proto(at(text)))
}

pub(crate) fn mins(m: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: m * 60,
        nanos: 0,
    })
}

pub(crate) async fn start(db: TestDb) -> Studio {
    let clock = Arc::new(ManualClock::new(at(NOW)));
    let bus = Bus::default();
    // A device is offline after a day without a report.
    let fleet_config = recovery_fleet::Config {
        offline_after_secs: 24 * 3600,
        history: 100,
        batch: 500,
    };
    let backends = Backends::start(&db, clock.clone(), fleet_config, || bus.clone())
        .await
        .unwrap();
    let bookings = &backends.bookings;
    backends.protocols.on_erasure(bookings.clone());
    backends.protocols.suggest_with(bookings.clone());
    backends.fleet.on_device_links(bookings.clone());
    let server = TestServer::start(backends.services()).await;
    let Backends {
        platform,
        protocols,
        fleet,
        bookings,
    } = backends;
    let tenant = tenancy::Studio::create(
        server.channel().await,
        &platform.operator,
        "Frost",
        "America/New_York",
        &[Role::Manager, Role::FrontDesk, Role::Staff, Role::Device],
    )
    .await;
    let mut studio = Studio {
        db,
        server,
        bookings,
        protocols,
        fleet,
        directory: platform.directory(),
        authenticator: platform.tenancy.authenticator(),
        tenant_id: tenant.tenant_id.clone(),
        hub: tenant.key(Role::Device).to_owned(),
        people: Mutex::new(HashMap::new()),
        clock,
        operator: platform.operator,
        location_id: tenant.location_id.clone(),
        manager: tenant.key(Role::Manager).to_owned(),
        desk: tenant.key(Role::FrontDesk).to_owned(),
        staff: tenant.key(Role::Staff).to_owned(),
        chamber_id: String::new(),
        cryo_id: String::new(),
    };
    studio.chamber_id = studio.chamber("Chamber 1").await;
    studio.cryo_id = studio
        .add_treatment(pb::Treatment {
            display_name: "Whole-body cryo".into(),
            modality: pb::Modality::WholeBodyCryotherapy as i32,
            policy: Some(pb::BookingPolicy {
                late_cancel_window: mins(120),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    // The new chamber's freed windows (for the waitlist) are handed on, so
    // tests start with an empty outbox.
    studio.bookings.outbox().pass().await.unwrap();
    studio
}

impl Studio {
    pub(crate) async fn client(&self, key: &str) -> Client {
        BookingServiceClient::with_interceptor(self.server.channel().await, Bearer::new(key))
    }

    /// A second tenant in the same server, "Rival" in New York, with a
    /// manager key.
    pub(crate) async fn rival(&self) -> tenancy::Studio {
        tenancy::Studio::create(
            self.server.channel().await,
            &self.operator,
            "Rival",
            "America/New_York",
            &[Role::Manager],
        )
        .await
    }

    /// A second booking service on the studio's database (as a replica
    /// is), asking the same protocols and fleet: its own bus, relay and
    /// kept calendars.
    pub(crate) async fn replica(&self) -> Arc<Bookings> {
        let peers = Peers {
            clients: self.protocols.clone(),
            history: self.protocols.clone(),
            devices: self.fleet.clone(),
        };
        Bookings::start(
            self.db.db.clone(),
            self.clock.clone(),
            Bus::default(),
            Arc::clone(&self.directory),
            peers,
        )
        .await
        .unwrap()
    }

    /// A cryo chamber `name` at the studio's location; its id.
    pub(crate) async fn chamber(&self, name: &str) -> String {
        self.add_resource(&self.location_id, name, pb::ResourceKind::CryoChamber)
            .await
    }

    /// Sets cryo's booking policy (the manager's `UpdateTreatment`); the
    /// treatment as updated.
    pub(crate) async fn set_cryo_policy(&self, policy: pb::BookingPolicy) -> pb::Treatment {
        self.client(&self.manager)
            .await
            .update_treatment(pb::UpdateTreatmentRequest {
                treatment: Some(pb::Treatment {
                    id: self.cryo_id.clone(),
                    policy: Some(policy),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["policy".into()],
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .treatment
            .unwrap()
    }

    /// A resource `name` of `kind` at `location_id`, made by the manager;
    /// its id.
    pub(crate) async fn add_resource(
        &self,
        location_id: &str,
        name: &str,
        kind: pb::ResourceKind,
    ) -> String {
        self.client(&self.manager)
            .await
            .create_resource(pb::CreateResourceRequest {
                resource: Some(pb::Resource {
                    location_id: location_id.into(),
                    display_name: name.into(),
                    kind: kind as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .resource
            .unwrap()
            .id
    }

    /// `treatment`, made by the manager; its id.
    pub(crate) async fn add_treatment(&self, treatment: pb::Treatment) -> String {
        self.client(&self.manager)
            .await
            .create_treatment(pb::CreateTreatmentRequest {
                treatment: Some(treatment),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .treatment
            .unwrap()
            .id
    }

    pub(crate) async fn fleet_client(&self, key: &str) -> FleetClient {
        FleetServiceClient::with_interceptor(self.server.channel().await, Bearer::new(key))
    }

    pub(crate) async fn protocols_client(&self) -> ProtocolsClient {
        ProtocolServiceClient::with_interceptor(
            self.server.channel().await,
            Bearer::new(&self.manager),
        )
    }

    /// The protocols client called `name`: made on first use, screened
    /// with nothing to declare and with a signed waiver, so the rules let
    /// them book.
    pub(crate) async fn person(&self, name: &str) -> String {
        let mut people = self.people.lock().await;
        if let Some(id) = people.get(name) {
            return id.clone();
        }
        let id = self.new_client(name).await;
        self.screen(&id, &[]).await;
        self.sign_waiver(&id).await;
        people.insert(name.to_owned(), id.clone());
        id
    }

    /// A new protocols client, neither screened nor with a waiver.
    pub(crate) async fn new_client(&self, name: &str) -> String {
        let client = protocols_pb::Client {
            given_name: name.into(),
            family_name: "Tester".into(),
            date_of_birth: "1990-05-01".into(),
            ..Default::default()
        };
        create_client(&mut self.protocols_client().await, client)
            .await
            .unwrap()
    }

    /// Records a screening where exactly `present` conditions are present.
    pub(crate) async fn screen(&self, client_id: &str, present: &[protocols_pb::Condition]) {
        screen(
            &mut self.protocols_client().await,
            client_id,
            &answers(present),
        )
        .await
        .unwrap();
    }

    pub(crate) async fn sign_waiver(&self, client_id: &str) {
        sign_waiver(&mut self.protocols_client().await, client_id, "The Client")
            .await
            .unwrap();
    }

    /// A cryo booking request for the client called `name`.
    pub(crate) async fn booking(&self, name: &str, start: &str) -> pb::CreateBookingRequest {
        pb::CreateBookingRequest {
            location_id: self.location_id.clone(),
            treatment_id: self.cryo_id.clone(),
            client_id: self.person(name).await,
            start_time: t(start),
            ..Default::default()
        }
    }

    /// The schedule of `location_id` on the local `day`, watched with
    /// `key`.
    pub(crate) async fn watch(
        &self,
        key: &str,
        location_id: &str,
        day: &str,
    ) -> Streaming<pb::WatchScheduleResponse> {
        self.client(key)
            .await
            .watch_schedule(pb::WatchScheduleRequest {
                location_id: location_id.into(),
                day: day.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// A cryo hold request for `client_id` at `start`, for the default
    /// time.
    pub(crate) fn hold_request(&self, client_id: &str, start: &str) -> pb::HoldSlotRequest {
        pb::HoldSlotRequest {
            location_id: self.location_id.clone(),
            treatment_id: self.cryo_id.clone(),
            client_id: client_id.into(),
            start_time: t(start),
            ..Default::default()
        }
    }

    /// Holds cryo for `client_id` at `start`, as the desk.
    pub(crate) async fn hold(&self, client_id: &str, start: &str) -> Result<pb::Hold, Status> {
        let request = self.hold_request(client_id, start);
        self.client(&self.desk)
            .await
            .hold_slot(request)
            .await
            .map(|r| r.into_inner().hold.unwrap())
    }

    /// Books hold `hold_id`, as the desk.
    pub(crate) async fn book_hold(&self, hold_id: &str) -> Result<pb::Booking, Status> {
        self.create_booking(pb::CreateBookingRequest {
            hold_id: hold_id.into(),
            ..Default::default()
        })
        .await
    }

    /// Cancels booking `id` for `reason`, as the desk.
    pub(crate) async fn cancel(&self, id: &str, reason: &str) -> Result<pb::Booking, Status> {
        self.client(&self.desk)
            .await
            .cancel_booking(pb::CancelBookingRequest {
                id: id.into(),
                reason: reason.into(),
            })
            .await
            .map(|r| r.into_inner().booking.unwrap())
    }

    /// Books cryo for the client called `name`.
    pub(crate) async fn book(&self, name: &str, start: &str) -> Result<pb::Booking, Status> {
        self.create_booking(self.booking(name, start).await).await
    }

    /// Sends `request` as the desk; the booking made.
    pub(crate) async fn create_booking(
        &self,
        request: pb::CreateBookingRequest,
    ) -> Result<pb::Booking, Status> {
        self.client(&self.desk)
            .await
            .create_booking(request)
            .await
            .map(|r| r.into_inner().booking.unwrap())
    }

    /// Registers a fork-head massage gun at the location with a charged
    /// battery reported by the hub.
    pub(crate) async fn gun(&self, serial: &str) -> String {
        let device = self
            .fleet_client(&self.manager)
            .await
            .register_device(fleet_pb::RegisterDeviceRequest {
                device: Some(fleet_pb::Device {
                    location_id: self.location_id.clone(),
                    kind: fleet_pb::DeviceKind::PercussionMassager as i32,
                    display_name: format!("Gun {serial}"),
                    serial_number: serial.into(),
                    model: "Hypervolt 2 Pro".into(),
                    spec: Some(fleet_pb::device::Spec::Percussion(
                        fleet_pb::PercussionSpec {
                            speed_levels: 3,
                            attachments: vec![fleet_pb::Attachment::Fork as i32],
                        },
                    )),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .device
            .unwrap();
        self.fleet_client(&self.hub)
            .await
            .report_telemetry(tokio_stream::iter(vec![fleet_pb::ReportTelemetryRequest {
                reading: Some(fleet_pb::TelemetryReading {
                    device_id: device.id.clone(),
                    battery_percent: Some(90),
                    ..Default::default()
                }),
            }]))
            .await
            .unwrap();
        device.id
    }

    /// Fleet's reservations at the location in the week from now, every
    /// state.
    pub(crate) async fn reservations(&self) -> Vec<fleet_pb::Reservation> {
        let now = self.clock.now();
        self.fleet_client(&self.staff)
            .await
            .list_reservations(fleet_pb::ListReservationsRequest {
                location_id: self.location_id.clone(),
                start_time: Some(to_proto(now)),
                end_time: Some(to_proto(now + jiff::SignedDuration::from_hours(24 * 7))),
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .reservations
    }

    /// Fleet's reservations held (not released) for `booking_id`.
    pub(crate) async fn held_for(&self, booking_id: &str) -> Vec<fleet_pb::Reservation> {
        self.reservations()
            .await
            .into_iter()
            .filter(|r| {
                r.purpose
                    == Some(fleet_pb::reservation::Purpose::BookingId(
                        booking_id.to_owned(),
                    ))
                    && r.state() == fleet_pb::ReservationState::Held
            })
            .collect()
    }

    /// Every reservation fleet holds at the location (any booking).
    pub(crate) async fn all_held(&self) -> Vec<fleet_pb::Reservation> {
        self.reservations()
            .await
            .into_iter()
            .filter(|r| r.state() == fleet_pb::ReservationState::Held)
            .collect()
    }

    /// The open cryo slots in `[from, to)`, as the desk searches them.
    pub(crate) async fn search(&self, from: &str, to: &str) -> Vec<pb::Slot> {
        self.search_at(&self.location_id, at(from), at(to)).await
    }

    /// The open cryo slots at `location_id` in `[from, to)`, as the desk
    /// searches them.
    pub(crate) async fn search_at(
        &self,
        location_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<pb::Slot> {
        self.client(&self.desk)
            .await
            .search_availability(pb::SearchAvailabilityRequest {
                location_id: location_id.into(),
                treatment_id: self.cryo_id.clone(),
                start_time: Some(to_proto(from)),
                end_time: Some(to_proto(to)),
                resource_id: String::new(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .slots
    }

    /// When the open cryo slots in `[from, to)` start.
    pub(crate) async fn slots(&self, from: &str, to: &str) -> Vec<Timestamp> {
        starts(&self.search(from, to).await)
    }

    /// A location of the tenant in New York, open every day from `open`
    /// to `close`, with one chamber `chamber`; its id.
    pub(crate) async fn location(
        &self,
        name: &str,
        (open, close): (&str, &str),
        chamber: &str,
    ) -> String {
        let location_id = TenancyServiceClient::with_interceptor(
            self.server.channel().await,
            Bearer::new(&self.manager),
        )
        .create_location(tenancy_pb::CreateLocationRequest {
            tenant_id: String::new(),
            location: Some(tenancy_pb::Location {
                display_name: name.into(),
                time_zone: "America/New_York".into(),
                weekly_hours: (1..=7)
                    .map(|day| tenancy_pb::OpeningHours {
                        day,
                        open: open.into(),
                        close: close.into(),
                    })
                    .collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap()
        .id;
        self.add_resource(&location_id, chamber, pb::ResourceKind::CryoChamber)
            .await;
        location_id
    }

    /// The bookings of the client called `name`.
    pub(crate) async fn bookings_of(&self, name: &str) -> Vec<pb::Booking> {
        self.bookings_of_client(&self.person(name).await).await
    }

    /// Every booking of the client `client_id`, as the desk lists them.
    pub(crate) async fn bookings_of_client(&self, client_id: &str) -> Vec<pb::Booking> {
        self.client(&self.desk)
            .await
            .list_bookings(pb::ListBookingsRequest {
                client_id: client_id.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .bookings
    }
}

impl Studio {
    /// A room, a therapist and a stretch-therapy treatment that needs
    /// `guns` fork-head massage guns; its id.
    pub(crate) async fn stretch(&self, guns: usize) -> String {
        for (name, kind) in [
            ("Stretch room", pb::ResourceKind::Room),
            ("Therapist", pb::ResourceKind::Therapist),
        ] {
            self.add_resource(&self.location_id, name, kind).await;
        }
        self.stretch_treatment(guns).await
    }

    /// A stretch-therapy treatment that needs `guns` fork-head guns (the
    /// room and therapist made by [`Studio::stretch`]); its id.
    pub(crate) async fn stretch_treatment(&self, guns: usize) -> String {
        let fork = pb::DeviceNeed {
            kind: fleet_pb::DeviceKind::PercussionMassager as i32,
            attachment: fleet_pb::Attachment::Fork as i32,
            min_battery_percent: 30,
        };
        self.add_treatment(pb::Treatment {
            display_name: "Stretch therapy".into(),
            modality: pb::Modality::StretchTherapy as i32,
            device_needs: vec![fork; guns],
            ..Default::default()
        })
        .await
    }

    /// Stores a booking as one made before booking asked the rules (an
    /// upgrade's old booking), so a move can meet a refusal.
    pub(crate) async fn plant(&self, treatment_id: &str, client_id: &str, start: &str) -> String {
        let id = recovery_kit::ids::new_id();
        let start = recovery_kit::time::to_micros(at(start));
        sqlx::query(
            "INSERT INTO bookings (id, tenant_id, location_id, treatment_id, modality, client_id, \
             start_us, end_us, status, late_cancel, cancel_reason, create_time, update_time, \
             created_by, updated_by) VALUES ($1, $2, $3, $4, 'whole_body_cryotherapy', $5, $6, \
             $7, 'booked', 0, '', 0, 0, 'old', 'old')",
        )
        .bind(&id)
        .bind(&self.tenant_id)
        .bind(&self.location_id)
        .bind(treatment_id)
        .bind(client_id)
        .bind(start)
        .bind(start + 180_000_000)
        .execute(self.db.db.reader())
        .await
        .unwrap();
        id
    }

    /// How many rows `table` of booking has.
    pub(crate) async fn rows(&self, table: &str) -> i64 {
        use sqlx::Row as _;
        sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(self.db.db.reader())
            .await
            .unwrap()
            .try_get("n")
            .unwrap()
    }

    /// The protocols client `id`'s recorded sessions, newest first.
    pub(crate) async fn sessions_of(&self, client_id: &str) -> Vec<protocols_pb::RecoverySession> {
        self.protocols_client()
            .await
            .list_timeline(protocols_pb::ListTimelineRequest {
                client_id: client_id.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .entries
            .into_iter()
            .filter_map(|e| match e.entry {
                Some(protocols_pb::timeline_entry::Entry::Session(s)) => Some(s),
                _ => None,
            })
            .collect()
    }
}

/// The screening's answers: every condition asked, exactly `present` ones
/// present.
pub(crate) fn answers(present: &[protocols_pb::Condition]) -> [(protocols_pb::Condition, bool); 6] {
    use protocols_pb::Condition as C;
    [
        C::Pregnancy,
        C::Raynauds,
        C::ColdUrticaria,
        C::Pacemaker,
        C::UncontrolledHypertension,
        C::DeepVeinThrombosis,
    ]
    .map(|c| (c, present.contains(&c)))
}

/// When `slots` start.
/// The booking `id` as `GetBooking` answers it to `client`.
pub(crate) async fn stored(client: &mut Client, id: &str) -> pb::Booking {
    client
        .get_booking(pb::GetBookingRequest { id: id.to_owned() })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap()
}

pub(crate) fn starts(slots: &[pb::Slot]) -> Vec<Timestamp> {
    slots
        .iter()
        .map(|s| recovery_kit::time::from_proto(s.start_time.as_ref().unwrap()).unwrap())
        .collect()
}

/// A refusal: FAILED_PRECONDITION with `expected` as its reason.
pub(crate) fn refused<T: std::fmt::Debug>(result: Result<T, Status>, expected: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(&status), expected, "{status:?}");
}
