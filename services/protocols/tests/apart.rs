//! The other shape: the real `protocols` binary run on its own, next to a
//! tenancy service it reaches over gRPC for locations (and their time zones)
//! and for every caller's key (with an operator key of its own), as in a
//! distributed deployment.

// Prost's optional fields want Options.
#![allow(clippy::unnecessary_wraps)]

use std::sync::Arc;

use jiff::Timestamp;
use recovery_kit::Role;
use recovery_kit::testing::{Bearer, Daemon, TestDb};
use recovery_kit::time::{SystemClock, to_proto};
use recovery_proto::protocols::v1 as pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_tenancy::testing::{Apart, Platform};
use tonic::Code;

fn at(text: &str) -> Option<prost_types::Timestamp> {
    Some(to_proto(text.parse::<Timestamp>().unwrap()))
}

fn three_minutes() -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: 180,
        nanos: 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocols_binary_runs_apart_from_tenancy() {
    let db = TestDb::sqlite().await;
    let platform = Platform::start(&db.db, Arc::new(SystemClock)).await;
    let tenancy = Apart::serve(
        &platform,
        platform.services(),
        &[Role::Manager, Role::FrontDesk],
    )
    .await;
    let (studio, other) = (&tenancy.studio, &tenancy.other);

    // No booking service in this test: an erasure would wait in protocols'
    // outbox until one answers at --booking-url.
    let protocols = Daemon::start(
        env!("CARGO_BIN_EXE_protocols"),
        &[
            "--tenancy-url",
            &tenancy.url(),
            "--booking-url",
            "http://127.0.0.1:9",
        ],
        &[("RECOVERY_SERVICE_KEY", platform.operator.as_str())],
    );
    let channel = protocols.channel().await;
    let client =
        |key: &str| ProtocolServiceClient::with_interceptor(channel.clone(), Bearer::new(key));

    // Keys are checked by tenancy, roles by protocols.
    let unknown = client("rk_not-a-key")
        .list_clients(pb::ListClientsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    let mut desk = client(studio.key(Role::FrontDesk));
    let ana = desk
        .create_client(pb::CreateClientRequest {
            client: Some(pb::Client {
                given_name: "Ana".into(),
                family_name: "Lindqvist".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    let denied = desk
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // One cryo session at 21:00 in Berlin (20:00 UTC) on 10 January.
    let wbc = pb::Modality::WholeBodyCryotherapy as i32;
    desk.record_session(pb::RecordSessionRequest {
        session: Some(pb::RecoverySession {
            client_id: ana.id.clone(),
            modality: wbc,
            start_time: at("2026-01-10T20:00:00Z"),
            duration: three_minutes(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .unwrap();

    // The daily limit counts Berlin days, whose zone only tenancy knows:
    // 22:30 UTC is still the 10th there, 23:30 UTC already the 11th (in UTC
    // both would be the 10th).
    let evaluate = |location_id: &str, start: &str| pb::EvaluateSessionRequest {
        client_id: ana.id.clone(),
        modality: wbc,
        start_time: at(start),
        duration: three_minutes(),
        location_id: location_id.to_owned(),
        booked: Vec::new(),
    };
    let refusals = |e: pb::EvaluateSessionResponse| -> Vec<String> {
        e.evaluation
            .unwrap()
            .refusals
            .into_iter()
            .map(|f| f.reason)
            .collect()
    };
    let same_day = desk
        .evaluate_session(evaluate(&studio.location_id, "2026-01-10T22:30:00Z"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        refusals(same_day).contains(&"DAILY_LIMIT_REACHED".to_owned()),
        "23:30 in Berlin is the day of the first session"
    );
    let next_day = desk
        .evaluate_session(evaluate(&studio.location_id, "2026-01-10T23:30:00Z"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !refusals(next_day).contains(&"DAILY_LIMIT_REACHED".to_owned()),
        "00:30 in Berlin is the next day"
    );

    // Another tenant's location is not found.
    let foreign = desk
        .evaluate_session(evaluate(&other.location_id, "2026-01-10T23:30:00Z"))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);

    protocols.stop_cleanly();
}
