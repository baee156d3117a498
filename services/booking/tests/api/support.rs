//! The studio every test starts from: tenancy and booking in one server,
//! a location, keys per role, a chamber and a cryo treatment; clients and
//! helpers to read answers.

use std::sync::Arc;

use jiff::Timestamp;
use recovery_booking::Bookings;
use recovery_kit::Role;
use recovery_kit::events::Bus;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::{ManualClock, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_tenancy::testing::{self as tenancy, Platform};
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

pub(crate) type Client = BookingServiceClient<InterceptedService<Channel, Bearer>>;

/// Tuesday 2026-12-01, 05:00 in New York.
pub(crate) const NOW: &str = "2026-12-01T10:00:00Z";
/// Wednesday 2026-12-02, 10:00 in New York.
pub(crate) const TEN_AM: &str = "2026-12-02T15:00:00Z";

pub(crate) struct Studio {
    _db: TestDb,
    pub(crate) server: TestServer,
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
    let platform = Platform::start(&db.db, clock.clone()).await;
    let bookings = Bookings::start(
        db.db.clone(),
        clock.clone(),
        Bus::default(),
        platform.directory(),
    )
    .await
    .unwrap();
    let mut services = platform.services();
    bookings.mount(&mut services);
    let server = TestServer::start(services).await;
    let tenant = tenancy::Studio::create(
        server.channel().await,
        &platform.operator,
        "Frost",
        "America/New_York",
        &[Role::Manager, Role::FrontDesk, Role::Staff],
    )
    .await;
    let mut studio = Studio {
        _db: db,
        server,
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
        .client(&studio.manager)
        .await
        .create_treatment(pb::CreateTreatmentRequest {
            treatment: Some(pb::Treatment {
                display_name: "Whole-body cryo".into(),
                modality: pb::Modality::WholeBodyCryotherapy as i32,
                policy: Some(pb::BookingPolicy {
                    late_cancel_window: mins(120),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .treatment
        .unwrap()
        .id;
    studio
}

impl Studio {
    pub(crate) async fn client(&self, key: &str) -> Client {
        BookingServiceClient::with_interceptor(self.server.channel().await, Bearer::new(key))
    }

    pub(crate) async fn chamber(&self, name: &str) -> String {
        self.client(&self.manager)
            .await
            .create_resource(pb::CreateResourceRequest {
                resource: Some(pb::Resource {
                    location_id: self.location_id.clone(),
                    display_name: name.into(),
                    kind: pb::ResourceKind::CryoChamber as i32,
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

    pub(crate) fn booking(&self, client_id: &str, start: &str) -> pb::CreateBookingRequest {
        pb::CreateBookingRequest {
            location_id: self.location_id.clone(),
            treatment_id: self.cryo_id.clone(),
            client_id: client_id.into(),
            start_time: t(start),
            ..Default::default()
        }
    }

    pub(crate) async fn book(&self, client_id: &str, start: &str) -> Result<pb::Booking, Status> {
        self.client(&self.desk)
            .await
            .create_booking(self.booking(client_id, start))
            .await
            .map(|r| r.into_inner().booking.unwrap())
    }

    pub(crate) async fn slots(&self, from: &str, to: &str) -> Vec<Timestamp> {
        self.client(&self.desk)
            .await
            .search_availability(pb::SearchAvailabilityRequest {
                location_id: self.location_id.clone(),
                treatment_id: self.cryo_id.clone(),
                start_time: t(from),
                end_time: t(to),
                resource_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .slots
            .iter()
            .map(|s| recovery_kit::time::from_proto(s.start_time.as_ref().unwrap()).unwrap())
            .collect()
    }

    pub(crate) async fn bookings_of(&self, client_id: &str) -> Vec<pb::Booking> {
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

pub(crate) fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

pub(crate) fn fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
        .unwrap_or_default()
}
