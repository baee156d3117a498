//! The other shape: the real `fleet` binary run on its own, next to a
//! tenancy service it reaches over gRPC for locations and for every caller's
//! key (with an operator key of its own), as in a distributed deployment.

use std::sync::Arc;

use recovery_kit::Role;
use recovery_kit::testing::{Bearer, Daemon, TestDb};
use recovery_kit::time::SystemClock;
use recovery_proto::fleet::v1 as pb;
use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use recovery_tenancy::testing::{Apart, Platform};
use tonic::Code;

fn gun(location: &str, serial: &str) -> pb::Device {
    pb::Device {
        location_id: location.into(),
        kind: pb::DeviceKind::PercussionMassager as i32,
        display_name: format!("Gun {serial}"),
        serial_number: serial.into(),
        spec: Some(pb::device::Spec::Percussion(pb::PercussionSpec {
            speed_levels: 3,
            attachments: vec![pb::Attachment::Ball as i32],
        })),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_binary_runs_apart_from_tenancy() {
    let db = TestDb::sqlite().await;
    let platform = Platform::start(&db.db, Arc::new(SystemClock)).await;
    let tenancy = Apart::serve(
        &platform,
        platform.services(),
        &[Role::Manager, Role::Staff, Role::Device],
    )
    .await;
    let (studio, other) = (&tenancy.studio, &tenancy.other);

    let fleet = Daemon::start(
        env!("CARGO_BIN_EXE_fleet"),
        &["--tenancy-url", &tenancy.url()],
        &[("RECOVERY_SERVICE_KEY", platform.operator.as_str())],
    );
    let channel = fleet.channel().await;
    let client =
        |key: &str| FleetServiceClient::with_interceptor(channel.clone(), Bearer::new(key));

    // Keys are checked by tenancy, roles by the fleet.
    let mut manager = client(studio.key(Role::Manager));
    let mut staff = client(studio.key(Role::Staff));
    let mut hub = client(studio.key(Role::Device));
    let unknown = client("rk_not-a-key")
        .list_devices(pb::ListDevicesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    let denied = staff
        .register_device(pb::RegisterDeviceRequest {
            device: Some(gun(&studio.location_id, "APART-0")),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Locations come from tenancy: the studio's own works, another's is
    // NOT_FOUND.
    let registered = manager
        .register_device(pb::RegisterDeviceRequest {
            device: Some(gun(&studio.location_id, "APART-1")),
            request_id: "apart-gun".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert_eq!(registered.tenant_id, studio.tenant_id);
    let foreign = manager
        .register_device(pb::RegisterDeviceRequest {
            device: Some(gun(&other.location_id, "APART-2")),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    let foreign = staff
        .watch_devices(pb::WatchDevicesRequest {
            location_id: other.location_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);

    // The hub streams a reading; staff see it on the device and in the
    // history.
    let accepted = hub
        .report_telemetry(tokio_stream::iter([pb::ReportTelemetryRequest {
            reading: Some(pb::TelemetryReading {
                device_id: registered.id.clone(),
                battery_percent: Some(77),
                charging: true,
                ..Default::default()
            }),
        }]))
        .await
        .unwrap()
        .into_inner()
        .accepted;
    assert_eq!(accepted, 1);
    let seen = staff
        .get_device(pb::GetDeviceRequest {
            id: registered.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert_eq!(seen.state(), pb::DeviceState::Charging);
    assert_eq!(seen.last_reading.unwrap().battery_percent, Some(77));
    let history = staff
        .list_telemetry(pb::ListTelemetryRequest {
            device_id: registered.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.readings.len(), 1);
    assert!(history.next_page_token.is_empty());

    fleet.stop_cleanly();
}
