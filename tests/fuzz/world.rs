//! The server the fuzzer calls: every service in one process on a fresh
//! database (limits lifted: the fuzzer is one fast caller), two studios
//! with a key per role, and calls made from descriptors alone.

use std::sync::Arc;
use std::time::Duration;

use prost::bytes::{Buf as _, BufMut as _};
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};
use recovery_booking::{Bookings, Peers};
use recovery_fleet::Fleet;
use recovery_kit::Role;
use recovery_kit::events::Bus;
use recovery_kit::limits::{Admission, Limits};
use recovery_kit::server::Services;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::ManualClock;
use recovery_proto::booking::v1 as bk;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::fleet::v1 as fl;
use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use recovery_proto::protocols::v1 as pr;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_proto::tenancy::v1 as tn;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use recovery_protocols::Protocols;
use recovery_tenancy::testing::{Platform, Studio};
use sqlx::{AnyConnection, Connection as _, Row as _};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The server's clock: Tuesday 2026-12-01, 05:00 in New York.
pub(crate) const NOW: &str = "2026-12-01T10:00:00Z";

/// How long one call may take before the fuzzer calls it hung.
pub(crate) const CALL_BOUND: Duration = Duration::from_secs(20);

/// Roles a studio key is made for.
pub(crate) const TENANT_ROLES: [Role; 4] =
    [Role::Manager, Role::FrontDesk, Role::Staff, Role::Device];

pub(crate) struct World {
    pub(crate) db: TestDb,
    /// Serves while the world lives.
    _server: TestServer,
    pub(crate) channel: Channel,
    pub(crate) operator: String,
    pub(crate) now: i64,
    pub(crate) pool: DescriptorPool,
}

/// One studio of the world, with what it holds.
pub(crate) struct Tenant {
    pub(crate) studio: Studio,
    /// Its cryo treatment.
    pub(crate) cryo: String,
    /// Its two screened clients with waivers; the first is booked
    /// tomorrow at 15:00 UTC, the second holds tomorrow's 16:00.
    pub(crate) clients: Vec<String>,
    /// Ids this tenant's keys have seen.
    pub(crate) ids: Vec<String>,
}

impl Tenant {
    /// Books cryo for `client_id` at `seconds` since the epoch.
    pub(crate) async fn book(
        &self,
        channel: &Channel,
        client_id: &str,
        seconds: i64,
    ) -> bk::Booking {
        BookingServiceClient::with_interceptor(
            channel.clone(),
            Bearer::new(self.studio.key(Role::FrontDesk)),
        )
        .create_booking(bk::CreateBookingRequest {
            location_id: self.studio.location_id.clone(),
            treatment_id: self.cryo.clone(),
            client_id: client_id.to_owned(),
            start_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
            ..Default::default()
        })
        .await
        .expect("book")
        .into_inner()
        .booking
        .unwrap()
    }

    pub(crate) fn keys(&self) -> Vec<(Role, String)> {
        TENANT_ROLES
            .iter()
            .map(|&role| (role, self.studio.key(role).to_owned()))
            .collect()
    }
}

impl World {
    pub(crate) async fn start(db: TestDb) -> World {
        let now: jiff::Timestamp = NOW.parse().unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let platform = Platform::start(&db.db, clock.clone()).await;
        let bus = Bus::default();
        let protocols = Protocols::start(
            db.db.clone(),
            clock.clone(),
            bus.clone(),
            platform.directory(),
        )
        .await
        .unwrap();
        let fleet = Fleet::start(
            db.db.clone(),
            clock.clone(),
            bus.clone(),
            platform.directory(),
            recovery_fleet::Config {
                offline_after_secs: 24 * 3600,
                history: 100,
                batch: 500,
            },
        )
        .await
        .unwrap();
        let peers = Peers {
            clients: protocols.clone(),
            history: protocols.clone(),
            devices: fleet.clone(),
        };
        let bookings = Bookings::start(db.db.clone(), clock, bus, platform.directory(), peers)
            .await
            .unwrap();
        protocols.on_erasure(bookings.clone());
        // One fast caller: rate and in-flight limits would only refuse it.
        let limits = Limits {
            key_rate: 1e9,
            key_burst: u32::MAX,
            tenant_in_flight: 10_000,
            ..Limits::default()
        };
        let mut services =
            Services::with_admission(platform.tenancy.authenticator(), Admission::new(limits));
        platform.tenancy.mount(&mut services);
        bookings.mount(&mut services);
        protocols.mount(&mut services);
        fleet.mount(&mut services);
        let server = TestServer::start(services).await;
        let channel = server.channel().await;
        World {
            db,
            _server: server,
            channel,
            operator: platform.operator,
            now: now.as_second(),
            pool: DescriptorPool::decode(recovery_proto::FILE_DESCRIPTOR_SET).unwrap(),
        }
    }

    /// A studio named `name`, with a key per role.
    pub(crate) async fn studio(&self, name: &str) -> Tenant {
        let studio = Studio::create(
            self.channel.clone(),
            &self.operator,
            name,
            "America/New_York",
            &TENANT_ROLES,
        )
        .await;
        let ids = vec![studio.tenant_id.clone(), studio.location_id.clone()];
        let mut tenant = Tenant {
            studio,
            cryo: String::new(),
            clients: Vec::new(),
            ids,
        };
        self.furnish(&mut tenant).await;
        tenant
    }

    /// A second of each thing the first day made, and two activities, so
    /// that each list of the studio runs to two pages of one.
    pub(crate) async fn seconds(&self, tenant: &mut Tenant) {
        let studio = &tenant.studio;
        let manager = Bearer::new(studio.key(Role::Manager));
        let mut tenancy =
            TenancyServiceClient::with_interceptor(self.channel.clone(), manager.clone());
        let mut booking =
            BookingServiceClient::with_interceptor(self.channel.clone(), manager.clone());
        let mut protocols =
            ProtocolServiceClient::with_interceptor(self.channel.clone(), manager.clone());
        let mut fleet = FleetServiceClient::with_interceptor(self.channel.clone(), manager);
        let annex = tenancy
            .create_location(tn::CreateLocationRequest {
                location: Some(tn::Location {
                    display_name: "Annex".into(),
                    time_zone: "America/New_York".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("create a location")
            .into_inner();
        let chamber = booking
            .create_resource(bk::CreateResourceRequest {
                resource: Some(bk::Resource {
                    location_id: studio.location_id.clone(),
                    display_name: "Chamber 2".into(),
                    kind: bk::ResourceKind::CryoChamber as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create a chamber")
            .into_inner();
        let treatment = booking
            .create_treatment(bk::CreateTreatmentRequest {
                treatment: Some(bk::Treatment {
                    display_name: "Partial-body cryo".into(),
                    modality: bk::Modality::WholeBodyCryotherapy as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create a treatment")
            .into_inner();
        let gun = fleet
            .register_device(gun(
                &studio.location_id,
                "Gun 2",
                &format!("SN-2-{}", studio.tenant_id),
            ))
            .await
            .expect("register a gun")
            .into_inner();
        let booked = tenant
            .book(
                &self.channel,
                &tenant.clients[0],
                self.now + 2 * 86_400 + 5 * 3600,
            )
            .await;
        for days_ago in [1, 2] {
            let start = self.now - days_ago * 86_400;
            protocols
                .log_activity(pr::LogActivityRequest {
                    activity: Some(pr::Activity {
                        client_id: tenant.clients[0].clone(),
                        kind: pr::ActivityKind::Training as i32,
                        start_time: Some(prost_types::Timestamp {
                            seconds: start,
                            nanos: 0,
                        }),
                        end_time: Some(prost_types::Timestamp {
                            seconds: start + 3600,
                            nanos: 0,
                        }),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .expect("log an activity");
        }
        tenant.ids.extend([
            annex.location.unwrap_or_default().id,
            chamber.resource.unwrap_or_default().id,
            treatment.treatment.unwrap_or_default().id,
            gun.device.unwrap_or_default().id,
            booked.id,
        ]);
    }

    /// What a studio's first day makes, through the typed clients: a
    /// chamber, a cryo treatment, a massage gun, a screened client with a
    /// waiver, a hold and a booking, so every kind of id is at hand.
    #[allow(clippy::too_many_lines)] // one studio's first day, in order
    async fn furnish(&self, tenant: &mut Tenant) {
        let studio = &tenant.studio;
        let manager = Bearer::new(studio.key(Role::Manager));
        let mut booking =
            BookingServiceClient::with_interceptor(self.channel.clone(), manager.clone());
        let mut protocols =
            ProtocolServiceClient::with_interceptor(self.channel.clone(), manager.clone());
        let mut fleet = FleetServiceClient::with_interceptor(self.channel.clone(), manager);
        let chamber = booking
            .create_resource(bk::CreateResourceRequest {
                resource: Some(bk::Resource {
                    location_id: studio.location_id.clone(),
                    display_name: "Chamber 1".into(),
                    kind: bk::ResourceKind::CryoChamber as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create a chamber")
            .into_inner()
            .resource
            .unwrap()
            .id;
        let cryo = booking
            .create_treatment(bk::CreateTreatmentRequest {
                treatment: Some(bk::Treatment {
                    display_name: "Whole-body cryo".into(),
                    modality: bk::Modality::WholeBodyCryotherapy as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create a treatment")
            .into_inner()
            .treatment
            .unwrap()
            .id;
        let gun = fleet
            .register_device(gun(
                &studio.location_id,
                "Gun 1",
                &format!("SN-{}", studio.tenant_id),
            ))
            .await
            .expect("register a gun")
            .into_inner()
            .device
            .unwrap()
            .id;
        let mut clients = Vec::new();
        for name in ["Ada", "Ben"] {
            let id = protocols
                .create_client(pr::CreateClientRequest {
                    client: Some(pr::Client {
                        given_name: name.into(),
                        family_name: "Tester".into(),
                        date_of_birth: "1990-05-01".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .expect("create a client")
                .into_inner()
                .client
                .unwrap()
                .id;
            protocols
                .record_screening(pr::RecordScreeningRequest {
                    screening: Some(pr::Screening {
                        client_id: id.clone(),
                        questionnaire_version: "2026-01".into(),
                        answers: [pr::Condition::Pregnancy, pr::Condition::Pacemaker]
                            .iter()
                            .map(|c| pr::ScreeningAnswer {
                                condition: *c as i32,
                                present: false,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .expect("screen a client");
            protocols
                .sign_waiver(pr::SignWaiverRequest {
                    waiver: Some(pr::Waiver {
                        client_id: id.clone(),
                        version: "v1".into(),
                        signer_name: "The Client".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .expect("sign a waiver");
            clients.push(id);
        }
        let tomorrow = |hour: i64| {
            Some(prost_types::Timestamp {
                seconds: self.now + 86_400 + hour * 3600,
                nanos: 0,
            })
        };
        let booked = booking
            .create_booking(bk::CreateBookingRequest {
                location_id: studio.location_id.clone(),
                treatment_id: cryo.clone(),
                client_id: clients[0].clone(),
                start_time: tomorrow(5),
                ..Default::default()
            })
            .await
            .expect("book")
            .into_inner()
            .booking
            .unwrap()
            .id;
        let held = booking
            .hold_slot(bk::HoldSlotRequest {
                location_id: studio.location_id.clone(),
                treatment_id: cryo.clone(),
                client_id: clients[1].clone(),
                start_time: tomorrow(6),
                ..Default::default()
            })
            .await
            .expect("hold")
            .into_inner()
            .hold
            .unwrap()
            .id;
        tenant.ids.extend(
            [chamber, cryo.clone(), gun, booked, held]
                .into_iter()
                .chain(clients.iter().cloned()),
        );
        tenant.cryo = cryo;
        tenant.clients = clients;
    }

    /// Every unary method of every recovery service.
    pub(crate) fn unary_methods(&self) -> Vec<MethodDescriptor> {
        self.pool
            .services()
            .filter(|s| s.full_name().starts_with("recovery."))
            .flat_map(|s| s.methods().collect::<Vec<_>>())
            .filter(|m| !m.is_client_streaming() && !m.is_server_streaming())
            .collect()
    }

    /// Calls `method` with `message` and `key`: the answer, decoded.
    pub(crate) async fn call(
        &self,
        method: &MethodDescriptor,
        message: &DynamicMessage,
        key: &str,
    ) -> Result<DynamicMessage, Status> {
        let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut request = tonic::Request::new(prost::Message::encode_to_vec(message));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        request.set_timeout(CALL_BOUND);
        let answer = tokio::time::timeout(
            CALL_BOUND + Duration::from_secs(5),
            grpc.unary(request, path.parse().unwrap(), Raw),
        )
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("the call hung")))?;
        DynamicMessage::decode(method.output(), answer.into_inner().as_slice())
            .map_err(|e| Status::data_loss(format!("undecodable answer: {e}")))
    }

    /// The rows of every table, counted in one statement on a connection
    /// of the test's own (not the services' pool).
    pub(crate) async fn counts(&self, conn: &mut AnyConnection) -> Vec<(String, i64)> {
        let tables = tables(conn).await;
        let select = tables
            .iter()
            .map(|t| format!("(SELECT COUNT(*) FROM {t})"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = sqlx::query(&format!("SELECT {select}"))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        tables
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, row.get::<i64, _>(i)))
            .collect()
    }

    pub(crate) async fn connect(&self) -> AnyConnection {
        AnyConnection::connect(self.db.url()).await.unwrap()
    }
}

async fn tables(conn: &mut AnyConnection) -> Vec<String> {
    let sql = if recovery_kit::db::engine_of(conn) == recovery_kit::Engine::Postgres {
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
         AND tablename NOT LIKE '\\_sqlx%' ORDER BY 1"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\' ORDER BY 1"
    };
    sqlx::query(sql)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
}

/// Codes no input may earn: a bug (INTERNAL, UNKNOWN), a reset stream
/// (CANCELLED), an answer the client cannot read (`DATA_LOSS`), a hang.
/// Registering a massage gun.
fn gun(location_id: &str, name: &str, serial: &str) -> fl::RegisterDeviceRequest {
    fl::RegisterDeviceRequest {
        device: Some(fl::Device {
            location_id: location_id.to_owned(),
            kind: fl::DeviceKind::PercussionMassager as i32,
            display_name: name.to_owned(),
            serial_number: serial.to_owned(),
            model: "Hypervolt 2 Pro".into(),
            spec: Some(fl::device::Spec::Percussion(fl::PercussionSpec {
                speed_levels: 3,
                attachments: vec![fl::Attachment::Fork as i32],
            })),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub(crate) fn is_bug(code: Code) -> bool {
    matches!(
        code,
        Code::Internal | Code::Unknown | Code::Cancelled | Code::DataLoss | Code::DeadlineExceeded
    )
}

/// Bytes in, bytes out: the fuzzer encodes and decodes itself.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}
