//! The other shape: the real `booking` binary run on its own, next to a
//! tenancy service it reaches over gRPC for locations and for every caller's
//! key (with an operator key of its own), as in a distributed deployment.

// One scenario, told in order.
#![allow(clippy::too_many_lines)]

use std::sync::Arc;

use recovery_kit::Role;
use recovery_kit::testing::{Bearer, Daemon, TestDb, TestServer};
use recovery_kit::time::{SystemClock, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_tenancy::testing::{Platform, Studio};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_booking_binary_runs_apart_from_tenancy() {
    let db = TestDb::sqlite().await;
    let platform = Platform::start(&db.db, Arc::new(SystemClock)).await;
    let tenancy = TestServer::start(platform.services()).await;
    let studio = Studio::create(
        tenancy.channel().await,
        &platform.operator,
        "Apart",
        "Europe/Berlin",
        &[Role::Manager, Role::FrontDesk],
    )
    .await;
    let other = Studio::create(
        tenancy.channel().await,
        &platform.operator,
        "Elsewhere",
        "Europe/Berlin",
        &[Role::Manager],
    )
    .await;

    let booking = Daemon::start(
        env!("CARGO_BIN_EXE_booking"),
        &["--tenancy-url", &format!("http://{}", tenancy.addr)],
        &[("RECOVERY_SERVICE_KEY", platform.operator.as_str())],
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", booking.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client =
        |key: &str| BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(key));

    // Keys are checked by tenancy, roles by booking.
    let mut manager = client(studio.key(Role::Manager));
    let mut desk = client(studio.key(Role::FrontDesk));
    let unknown = client("rk_not-a-key")
        .list_treatments(pb::ListTreatmentsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);

    // Locations come from tenancy: the studio's own works, another's is
    // NOT_FOUND.
    let chamber = pb::Resource {
        location_id: studio.location_id.clone(),
        display_name: "Chamber".into(),
        kind: pb::ResourceKind::CryoChamber as i32,
        ..Default::default()
    };
    manager
        .create_resource(pb::CreateResourceRequest {
            resource: Some(chamber.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let foreign = manager
        .create_resource(pb::CreateResourceRequest {
            resource: Some(pb::Resource {
                location_id: other.location_id.clone(),
                ..chamber
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    let denied = desk
        .create_treatment(pb::CreateTreatmentRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let cryo = manager
        .create_treatment(pb::CreateTreatmentRequest {
            treatment: Some(pb::Treatment {
                display_name: "Cryo".into(),
                modality: pb::Modality::WholeBodyCryotherapy as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .treatment
        .unwrap();
    let now = jiff::Timestamp::now();
    let slots = desk
        .search_availability(pb::SearchAvailabilityRequest {
            location_id: studio.location_id.clone(),
            treatment_id: cryo.id.clone(),
            start_time: Some(to_proto(now)),
            end_time: Some(to_proto(now + jiff::SignedDuration::from_hours(48))),
            resource_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .slots;
    let first = slots.first().expect("the studio opens within two days");
    let booked = desk
        .create_booking(pb::CreateBookingRequest {
            location_id: studio.location_id.clone(),
            treatment_id: cryo.id,
            client_id: "ana".into(),
            start_time: first.start_time,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(booked.tenant_id, studio.tenant_id);
    assert_eq!(booked.status(), pb::BookingStatus::Booked);

    let (status, said) = booking.terminate();
    assert!(status.success(), "booking exited with {status}");
    assert!(said.iter().any(|l| l.contains("shutting down")));
}
