//! Fixtures of the fleet's API tests: the fleet mounted with tenancy, two
//! studios with a key per role, clients, requests and assertions.

use std::sync::Arc;
use std::time::Duration;

pub(crate) use jiff::{SignedDuration, Timestamp};
use recovery_fleet::{Config, Fleet};
use recovery_kit::Role;
use recovery_kit::auth::TENANT_HEADER;
use recovery_kit::events::Bus;
pub(crate) use recovery_kit::testing::TestDb;
use recovery_kit::testing::{Bearer, TestServer};
pub(crate) use recovery_kit::time::to_proto;
use recovery_kit::time::{Clock as _, ManualClock};
pub(crate) use recovery_proto::fleet::v1 as pb;
use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use recovery_tenancy::testing::{self as tenancy, Platform};
use sqlx::Row as _;
use tonic::Streaming;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
pub(crate) use tonic::{Code, Status};

pub(crate) use recovery_kit::testing::answers::{fields, reason};

pub(crate) type Client = FleetServiceClient<InterceptedService<Channel, Bearer>>;

/// The offline threshold of the tests.
pub(crate) const OFFLINE_AFTER: i64 = 600;
/// Readings kept per device in the tests.
pub(crate) const HISTORY: u32 = 1000;

/// One studio: its tenant, its location and a key per role.
pub(crate) struct Studio {
    pub(crate) tenant: String,
    pub(crate) location: String,
    pub(crate) manager: String,
    pub(crate) staff: String,
    pub(crate) hub: String,
}

pub(crate) struct Env {
    pub(crate) db: TestDb,
    pub(crate) server: TestServer,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) a: Studio,
    pub(crate) b: Studio,
    /// A platform-wide service key (as booking's), issued by the operator.
    pub(crate) service: String,
}

pub(crate) async fn studio(channel: Channel, operator: &str, name: &str) -> Studio {
    let made = tenancy::Studio::create(
        channel,
        operator,
        name,
        "Europe/Berlin",
        &[Role::Manager, Role::Staff, Role::Device],
    )
    .await;
    Studio {
        tenant: made.tenant_id.clone(),
        location: made.location_id.clone(),
        manager: made.key(Role::Manager).to_owned(),
        staff: made.key(Role::Staff).to_owned(),
        hub: made.key(Role::Device).to_owned(),
    }
}

pub(crate) async fn env(db: TestDb) -> Env {
    let clock = Arc::new(ManualClock::new("2026-11-28T10:00:00Z".parse().unwrap()));
    let platform = Platform::start(&db.db, clock.clone()).await;
    let operator = platform.operator.clone();
    let fleet = Fleet::start(
        db.db.clone(),
        clock.clone(),
        Bus::default(),
        platform.directory(),
        Config {
            offline_after_secs: u32::try_from(OFFLINE_AFTER).unwrap(),
            history: HISTORY,
            batch: 500,
        },
    )
    .await
    .unwrap();
    let mut services = platform.services();
    fleet.mount(&mut services);
    let server = TestServer::start(services).await;
    let a = studio(server.channel().await, &operator, "North Cryo").await;
    let b = studio(server.channel().await, &operator, "South Stretch").await;
    let service = service_key(server.channel().await, &operator).await;
    Env {
        db,
        server,
        clock,
        fleet,
        a,
        b,
        service,
    }
}

/// A service key, as an operator issues one for booking.
async fn service_key(channel: Channel, operator: &str) -> String {
    use recovery_proto::tenancy::v1 as tenancy_pb;
    use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
    TenancyServiceClient::with_interceptor(channel, Bearer::new(operator))
        .create_api_key(tenancy_pb::CreateApiKeyRequest {
            tenant_id: String::new(),
            role: tenancy_pb::Role::Service as i32,
            display_name: "booking".into(),
            request_id: String::new(),
        })
        .await
        .expect("create service key")
        .into_inner()
        .secret
}

/// Sends a key and, for a service, the tenant it acts for.
#[derive(Clone)]
pub(crate) struct Acting {
    bearer: Bearer,
    tenant: Option<String>,
}

impl Interceptor for Acting {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let mut request = self.bearer.call(request)?;
        if let Some(tenant) = &self.tenant {
            request.metadata_mut().insert(
                TENANT_HEADER,
                tenant.parse().map_err(|_| Status::internal("bad tenant"))?,
            );
        }
        Ok(request)
    }
}

/// A client of the service key.
pub(crate) type ServiceClient = FleetServiceClient<InterceptedService<Channel, Acting>>;

impl Env {
    /// The service key acting for `tenant` (`None`: naming no tenant).
    pub(crate) async fn service(&self, tenant: Option<&str>) -> ServiceClient {
        FleetServiceClient::with_interceptor(
            self.server.channel().await,
            Acting {
                bearer: Bearer::new(&self.service),
                tenant: tenant.map(str::to_owned),
            },
        )
    }

    pub(crate) async fn client(&self, key: &str) -> Client {
        FleetServiceClient::with_interceptor(self.server.channel().await, Bearer::new(key))
    }

    pub(crate) fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

pub(crate) fn gun(location: &str, serial: &str, heads: &[pb::Attachment]) -> pb::Device {
    pb::Device {
        location_id: location.into(),
        kind: pb::DeviceKind::PercussionMassager as i32,
        display_name: format!("Gun {serial}"),
        serial_number: serial.into(),
        model: "Hypervolt 2 Pro".into(),
        spec: Some(pb::device::Spec::Percussion(pb::PercussionSpec {
            speed_levels: 3,
            attachments: heads.iter().map(|a| *a as i32).collect(),
        })),
        ..Default::default()
    }
}

pub(crate) async fn register(client: &mut Client, device: pb::Device) -> pb::Device {
    client
        .register_device(pb::RegisterDeviceRequest {
            device: Some(device),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap()
}

pub(crate) fn reading(device_id: &str, battery: u32, charging: bool) -> pb::ReportTelemetryRequest {
    pb::ReportTelemetryRequest {
        reading: Some(pb::TelemetryReading {
            device_id: device_id.into(),
            battery_percent: Some(battery),
            charging,
            ..Default::default()
        }),
    }
}

pub(crate) async fn report(
    client: &mut Client,
    readings: Vec<pb::ReportTelemetryRequest>,
) -> Result<i64, Status> {
    client
        .report_telemetry(tokio_stream::iter(readings))
        .await
        .map(|r| r.into_inner().accepted)
}

pub(crate) fn reserve_by_id(
    device_id: &str,
    start: Timestamp,
    minutes: i64,
) -> pb::ReserveDeviceRequest {
    pb::ReserveDeviceRequest {
        target: Some(pb::reserve_device_request::Target::DeviceId(
            device_id.into(),
        )),
        start_time: Some(to_proto(start)),
        duration: Some(prost_types::Duration {
            seconds: minutes * 60,
            nanos: 0,
        }),
        purpose: Some(pb::reserve_device_request::Purpose::BookingId(
            "booking-1".into(),
        )),
        ..Default::default()
    }
}

pub(crate) fn reserve_fitting(
    location: &str,
    attachment: pb::Attachment,
    min_battery: u32,
    start: Timestamp,
) -> pb::ReserveDeviceRequest {
    pb::ReserveDeviceRequest {
        target: Some(pb::reserve_device_request::Target::Requirement(
            pb::DeviceRequirement {
                location_id: location.into(),
                kind: pb::DeviceKind::PercussionMassager as i32,
                attachment: attachment as i32,
                min_battery_percent: min_battery,
            },
        )),
        start_time: Some(to_proto(start)),
        duration: Some(prost_types::Duration {
            seconds: 30 * 60,
            nanos: 0,
        }),
        purpose: Some(pb::reserve_device_request::Purpose::StaffMemberId(
            "therapist-7".into(),
        )),
        ..Default::default()
    }
}

pub(crate) fn refused(result: Result<impl std::fmt::Debug, Status>, code: Code, why: &str) {
    let status = result.expect_err("expected a refusal");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(&status), why, "{status:?}");
}

pub(crate) async fn device(client: &mut Client, id: &str) -> pb::Device {
    client
        .get_device(pb::GetDeviceRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap()
}

pub(crate) fn unit<T>(
    r: Result<tonic::Response<T>, Status>,
) -> Result<tonic::Response<()>, Status> {
    r.map(|_| tonic::Response::new(()))
}

pub(crate) fn state(device: &pb::Device) -> pb::DeviceState {
    device.state()
}

pub(crate) async fn reservation_count(env: &Env) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM device_reservations")
        .fetch_one(env.db.db.reader())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

pub(crate) async fn register_err(client: &mut Client, device: pb::Device) -> Status {
    client
        .register_device(pb::RegisterDeviceRequest {
            device: Some(device),
            request_id: String::new(),
        })
        .await
        .unwrap_err()
}

impl Env {
    /// Clients of studio a's manager, staff and hub.
    pub(crate) async fn crew(&self) -> (Client, Client, Client) {
        (
            self.client(&self.a.manager).await,
            self.client(&self.a.staff).await,
            self.client(&self.a.hub).await,
        )
    }

    /// Registers a gun with `heads` at studio a.
    pub(crate) async fn gun(
        &self,
        manager: &mut Client,
        serial: &str,
        heads: &[pb::Attachment],
    ) -> pb::Device {
        register(manager, gun(&self.a.location, serial, heads)).await
    }
}

pub(crate) type Answer<T> = Result<tonic::Response<T>, Status>;

pub(crate) async fn check_out(client: &mut Client, id: &str) -> Answer<pb::CheckOutDeviceResponse> {
    client
        .check_out_device(pb::CheckOutDeviceRequest {
            reservation_id: id.into(),
        })
        .await
}

pub(crate) async fn check_in(
    client: &mut Client,
    id: &str,
    settings: Option<pb::UsageSettings>,
) -> Answer<pb::CheckInDeviceResponse> {
    client
        .check_in_device(pb::CheckInDeviceRequest {
            reservation_id: id.into(),
            settings,
        })
        .await
}

pub(crate) async fn release(
    client: &mut Client,
    id: &str,
) -> Answer<pb::ReleaseReservationResponse> {
    client
        .release_reservation(pb::ReleaseReservationRequest {
            reservation_id: id.into(),
        })
        .await
}

pub(crate) async fn retire(client: &mut Client, id: &str) -> Answer<pb::RetireDeviceResponse> {
    client
        .retire_device(pb::RetireDeviceRequest { id: id.into() })
        .await
}

/// A reservation made by `client`, which must succeed.
pub(crate) async fn reserve(
    client: &mut Client,
    request: pb::ReserveDeviceRequest,
) -> pb::ReserveDeviceResponse {
    client.reserve_device(request).await.unwrap().into_inner()
}

/// The board of `location`.
pub(crate) async fn watch(
    client: &mut Client,
    location: &str,
) -> Streaming<pb::WatchDevicesResponse> {
    client
        .watch_devices(pb::WatchDevicesRequest {
            location_id: location.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The snapshot a board starts with (within 10 seconds).
pub(crate) async fn snapshot(board: &mut Streaming<pb::WatchDevicesResponse>) -> Vec<pb::Device> {
    let message = tokio::time::timeout(Duration::from_secs(10), board.message())
        .await
        .expect("a snapshot arrives")
        .unwrap()
        .unwrap();
    let Some(pb::watch_devices_response::Event::Snapshot(snapshot)) = message.event else {
        panic!("a snapshot comes first");
    };
    snapshot.devices
}

/// The next change a board tells (within 10 seconds).
pub(crate) async fn next_change(board: &mut Streaming<pb::WatchDevicesResponse>) -> pb::Device {
    let message = tokio::time::timeout(Duration::from_secs(10), board.message())
        .await
        .expect("a change arrives")
        .unwrap()
        .unwrap();
    let Some(pb::watch_devices_response::Event::Device(changed)) = message.event else {
        panic!("expected a change");
    };
    changed
}

/// Registers a gun with a ball head at studio a.
impl Env {
    pub(crate) async fn ball_gun(&self, manager: &mut Client, serial: &str) -> pb::Device {
        self.gun(manager, serial, &[pb::Attachment::Ball]).await
    }
}

/// One reading from a hub, which must be stored.
pub(crate) async fn report_one(hub: &mut Client, device_id: &str, battery: u32, charging: bool) {
    report(hub, vec![reading(device_id, battery, charging)])
        .await
        .unwrap();
}

/// A device's state as `client` reads it.
pub(crate) async fn state_of(client: &mut Client, id: &str) -> pb::DeviceState {
    state(&device(client, id).await)
}

/// Refused with `DEVICE_UNAVAILABLE`.
pub(crate) fn unavailable(result: Result<impl std::fmt::Debug, Status>) {
    refused(result, Code::FailedPrecondition, "DEVICE_UNAVAILABLE");
}

/// INVALID_ARGUMENT naming exactly `expected`, in order.
pub(crate) fn invalid(status: &Status, expected: &[&str]) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(fields(status), expected);
}
