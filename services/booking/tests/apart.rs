//! The other shape: the real `booking` binary run on its own, next to a
//! server with tenancy, protocols and fleet that it reaches over gRPC for
//! locations, every caller's key, clients, rules and devices (with a service
//! key of its own), as in a distributed deployment.

// One scenario, told in order.
#![allow(clippy::too_many_lines)]

use std::sync::Arc;

use recovery_kit::Role;
use recovery_kit::events::Bus;
use recovery_kit::testing::{Bearer, Daemon, TestDb, TestServer};
use recovery_kit::time::{SystemClock, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::protocols::v1::Condition;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_tenancy::testing::{Apart, Platform, Studio};
use tonic::Code;
use tonic_types::StatusExt as _;

// The load examples' way to make a client the rules let book, through
// protocols' API, a chamber to register in fleet and a cryo treatment.
#[path = "../examples/common/mod.rs"]
mod common;
use common::{chamber_device, cryo, new_client, screen, sign_waiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_booking_binary_runs_apart_from_tenancy_protocols_and_fleet() {
    let db = TestDb::sqlite().await;
    let clock = Arc::new(SystemClock);
    let platform = Platform::start(&db.db, clock.clone()).await;
    let protocols = recovery_protocols::Protocols::start(
        db.db.clone(),
        clock.clone(),
        Bus::default(),
        platform.directory(),
    )
    .await
    .unwrap();
    let fleet = recovery_fleet::Fleet::start(
        db.db.clone(),
        clock,
        Bus::default(),
        platform.directory(),
        recovery_fleet::Config {
            offline_after_secs: 600,
            history: 100,
            batch: 500,
        },
    )
    .await
    .unwrap();
    let mut services = platform.services();
    protocols.mount(&mut services);
    fleet.mount(&mut services);
    let tenancy = Apart::serve(&platform, services, &[Role::Manager, Role::FrontDesk]).await;
    let (studio, other) = (&tenancy.studio, &tenancy.other);
    let service_key = platform
        .service_key(tenancy.server.channel().await, "booking")
        .await;

    let peers_url = tenancy.url();
    let booking = Daemon::start(
        env!("CARGO_BIN_EXE_booking"),
        &[
            "--tenancy-url",
            &peers_url,
            "--protocols-url",
            &peers_url,
            "--fleet-url",
            &peers_url,
        ],
        &[("RECOVERY_SERVICE_KEY", service_key.as_str())],
    );
    let channel = booking.channel().await;
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

    let cryo = cryo(&mut manager).await.unwrap();
    let now = jiff::Timestamp::now();
    let slots = desk
        .search_availability(pb::SearchAvailabilityRequest {
            location_id: studio.location_id.clone(),
            treatment_id: cryo.clone(),
            start_time: Some(to_proto(now)),
            end_time: Some(to_proto(now + jiff::SignedDuration::from_hours(48))),
            resource_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .slots;
    let first = slots.first().expect("the studio opens within two days");
    let request = pb::CreateBookingRequest {
        location_id: studio.location_id.clone(),
        treatment_id: cryo,
        client_id: "no-such-client".into(),
        start_time: first.start_time,
        ..Default::default()
    };

    // Clients are protocols' (over gRPC, with the service key): an unknown
    // one is NOT_FOUND naming the field, an unscreened one is refused by the
    // rules, a screened one with a waiver is booked with the rules' warnings.
    // The id malformed or well formed.
    for client_id in ["no-such-client".to_owned(), recovery_kit::ids::new_id()] {
        let unknown = desk
            .create_booking(pb::CreateBookingRequest {
                client_id: client_id.clone(),
                ..request.clone()
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound, "{client_id}: {unknown:?}");
        let info = unknown.get_error_details().error_info().cloned().unwrap();
        assert_eq!(
            info.metadata.get("field").map(String::as_str),
            Some("client_id")
        );
    }
    let mut people = ProtocolServiceClient::with_interceptor(
        tenancy.server.channel().await,
        Bearer::new(studio.key(Role::Manager)),
    );
    // An erased client is refused as erased.
    let gone = new_client(&mut people, "Gone", "Apart").await.unwrap();
    people
        .delete_client(recovery_proto::protocols::v1::DeleteClientRequest { id: gone.clone() })
        .await
        .unwrap();
    let erased = desk
        .create_booking(pb::CreateBookingRequest {
            client_id: gone.clone(),
            ..request.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(erased.code(), Code::FailedPrecondition, "{erased:?}");
    let info = erased.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "CLIENT_ERASED");
    assert_eq!(info.metadata.get("client_id"), Some(&gone));
    let ana = new_client(&mut people, "Ana", "Apart").await.unwrap();
    let request = pb::CreateBookingRequest {
        client_id: ana.clone(),
        ..request
    };
    let unscreened = desk.create_booking(request.clone()).await.unwrap_err();
    assert_eq!(unscreened.code(), Code::FailedPrecondition);
    let reason = unscreened
        .get_error_details()
        .error_info()
        .unwrap()
        .reason
        .clone();
    assert_eq!(reason, "SCREENING_REQUIRED");
    screen(&mut people, &ana, &[(Condition::Pregnancy, false)])
        .await
        .unwrap();
    sign_waiver(&mut people, &ana, "Ana Apart").await.unwrap();
    let booked = desk
        .create_booking(request.clone())
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(booked.tenant_id, studio.tenant_id);
    assert_eq!(booked.client_id, ana);
    assert_eq!(booked.status(), pb::BookingStatus::Booked);
    assert!(
        booked
            .warnings
            .iter()
            .any(|w| w.reason == "NO_RECENT_ACTIVITY"),
        "{:?}",
        booked.warnings
    );
    assert!(booked.recommended_duration.is_some());

    // The waitlist apart: Cy waits for Bo's slot; Bo cancels; the relay
    // hands the freed slot to the matcher, which asks protocols' rules over
    // gRPC and offers it to Cy; the desk accepts it.
    let mut ready = Vec::new();
    for name in ["Bo", "Cy"] {
        let id = new_client(&mut people, name, "Apart").await.unwrap();
        screen(&mut people, &id, &[(Condition::Pregnancy, false)])
            .await
            .unwrap();
        sign_waiver(&mut people, &id, name).await.unwrap();
        ready.push(id);
    }
    // An hour after the first slot: no hurry before it starts.
    let later = slots.get(20).expect("an hour of slots");
    let bos = desk
        .create_booking(pb::CreateBookingRequest {
            client_id: ready[0].clone(),
            start_time: later.start_time,
            ..request.clone()
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    let entry = desk
        .join_waitlist(pb::JoinWaitlistRequest {
            location_id: studio.location_id.clone(),
            treatment_id: request.treatment_id.clone(),
            client_id: ready[1].clone(),
            start_time: later.start_time,
            end_time: later.end_time,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap();
    desk.cancel_booking(pb::CancelBookingRequest {
        id: bos.id.clone(),
        reason: String::new(),
    })
    .await
    .unwrap();
    let waited = std::time::Instant::now();
    let offer = loop {
        let seen = desk
            .get_waitlist_entry(pb::GetWaitlistEntryRequest {
                id: entry.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .entry
            .unwrap();
        if let Some(offer) = seen.offer {
            break offer;
        }
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(5),
            "no offer 5 s after the cancellation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let accepted = desk
        .accept_offer(pb::AcceptOfferRequest {
            id: offer.id,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(accepted.client_id, ready[1]);
    assert_eq!(accepted.start_time, later.start_time);

    // Protocols and fleet go away (with tenancy, whose answer about the
    // desk's key booking still has cached): a booking is refused
    // UNAVAILABLE within the call's deadline, never a hang, and nothing is
    // written.
    let retry_later = pb::CreateBookingRequest {
        start_time: slots.get(1).expect("a second slot").start_time,
        ..request
    };
    tenancy.server.stop().await.unwrap();
    let asked = std::time::Instant::now();
    let down = desk.create_booking(retry_later).await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(10),
        "refused within the 5 s deadline, took {:?}",
        asked.elapsed()
    );
    let listed = desk
        .list_bookings(pb::ListBookingsRequest {
            client_id: ana.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .bookings;
    assert_eq!(listed.len(), 1, "only the first booking exists");

    booking.stop_cleanly();
}

/// One chamber, one record, with the services apart: fleet (in the test's
/// server) tells the real `booking` binary about a chamber over gRPC
/// (`SyncDevice` with the service key, from fleet's outbox); booking makes
/// the resource, stops offering it while it is in maintenance and offers
/// it again after; a key that is not the service's is refused.
async fn a_chamber_registered_in_fleet_reaches_booking_run_apart(db: TestDb) {
    use recovery_peers::remote::{Peer, RemoteBooking};
    use recovery_proto::fleet::v1 as fleet_pb;
    use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;

    let clock = Arc::new(SystemClock);
    let platform = Platform::start(&db.db, clock.clone()).await;
    let fleet = recovery_fleet::Fleet::start(
        db.db.clone(),
        clock,
        Bus::default(),
        platform.directory(),
        recovery_fleet::Config::default(),
    )
    .await
    .unwrap();
    let mut services = platform.services();
    fleet.mount(&mut services);
    let server = TestServer::start(services).await;
    let service_key = platform
        .service_key(server.channel().await, "fleet and booking")
        .await;
    let studio = Studio::create(
        server.channel().await,
        &platform.operator,
        "Apart",
        "Europe/Berlin",
        &[Role::Manager, Role::FrontDesk],
    )
    .await;
    // Booking's own database: PostgreSQL when the test runs there.
    let own = match db.engine() {
        recovery_kit::Engine::Sqlite => None,
        recovery_kit::Engine::Postgres => TestDb::postgres().await,
    };
    let url = format!("http://{}", server.addr);
    let mut args = vec![
        "--tenancy-url",
        &url,
        "--protocols-url",
        &url,
        "--fleet-url",
        &url,
    ];
    if let Some(own) = &own {
        args.extend(["--database-url", own.url()]);
    }
    let booking = Daemon::start(
        env!("CARGO_BIN_EXE_booking"),
        &args,
        &[("RECOVERY_SERVICE_KEY", service_key.as_str())],
    );
    let booking_url = format!("http://{}", booking.addr);
    fleet.on_device_links(Arc::new(RemoteBooking(
        Peer::new("booking", &booking_url, &service_key).unwrap(),
    )));
    let channel = booking.channel().await;
    let mut manager = BookingServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(studio.key(Role::Manager)),
    );
    let mut machines = FleetServiceClient::with_interceptor(
        server.channel().await,
        Bearer::new(studio.key(Role::Manager)),
    );

    let device = machines
        .register_device(fleet_pb::RegisterDeviceRequest {
            device: Some(chamber_device(&studio.location_id, "Arctic", "CH-APART")),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    let relay = || async {
        let pass = fleet.outbox().pass().await.unwrap();
        assert!(!pass.stalled, "booking took the event");
    };
    relay().await;
    let resources = manager
        .list_resources(pb::ListResourcesRequest {
            location_id: studio.location_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .resources;
    assert_eq!(resources.len(), 1, "registered once, bookable");
    assert_eq!(resources[0].device_id, device.id);
    assert_eq!(resources[0].display_name, "Arctic");
    let cryo = cryo(&mut manager).await.unwrap();
    let now = jiff::Timestamp::now();
    let search = pb::SearchAvailabilityRequest {
        location_id: studio.location_id.clone(),
        treatment_id: cryo.clone(),
        start_time: Some(to_proto(now + jiff::SignedDuration::from_hours(2))),
        end_time: Some(to_proto(now + jiff::SignedDuration::from_hours(50))),
        resource_id: String::new(),
        ..Default::default()
    };
    let slots = |request: pb::SearchAvailabilityRequest| {
        let mut desk = BookingServiceClient::with_interceptor(
            channel.clone(),
            Bearer::new(studio.key(Role::FrontDesk)),
        );
        async move {
            desk.search_availability(request)
                .await
                .unwrap()
                .into_inner()
                .slots
                .len()
        }
    };
    assert!(slots(search.clone()).await > 0);
    machines
        .start_maintenance(fleet_pb::StartMaintenanceRequest {
            device_id: device.id.clone(),
            reason: "door seal".into(),
            notes: String::new(),
        })
        .await
        .unwrap();
    relay().await;
    assert_eq!(
        slots(search.clone()).await,
        0,
        "in maintenance: not offered"
    );
    machines
        .end_maintenance(fleet_pb::EndMaintenanceRequest {
            device_id: device.id.clone(),
            notes: String::new(),
        })
        .await
        .unwrap();
    relay().await;
    assert!(slots(search).await > 0, "offered again");

    // Only the platform's services sync devices.
    let denied = manager
        .sync_device(pb::SyncDeviceRequest {
            device_id: device.id.clone(),
            location_id: studio.location_id.clone(),
            kind: fleet_pb::DeviceKind::CryoChamber as i32,
            display_name: "Fake".into(),
            state: fleet_pb::DeviceState::Retired as i32,
            cold: None,
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let (status, _) = booking.terminate();
    assert!(status.success(), "booking exited with {status}");
}

recovery_kit::engine_tests!(a_chamber_registered_in_fleet_reaches_booking_run_apart);
