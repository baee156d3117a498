//! What the load examples share: the whole stack on one server (tenancy,
//! booking, protocols and fleet in one process, as `recoveryd` mounts
//! them), and a client the rules let book (screened, waiver signed), made
//! through protocols' API as a front desk would.

// Each example includes this file and uses part of it.
#![allow(dead_code)]

use std::sync::Arc;

use recovery_booking::Bookings;
use recovery_kit::events::Bus;
use recovery_kit::limits::{Admission, Limits};
use recovery_kit::server::Services;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::ManualClock;
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::protocols::v1 as protocols_pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_tenancy::testing::Platform;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Client `n`: created, screened (nothing that rules out a session) and
/// with a signed waiver; its id.
pub(crate) async fn screened_client(
    people: &mut ProtocolServiceClient<InterceptedService<Channel, Bearer>>,
    n: usize,
) -> anyhow::Result<String> {
    let id = people
        .create_client(protocols_pb::CreateClientRequest {
            client: Some(protocols_pb::Client {
                given_name: format!("Client {n}"),
                family_name: "Load".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .client
        .unwrap_or_default()
        .id;
    people
        .record_screening(protocols_pb::RecordScreeningRequest {
            screening: Some(protocols_pb::Screening {
                client_id: id.clone(),
                questionnaire_version: "2026-01".into(),
                answers: vec![protocols_pb::ScreeningAnswer {
                    condition: protocols_pb::Condition::Pregnancy as i32,
                    present: false,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;
    people
        .sign_waiver(protocols_pb::SignWaiverRequest {
            waiver: Some(protocols_pb::Waiver {
                client_id: id.clone(),
                version: "v1".into(),
                signer_name: format!("Client {n}"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;
    Ok(id)
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

impl Stack {
    pub(crate) async fn start(db: &TestDb, clock: Arc<ManualClock>) -> anyhow::Result<Stack> {
        let platform = Platform::start(&db.db, clock.clone()).await;
        let demo = platform.tenancy.seed_demo().await?;
        let protocols = recovery_protocols::Protocols::start(
            db.db.clone(),
            clock.clone(),
            Bus::default(),
            platform.directory(),
        )
        .await?;
        let fleet = recovery_fleet::Fleet::start(
            db.db.clone(),
            clock.clone(),
            Bus::default(),
            platform.directory(),
            recovery_fleet::Config {
                offline_after_secs: 600,
                history: 100,
                batch: 500,
            },
        )
        .await?;
        let peers = recovery_booking::Peers {
            clients: protocols.clone(),
            history: protocols.clone(),
            devices: fleet.clone(),
        };
        let bookings = Bookings::start(
            db.db.clone(),
            clock.clone(),
            Bus::default(),
            platform.directory(),
            peers,
        )
        .await?;
        // The per-key rate limit would measure the limiter, not the calls.
        let admission = Admission::new(Limits {
            key_rate: 1e9,
            key_burst: 1_000_000_000,
            tenant_in_flight: 100_000,
            ..Limits::default()
        });
        let mut services = Services::with_admission(platform.tenancy.authenticator(), admission);
        platform.tenancy.mount(&mut services);
        bookings.mount(&mut services);
        protocols.mount(&mut services);
        fleet.mount(&mut services);
        let server = TestServer::start(services).await;
        Ok(Stack {
            server,
            bookings,
            demo,
            operator: platform.operator.clone(),
        })
    }
}

/// Makes `n` cryo chambers at `location_id` and a whole-body cryo
/// treatment (its defaults: 3 minutes, one chamber); the treatment's id.
pub(crate) async fn chambers_and_cryo(
    manager: &mut BookingServiceClient<InterceptedService<Channel, Bearer>>,
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
