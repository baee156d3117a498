//! Shutdown as an orchestrator sees it, on the real `recoveryd`: SIGTERM
//! while staff tablets watch the schedule and the device board and a hub's
//! telemetry stream is in flight. The watches end (cleanly, so the tablets
//! reconnect elsewhere), the hub's call is still answered, and the process
//! exits 0 well inside its grace period. A call that outlives the grace
//! period is cut, and the exit says so (status 1 and an error line), never
//! a clean stop.

use std::time::{Duration, Instant};

use recovery_kit::testing::{Bearer, Daemon};
use recovery_proto::booking::v1 as bk;
use recovery_proto::fleet::v1 as fl;
use recovery_proto::tenancy::v1 as tn;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

const OPERATOR_KEY: &str = "rk_shutdown-operator-key-for-tests-only";
/// The grace period of the clean case: the drain must take far less.
const GRACE_SECS: u64 = 20;
/// How long a watch may take to end after SIGTERM before the test calls it
/// stuck.
const END_BOUND: Duration = Duration::from_secs(10);

struct Studio {
    manager: String,
    device: String,
    location_id: String,
}

fn start(grace_secs: u64) -> Daemon {
    Daemon::start(
        env!("CARGO_BIN_EXE_recoveryd"),
        &["--shutdown-grace-secs", &grace_secs.to_string()],
        &[("RECOVERY_BOOTSTRAP_KEY", OPERATOR_KEY)],
    )
}

async fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("an address")
        .connect()
        .await
        .expect("connect")
}

async fn studio(channel: &Channel) -> Studio {
    let mut operator = tn::tenancy_service_client::TenancyServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(OPERATOR_KEY),
    );
    let tenant = operator
        .create_tenant(tn::CreateTenantRequest {
            tenant: Some(tn::Tenant {
                display_name: "Shutdown Studio".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateTenant")
        .into_inner()
        .tenant
        .expect("a tenant");
    let location = operator
        .create_location(tn::CreateLocationRequest {
            tenant_id: tenant.id.clone(),
            location: Some(tn::Location {
                display_name: "Harbour".into(),
                time_zone: "Europe/Berlin".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateLocation")
        .into_inner()
        .location
        .expect("a location");
    let key = |role: tn::Role| {
        let mut operator = operator.clone();
        let tenant_id = tenant.id.clone();
        async move {
            operator
                .create_api_key(tn::CreateApiKeyRequest {
                    tenant_id,
                    role: role.into(),
                    display_name: "shutdown test".into(),
                    request_id: String::new(),
                })
                .await
                .expect("CreateApiKey")
                .into_inner()
                .secret
        }
    };
    Studio {
        manager: key(tn::Role::Manager).await,
        device: key(tn::Role::Device).await,
        location_id: location.id,
    }
}

/// Opens the schedule and the device board of the location, each awaited
/// to its first snapshot; the returned receiver gets the name of each watch
/// when it ends, with how it ended.
async fn watch_both(
    channel: &Channel,
    studio: &Studio,
) -> mpsc::UnboundedReceiver<(&'static str, Result<(), tonic::Status>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut booking = bk::booking_service_client::BookingServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(&studio.manager),
    );
    let mut schedule = booking
        .watch_schedule(bk::WatchScheduleRequest {
            location_id: studio.location_id.clone(),
            day: "2026-12-01".into(),
        })
        .await
        .expect("WatchSchedule")
        .into_inner();
    assert!(matches!(
        schedule.message().await.expect("a snapshot"),
        Some(bk::WatchScheduleResponse {
            event: Some(bk::watch_schedule_response::Event::Snapshot(_))
        })
    ));
    let mut fleet = fl::fleet_service_client::FleetServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(&studio.manager),
    );
    let mut board = fleet
        .watch_devices(fl::WatchDevicesRequest {
            location_id: studio.location_id.clone(),
        })
        .await
        .expect("WatchDevices")
        .into_inner();
    assert!(
        board.message().await.expect("a snapshot").is_some(),
        "the board starts with a snapshot"
    );
    let schedule_done = tx.clone();
    tokio::spawn(async move {
        let ended = loop {
            match schedule.message().await {
                Ok(Some(_)) => {}
                Ok(None) => break Ok(()),
                Err(status) => break Err(status),
            }
        };
        let _ = schedule_done.send(("WatchSchedule", ended));
    });
    tokio::spawn(async move {
        let ended = loop {
            match board.message().await {
                Ok(Some(_)) => {}
                Ok(None) => break Ok(()),
                Err(status) => break Err(status),
            }
        };
        let _ = tx.send(("WatchDevices", ended));
    });
    rx
}

/// A hub's telemetry stream, open and in flight; closing the sender ends
/// the hub's side, and the handle yields the server's answer.
fn hub_stream(
    channel: &Channel,
    studio: &Studio,
) -> (
    mpsc::Sender<fl::ReportTelemetryRequest>,
    tokio::task::JoinHandle<Result<fl::ReportTelemetryResponse, tonic::Status>>,
) {
    let (tx, rx) = mpsc::channel(4);
    let mut hub = fl::fleet_service_client::FleetServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(&studio.device),
    );
    let call = tokio::spawn(async move {
        hub.report_telemetry(ReceiverStream::new(rx))
            .await
            .map(tonic::Response::into_inner)
    });
    (tx, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_watches_finishes_calls_and_exits_clean_inside_the_grace_period() {
    let daemon = start(GRACE_SECS);
    let channel = channel(&daemon.addr).await;
    let studio = studio(&channel).await;
    let mut ended = watch_both(&channel, &studio).await;
    let (hub, answer) = hub_stream(&channel, &studio);
    // The hub's call is in the server before the signal: a call the server
    // has accepted (the device key checked) is one it must finish.
    let mut probe = fl::fleet_service_client::FleetServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(&studio.manager),
    );
    probe
        .list_devices(fl::ListDevicesRequest {
            location_id: studio.location_id.clone(),
            ..Default::default()
        })
        .await
        .expect("the server answers before the signal");

    let signalled = Instant::now();
    let terminated = tokio::task::spawn_blocking(move || daemon.terminate());

    // Both watches end, cleanly, soon after the signal.
    let mut names = Vec::new();
    for _ in 0..2 {
        let (name, how) = tokio::time::timeout(END_BOUND, ended.recv())
            .await
            .expect("a watch still open after SIGTERM")
            .expect("a watch's end");
        assert!(how.is_ok(), "{name} ended with {how:?}");
        names.push(name);
    }
    names.sort_unstable();
    assert_eq!(names, ["WatchDevices", "WatchSchedule"]);

    // The hub finishes its call after the signal, and is answered.
    drop(hub);
    let answered = tokio::time::timeout(END_BOUND, answer)
        .await
        .expect("the hub's call is answered")
        .expect("the call's task")
        .expect("the in-flight call completes after SIGTERM");
    assert_eq!(answered.accepted, 0);

    let (status, said) = terminated.await.expect("terminate");
    let took = signalled.elapsed();
    assert!(status.success(), "recoveryd exited with {status}: {said:?}");
    assert!(
        took < Duration::from_secs(GRACE_SECS / 2),
        "the drain took {took:?} of a {GRACE_SECS} s grace period"
    );
    assert!(
        said.iter()
            .any(|l| l.contains("stopped: every call finished")),
        "{said:?}"
    );
    assert!(
        !said.iter().any(|l| l.contains("grace period over")),
        "{said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_outlives_the_grace_period_is_cut_and_the_exit_says_so() {
    let grace = 2;
    let daemon = start(grace);
    let channel = channel(&daemon.addr).await;
    let studio = studio(&channel).await;
    // A hub that never closes its stream.
    let (hub, answer) = hub_stream(&channel, &studio);
    let mut probe = fl::fleet_service_client::FleetServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(&studio.manager),
    );
    probe
        .list_devices(fl::ListDevicesRequest {
            location_id: studio.location_id.clone(),
            ..Default::default()
        })
        .await
        .expect("the server answers before the signal");

    let signalled = Instant::now();
    let (status, said) = tokio::task::spawn_blocking(move || daemon.terminate())
        .await
        .expect("terminate");
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(grace),
        "exited after {took:?}, before its grace period"
    );
    assert_eq!(status.code(), Some(1), "{said:?}");
    assert!(
        said.iter().any(|l| l.contains("grace period over")),
        "{said:?}"
    );
    assert!(
        !said
            .iter()
            .any(|l| l.contains("stopped: every call finished")),
        "{said:?}"
    );
    // The hub's call did not succeed: it was cut.
    drop(hub);
    let cut = tokio::time::timeout(END_BOUND, answer)
        .await
        .expect("the cut call returns")
        .expect("the call's task");
    assert!(cut.is_err(), "a cut call answered {cut:?}");
}
