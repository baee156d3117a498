//! The fleet through real gRPC, mounted with tenancy (real keys, real
//! locations) as in `recoveryd`; every test on SQLite and on PostgreSQL.

// A test tells one story from the studio floor, however long.
#![allow(clippy::too_many_lines)]

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use recovery_fleet::{Config, Fleet};
use recovery_kit::Engine;
use recovery_kit::Role;
use recovery_kit::db::is_exclusion_violation;
use recovery_kit::events::Bus;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::{Clock as _, ManualClock, to_proto};
use recovery_proto::fleet::v1 as pb;
use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use recovery_tenancy::testing::{self as tenancy, Platform};
use sqlx::Row as _;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

type Client = FleetServiceClient<InterceptedService<Channel, Bearer>>;

/// The offline threshold of the tests.
const OFFLINE_AFTER: i64 = 600;
/// Readings kept per device in the tests.
const HISTORY: u32 = 1000;

/// One studio: its location and a key per role.
struct Studio {
    location: String,
    manager: String,
    staff: String,
    hub: String,
}

struct Env {
    db: TestDb,
    server: TestServer,
    clock: Arc<ManualClock>,
    fleet: Arc<Fleet>,
    a: Studio,
    b: Studio,
}

async fn studio(channel: Channel, operator: &str, name: &str) -> Studio {
    let made = tenancy::Studio::create(
        channel,
        operator,
        name,
        "Europe/Berlin",
        &[Role::Manager, Role::Staff, Role::Device],
    )
    .await;
    Studio {
        location: made.location_id.clone(),
        manager: made.key(Role::Manager).to_owned(),
        staff: made.key(Role::Staff).to_owned(),
        hub: made.key(Role::Device).to_owned(),
    }
}

async fn env(db: TestDb) -> Env {
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
    Env {
        db,
        server,
        clock,
        fleet,
        a,
        b,
    }
}

impl Env {
    async fn client(&self, key: &str) -> Client {
        FleetServiceClient::with_interceptor(self.server.channel().await, Bearer::new(key))
    }

    fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

fn gun(location: &str, serial: &str, heads: &[pb::Attachment]) -> pb::Device {
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

async fn register(client: &mut Client, device: pb::Device) -> pb::Device {
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

fn reading(device_id: &str, battery: u32, charging: bool) -> pb::ReportTelemetryRequest {
    pb::ReportTelemetryRequest {
        reading: Some(pb::TelemetryReading {
            device_id: device_id.into(),
            battery_percent: Some(battery),
            charging,
            ..Default::default()
        }),
    }
}

async fn report(
    client: &mut Client,
    readings: Vec<pb::ReportTelemetryRequest>,
) -> Result<i64, Status> {
    client
        .report_telemetry(tokio_stream::iter(readings))
        .await
        .map(|r| r.into_inner().accepted)
}

fn reserve_by_id(device_id: &str, start: Timestamp, minutes: i64) -> pb::ReserveDeviceRequest {
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

fn reserve_fitting(
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

fn fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
        .unwrap_or_default()
}

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

fn refused(result: Result<impl std::fmt::Debug, Status>, code: Code, why: &str) {
    let status = result.expect_err("expected a refusal");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(&status), why, "{status:?}");
}

async fn device(client: &mut Client, id: &str) -> pb::Device {
    client
        .get_device(pb::GetDeviceRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap()
}

fn unit<T>(r: Result<tonic::Response<T>, Status>) -> Result<tonic::Response<()>, Status> {
    r.map(|_| tonic::Response::new(()))
}

fn state(device: &pb::Device) -> pb::DeviceState {
    device.state()
}

async fn reservation_count(env: &Env) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM device_reservations")
        .fetch_one(env.db.db.reader())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

// ---------------------------------------------------------------------------

async fn fifty_clients_race_for_one_gun_and_one_wins(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let gun = register(
        &mut manager,
        gun(&env.a.location, "HV-1", &[pb::Attachment::Fork]),
    )
    .await;
    let start = env.now() + SignedDuration::from_hours(1);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut staff = env.client(&env.a.staff).await;
        // Windows a second apart, 30 minutes long: every two overlap.
        let request = reserve_by_id(&gun.id, start + SignedDuration::from_secs(i), 30);
        tasks.push(tokio::spawn(
            async move { staff.reserve_device(request).await },
        ));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(reason(&status), "DEVICE_UNAVAILABLE");
            }
        }
    }
    assert_eq!(won, 1, "exactly one reservation wins");
    assert_eq!(reservation_count(&env).await, 1);
    if env.db.engine() == Engine::Postgres {
        // The database itself refuses an overlapping hold, whatever the code.
        let error = sqlx::query(
            "INSERT INTO device_reservations (id, tenant_id, device_id, location_id, start_us, \
             end_us, state, usage_seconds, create_time, update_time, created_by) \
             SELECT 'direct', tenant_id, device_id, location_id, start_us + 1, end_us + 1, \
             'held', 0, 0, 0, 'test' FROM device_reservations",
        )
        .execute(env.db.db.reader())
        .await
        .unwrap_err();
        assert!(is_exclusion_violation(&error), "{error}");
    }

    // A window after the held one is free.
    let mut staff = env.client(&env.a.staff).await;
    staff
        .reserve_device(reserve_by_id(
            &gun.id,
            start + SignedDuration::from_hours(1),
            30,
        ))
        .await
        .unwrap();
}

async fn racing_requirements_get_one_gun_each(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut hub = env.client(&env.a.hub).await;
    let mut ids = Vec::new();
    for serial in ["R-1", "R-2", "R-3"] {
        let g = register(
            &mut manager,
            gun(&env.a.location, serial, &[pb::Attachment::Fork]),
        )
        .await;
        report(&mut hub, vec![reading(&g.id, 90, false)])
            .await
            .unwrap();
        ids.push(g.id);
    }
    let start = env.now() + SignedDuration::from_hours(1);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut staff = env.client(&env.a.staff).await;
        let request = reserve_fitting(&env.a.location, pb::Attachment::Fork, 30, start);
        tasks.push(tokio::spawn(
            async move { staff.reserve_device(request).await },
        ));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(r) => winners.push(r.into_inner().device.unwrap().id),
            Err(status) => assert_eq!(reason(&status), "DEVICE_UNAVAILABLE", "{status:?}"),
        }
    }
    winners.sort();
    ids.sort();
    assert_eq!(winners, ids, "each gun is reserved exactly once");
}

async fn requirements_pick_a_charged_least_used_gun_with_the_attachment(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let mut hub = env.client(&env.a.hub).await;
    let loc = &env.a.location;
    let worn = register(&mut manager, gun(loc, "WORN", &[pb::Attachment::Fork])).await;
    let flat = register(&mut manager, gun(loc, "FLAT", &[pb::Attachment::Fork])).await;
    let ball = register(&mut manager, gun(loc, "BALL", &[pb::Attachment::Ball])).await;
    let fresh = register(
        &mut manager,
        gun(loc, "FRESH", &[pb::Attachment::Ball, pb::Attachment::Fork]),
    )
    .await;
    report(
        &mut hub,
        vec![
            reading(&worn.id, 95, false),
            reading(&flat.id, 29, false),
            reading(&ball.id, 100, false),
            reading(&fresh.id, 80, false),
        ],
    )
    .await
    .unwrap();
    // The worn gun has an hour of use behind it.
    let r = staff
        .reserve_device(reserve_by_id(&worn.id, env.now(), 60))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    staff
        .check_out_device(pb::CheckOutDeviceRequest {
            reservation_id: r.id.clone(),
        })
        .await
        .unwrap();
    env.advance(SignedDuration::from_mins(60));
    staff
        .check_in_device(pb::CheckInDeviceRequest {
            reservation_id: r.id,
            settings: None,
        })
        .await
        .unwrap();
    report(
        &mut hub,
        vec![
            reading(&worn.id, 95, false),
            reading(&flat.id, 29, false),
            reading(&ball.id, 100, false),
            reading(&fresh.id, 80, false),
        ],
    )
    .await
    .unwrap();

    let start = env.now() + SignedDuration::from_mins(30);
    let first = staff
        .reserve_device(reserve_fitting(loc, pb::Attachment::Fork, 30, start))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.device.unwrap().id, fresh.id, "least used first");
    let second = staff
        .reserve_device(reserve_fitting(loc, pb::Attachment::Fork, 30, start))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.device.unwrap().id, worn.id);
    // Left: a gun below the floor and one without a fork.
    refused(
        staff
            .reserve_device(reserve_fitting(loc, pb::Attachment::Fork, 30, start))
            .await,
        Code::FailedPrecondition,
        "DEVICE_UNAVAILABLE",
    );
    // A higher floor rules out the fresh gun (80%): the worn one (95%) is
    // taken although it is used more.
    let later = start + SignedDuration::from_hours(2);
    let picked = staff
        .reserve_device(reserve_fitting(loc, pb::Attachment::Fork, 85, later))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(picked.device.unwrap().id, worn.id);
    refused(
        staff
            .reserve_device(reserve_fitting(loc, pb::Attachment::Fork, 85, later))
            .await,
        Code::FailedPrecondition,
        "DEVICE_UNAVAILABLE",
    );
    // By id, a gun whose battery cannot last the window is refused too.
    refused(
        staff
            .reserve_device(reserve_by_id(&flat.id, later, 60))
            .await,
        Code::FailedPrecondition,
        "DEVICE_UNAVAILABLE",
    );
}

async fn check_out_and_in_record_usage_and_settings(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let g = register(
        &mut manager,
        gun(
            &env.a.location,
            "USE-1",
            &[pb::Attachment::Fork, pb::Attachment::Ball],
        ),
    )
    .await;
    let r = staff
        .reserve_device(reserve_by_id(
            &g.id,
            env.now() + SignedDuration::from_mins(10),
            30,
        ))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!(r.state(), pb::ReservationState::Held);
    let out = staff
        .check_out_device(pb::CheckOutDeviceRequest {
            reservation_id: r.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(out.device.as_ref().unwrap()), pb::DeviceState::InUse);
    refused(
        staff
            .check_out_device(pb::CheckOutDeviceRequest {
                reservation_id: r.id.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "RESERVATION_NOT_ACTIVE",
    );
    env.advance(SignedDuration::from_mins(20));
    // Its hub keeps reporting (without it the gun would count as offline).
    report(
        &mut env.client(&env.a.hub).await,
        vec![reading(&g.id, 60, false)],
    )
    .await
    .unwrap();
    // Settings the gun does not have: refused, nothing recorded.
    let bad = staff
        .check_in_device(pb::CheckInDeviceRequest {
            reservation_id: r.id.clone(),
            settings: Some(pb::UsageSettings {
                speed_level: 5,
                attachment: pb::Attachment::Cushion as i32,
                pressure_level: 2,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&bad),
        [
            "settings.speed_level",
            "settings.attachment",
            "settings.pressure_level"
        ]
    );
    assert_eq!(
        state(&device(&mut staff, &g.id).await),
        pb::DeviceState::InUse
    );

    let back = staff
        .check_in_device(pb::CheckInDeviceRequest {
            reservation_id: r.id.clone(),
            settings: Some(pb::UsageSettings {
                speed_level: 3,
                attachment: pb::Attachment::Fork as i32,
                pressure_level: 0,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let r = back.reservation.unwrap();
    assert_eq!(r.state(), pb::ReservationState::Completed);
    assert_eq!(r.usage_seconds, 20 * 60);
    let settings = r.settings.unwrap();
    assert_eq!(settings.speed_level, 3);
    assert_eq!(settings.attachment(), pb::Attachment::Fork);
    let d = back.device.unwrap();
    assert_eq!(state(&d), pb::DeviceState::Available);
    assert_eq!(d.usage_seconds, 1200);
    assert_eq!(d.usage_seconds_since_service, 1200);
    let read = staff
        .get_reservation(pb::GetReservationRequest { id: r.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!(read.usage_seconds, 1200);
    refused(
        staff
            .release_reservation(pb::ReleaseReservationRequest {
                reservation_id: r.id,
            })
            .await,
        Code::FailedPrecondition,
        "RESERVATION_NOT_ACTIVE",
    );
}

async fn every_state_move_legal_and_illegal(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let mut hub = env.client(&env.a.hub).await;
    let g = register(
        &mut manager,
        gun(&env.a.location, "SM-1", &[pb::Attachment::Ball]),
    )
    .await;
    assert_eq!(state(&g), pb::DeviceState::Available);
    assert!(g.ready);
    let illegal = |r: Result<tonic::Response<()>, Status>, from: &str, to: &str| {
        let status = r.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(reason(&status), "ILLEGAL_TRANSITION");
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.metadata["from"], from);
        assert_eq!(info.metadata["to"], to);
    };
    let start_m = |id: &str| pb::StartMaintenanceRequest {
        device_id: id.into(),
        reason: "head wobbles".into(),
        notes: String::new(),
    };
    let end_m = |id: &str| pb::EndMaintenanceRequest {
        device_id: id.into(),
        notes: "replaced bearing".into(),
    };

    // available → end maintenance: illegal.
    illegal(
        unit(manager.end_maintenance(end_m(&g.id)).await),
        "available",
        "available",
    );
    // available → charging → available (hub).
    report(&mut hub, vec![reading(&g.id, 50, true)])
        .await
        .unwrap();
    assert_eq!(
        state(&device(&mut staff, &g.id).await),
        pb::DeviceState::Charging
    );
    report(&mut hub, vec![reading(&g.id, 100, false)])
        .await
        .unwrap();
    assert_eq!(
        state(&device(&mut staff, &g.id).await),
        pb::DeviceState::Available
    );
    // available → reserved (a window under way) → released → available.
    let r = staff
        .reserve_device(reserve_by_id(&g.id, env.now(), 30))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(r.device.as_ref().unwrap()), pb::DeviceState::Reserved);
    let r = r.reservation.unwrap();
    // reserved → maintenance, reserved → retired: illegal.
    illegal(
        unit(manager.start_maintenance(start_m(&g.id)).await),
        "reserved",
        "maintenance",
    );
    illegal(
        unit(
            manager
                .retire_device(pb::RetireDeviceRequest { id: g.id.clone() })
                .await,
        ),
        "reserved",
        "retired",
    );
    // reserved → in use → available.
    staff
        .check_out_device(pb::CheckOutDeviceRequest {
            reservation_id: r.id.clone(),
        })
        .await
        .unwrap();
    // in use → maintenance, retired: illegal.
    illegal(
        unit(manager.start_maintenance(start_m(&g.id)).await),
        "in_use",
        "maintenance",
    );
    illegal(
        unit(
            manager
                .retire_device(pb::RetireDeviceRequest { id: g.id.clone() })
                .await,
        ),
        "in_use",
        "retired",
    );
    staff
        .check_in_device(pb::CheckInDeviceRequest {
            reservation_id: r.id.clone(),
            settings: None,
        })
        .await
        .unwrap();
    // available → maintenance; there, check-out and a second start are illegal.
    let later = staff
        .reserve_device(reserve_by_id(
            &g.id,
            env.now() + SignedDuration::from_hours(1),
            30,
        ))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    let m = manager
        .start_maintenance(start_m(&g.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        state(m.device.as_ref().unwrap()),
        pb::DeviceState::Maintenance
    );
    assert!(!m.device.unwrap().ready);
    illegal(
        unit(manager.start_maintenance(start_m(&g.id)).await),
        "maintenance",
        "maintenance",
    );
    env.advance(SignedDuration::from_mins(55));
    illegal(
        unit(
            staff
                .check_out_device(pb::CheckOutDeviceRequest {
                    reservation_id: later.id.clone(),
                })
                .await,
        ),
        "maintenance",
        "in_use",
    );
    // New reservations are refused while in maintenance.
    refused(
        staff
            .reserve_device(reserve_by_id(
                &g.id,
                env.now() + SignedDuration::from_hours(3),
                30,
            ))
            .await,
        Code::FailedPrecondition,
        "DEVICE_UNAVAILABLE",
    );
    // Readings do not take it out of maintenance.
    report(&mut hub, vec![reading(&g.id, 100, true)])
        .await
        .unwrap();
    assert_eq!(
        state(&device(&mut staff, &g.id).await),
        pb::DeviceState::Maintenance
    );
    // maintenance → available, usage since service reset.
    let ended = manager
        .end_maintenance(end_m(&g.id))
        .await
        .unwrap()
        .into_inner();
    let d = ended.device.unwrap();
    assert_eq!(d.usage_seconds_since_service, 0);
    assert!(d.last_service_time.is_some());
    assert!(ended.record.unwrap().end_time.is_some());
    // The hub said charging: a reading during maintenance is kept, and the
    // device is available (stored) until the next reading.
    assert_eq!(state(&d), pb::DeviceState::Available);
    // maintenance → retired is legal; retired is final.
    manager.start_maintenance(start_m(&g.id)).await.unwrap();
    let retired = manager
        .retire_device(pb::RetireDeviceRequest { id: g.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert_eq!(state(&retired), pb::DeviceState::Retired);
    assert!(retired.retire_time.is_some());
    illegal(
        unit(manager.end_maintenance(end_m(&g.id)).await),
        "retired",
        "available",
    );
    illegal(
        unit(manager.start_maintenance(start_m(&g.id)).await),
        "retired",
        "maintenance",
    );
    illegal(
        unit(
            manager
                .retire_device(pb::RetireDeviceRequest { id: g.id.clone() })
                .await,
        ),
        "retired",
        "retired",
    );
    refused(
        staff
            .reserve_device(reserve_by_id(
                &g.id,
                env.now() + SignedDuration::from_hours(1),
                30,
            ))
            .await,
        Code::FailedPrecondition,
        "DEVICE_UNAVAILABLE",
    );
    let log = staff
        .list_maintenance_records(pb::ListMaintenanceRecordsRequest {
            device_id: g.id.clone(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(log.len(), 2);
    assert!(
        log[0].end_time.is_none(),
        "newest first: still open at retirement"
    );
    assert_eq!(log[1].notes, "replaced bearing");

    // offline → maintenance and offline → retired are legal.
    let quiet = register(
        &mut manager,
        gun(&env.a.location, "SM-2", &[pb::Attachment::Ball]),
    )
    .await;
    env.advance(SignedDuration::from_secs(OFFLINE_AFTER + 1));
    assert_eq!(
        state(&device(&mut staff, &quiet.id).await),
        pb::DeviceState::Offline
    );
    refused(
        staff
            .reserve_device(reserve_by_id(&quiet.id, env.now(), 30))
            .await,
        Code::FailedPrecondition,
        "DEVICE_UNAVAILABLE",
    );
    manager.start_maintenance(start_m(&quiet.id)).await.unwrap();
    manager.end_maintenance(end_m(&quiet.id)).await.unwrap();
    assert_eq!(
        state(&device(&mut staff, &quiet.id).await),
        pb::DeviceState::Offline
    );
    let gone = manager
        .retire_device(pb::RetireDeviceRequest {
            id: quiet.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert_eq!(state(&gone), pb::DeviceState::Retired);
}

async fn silent_devices_go_offline_by_the_clock(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let mut hub = env.client(&env.a.hub).await;
    let g = register(
        &mut manager,
        gun(&env.a.location, "OFF-1", &[pb::Attachment::Ball]),
    )
    .await;
    report(&mut hub, vec![reading(&g.id, 70, false)])
        .await
        .unwrap();
    env.advance(SignedDuration::from_secs(OFFLINE_AFTER - 1));
    assert_eq!(
        state(&device(&mut staff, &g.id).await),
        pb::DeviceState::Available
    );
    env.advance(SignedDuration::from_secs(2));
    let d = device(&mut staff, &g.id).await;
    assert_eq!(state(&d), pb::DeviceState::Offline);
    assert!(!d.ready);
    let offline = staff
        .list_devices(pb::ListDevicesRequest {
            state: pb::DeviceState::Offline as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(offline.len(), 1);

    // The sweep tells the board.
    let mut board = staff
        .watch_devices(pb::WatchDevicesRequest {
            location_id: env.a.location.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = board.message().await.unwrap().unwrap();
    assert!(matches!(
        first.event,
        Some(pb::watch_devices_response::Event::Snapshot(_))
    ));
    assert_eq!(env.fleet.sweep_offline().await.unwrap(), 1);
    assert_eq!(env.fleet.sweep_offline().await.unwrap(), 0, "once");
    let Some(pb::watch_devices_response::Event::Device(changed)) =
        board.message().await.unwrap().unwrap().event
    else {
        panic!("expected a change");
    };
    assert_eq!(state(&changed), pb::DeviceState::Offline);

    // A reading brings it back.
    report(&mut hub, vec![reading(&g.id, 69, false)])
        .await
        .unwrap();
    assert_eq!(
        state(&device(&mut staff, &g.id).await),
        pb::DeviceState::Available
    );
}

async fn ten_thousand_readings_are_stored_and_bounded(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let mut hub = env.client(&env.a.hub).await;
    let g = register(
        &mut manager,
        gun(&env.a.location, "TEL-1", &[pb::Attachment::Ball]),
    )
    .await;
    let base = env.now() - SignedDuration::from_hours(3);
    let readings: Vec<_> = (0..10_000u32)
        .map(|i| pb::ReportTelemetryRequest {
            reading: Some(pb::TelemetryReading {
                device_id: g.id.clone(),
                battery_percent: Some(100 - i / 100),
                charging: false,
                temperature_celsius: Some(30.0),
                firmware_version: "2.1.0".into(),
                reading_time: Some(to_proto(base + SignedDuration::from_secs(i.into()))),
            }),
        })
        .collect();
    assert_eq!(report(&mut hub, readings).await.unwrap(), 10_000);
    let stored: i64 = sqlx::query("SELECT COUNT(*) AS n FROM device_readings WHERE device_id = $1")
        .bind(&g.id)
        .fetch_one(env.db.db.reader())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(stored, i64::from(HISTORY));
    // The whole history in two pages, newest first, each reading once.
    let mut history = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = staff
            .list_telemetry(pb::ListTelemetryRequest {
                device_id: g.id.clone(),
                page_size: 500,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        history.extend(page.readings);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(
        pages, 2,
        "1000 readings, 500 a page: the second page is the last"
    );
    assert_eq!(history.len(), 1000);
    let times: Vec<_> = history
        .iter()
        .map(|r| recovery_kit::time::from_proto(&r.reading_time.unwrap()).unwrap())
        .collect();
    let expected: Vec<_> = (9_000..10_000i64)
        .rev()
        .map(|i| base + SignedDuration::from_secs(i))
        .collect();
    assert_eq!(times, expected);
    let d = device(&mut staff, &g.id).await;
    assert_eq!(d.last_reading.unwrap().battery_percent, Some(1));
    assert_eq!(d.firmware_version, "2.1.0");
}

async fn another_tenants_devices_are_not_found(db: TestDb) {
    let env = env(db).await;
    let mut manager_a = env.client(&env.a.manager).await;
    let g = register(
        &mut manager_a,
        gun(&env.a.location, "MINE", &[pb::Attachment::Ball]),
    )
    .await;
    let mut staff_a = env.client(&env.a.staff).await;
    let r = staff_a
        .reserve_device(reserve_by_id(&g.id, env.now(), 30))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    let mut manager_b = env.client(&env.b.manager).await;
    let mut staff_b = env.client(&env.b.staff).await;
    let mut hub_b = env.client(&env.b.hub).await;
    let nf = |s: Status| assert_eq!(s.code(), Code::NotFound, "{s:?}");
    nf(staff_b
        .get_device(pb::GetDeviceRequest { id: g.id.clone() })
        .await
        .unwrap_err());
    nf(staff_b
        .reserve_device(reserve_by_id(&g.id, env.now(), 30))
        .await
        .unwrap_err());
    nf(staff_b
        .check_out_device(pb::CheckOutDeviceRequest {
            reservation_id: r.id.clone(),
        })
        .await
        .unwrap_err());
    nf(staff_b
        .get_reservation(pb::GetReservationRequest { id: r.id.clone() })
        .await
        .unwrap_err());
    nf(manager_b
        .start_maintenance(pb::StartMaintenanceRequest {
            device_id: g.id.clone(),
            reason: "not mine".into(),
            notes: String::new(),
        })
        .await
        .unwrap_err());
    nf(manager_b
        .retire_device(pb::RetireDeviceRequest { id: g.id.clone() })
        .await
        .unwrap_err());
    nf(report(&mut hub_b, vec![reading(&g.id, 10, false)])
        .await
        .unwrap_err());
    // Nor their location: registering there, watching it, picking from it.
    nf(register_err(
        &mut manager_b,
        gun(&env.a.location, "X", &[pb::Attachment::Ball]),
    )
    .await);
    nf(staff_b
        .reserve_device(reserve_fitting(
            &env.a.location,
            pb::Attachment::Ball,
            0,
            env.now(),
        ))
        .await
        .unwrap_err());
    nf(staff_b
        .watch_devices(pb::WatchDevicesRequest {
            location_id: env.a.location.clone(),
        })
        .await
        .unwrap_err());
    let listed = staff_b
        .list_devices(pb::ListDevicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert!(listed.is_empty());
    // Serial numbers are unique per tenant, not globally.
    register(
        &mut manager_b,
        gun(&env.b.location, "MINE", &[pb::Attachment::Ball]),
    )
    .await;
    let d = device(&mut staff_a, &g.id).await;
    assert!(d.last_reading.is_none(), "b's hub wrote nothing");
}

async fn register_err(client: &mut Client, device: pb::Device) -> Status {
    client
        .register_device(pb::RegisterDeviceRequest {
            device: Some(device),
            request_id: String::new(),
        })
        .await
        .unwrap_err()
}

async fn bad_input_names_every_field_and_writes_nothing(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let mut hub = env.client(&env.a.hub).await;
    let mut bad = gun(&env.a.location, "", &[pb::Attachment::Fork]);
    bad.spec = Some(pb::device::Spec::Percussion(pb::PercussionSpec {
        speed_levels: 3,
        attachments: vec![pb::Attachment::Fork as i32, 99, pb::Attachment::Legs as i32],
    }));
    bad.purchase_date = "2026-02-30".into();
    let status = register_err(&mut manager, bad).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&status),
        [
            "device.serial_number",
            "device.purchase_date",
            "device.percussion.attachments[1]",
            "device.percussion.attachments[2]",
        ]
    );
    let none = staff
        .list_devices(pb::ListDevicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert!(none.is_empty(), "nothing was registered");

    let g = register(
        &mut manager,
        gun(&env.a.location, "OK-1", &[pb::Attachment::Fork]),
    )
    .await;
    let status = report(&mut hub, vec![reading(&g.id, 140, false)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["readings[0].battery_percent"]);
    assert!(device(&mut staff, &g.id).await.last_reading.is_none());
    let history = staff
        .list_telemetry(pb::ListTelemetryRequest {
            device_id: g.id.clone(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .readings;
    assert!(history.is_empty(), "nothing of the batch was stored");

    // A reservation with every part wrong.
    let status = staff
        .reserve_device(pb::ReserveDeviceRequest {
            target: Some(pb::reserve_device_request::Target::Requirement(
                pb::DeviceRequirement {
                    location_id: env.a.location.clone(),
                    kind: pb::DeviceKind::PercussionMassager as i32,
                    attachment: pb::Attachment::Hips as i32,
                    min_battery_percent: 140,
                },
            )),
            start_time: Some(to_proto(env.now())),
            end_time: Some(to_proto(env.now() - SignedDuration::from_mins(5))),
            duration: None,
            purpose: None,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&status),
        [
            "requirement.attachment",
            "requirement.min_battery_percent",
            "end_time",
            "booking_id"
        ]
    );
    assert_eq!(reservation_count(&env).await, 0);
}

async fn the_board_sees_a_battery_change_from_a_hub(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let mut hub = env.client(&env.a.hub).await;
    let g = register(
        &mut manager,
        gun(&env.a.location, "BRD-1", &[pb::Attachment::Ball]),
    )
    .await;
    report(&mut hub, vec![reading(&g.id, 80, false)])
        .await
        .unwrap();
    let mut board = staff
        .watch_devices(pb::WatchDevicesRequest {
            location_id: env.a.location.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::watch_devices_response::Event::Snapshot(snapshot)) =
        board.message().await.unwrap().unwrap().event
    else {
        panic!("a snapshot comes first");
    };
    assert_eq!(snapshot.devices.len(), 1);
    assert_eq!(
        snapshot.devices[0]
            .last_reading
            .as_ref()
            .unwrap()
            .battery_percent,
        Some(80)
    );
    report(&mut hub, vec![reading(&g.id, 42, false)])
        .await
        .unwrap();
    let Some(pb::watch_devices_response::Event::Device(changed)) =
        tokio::time::timeout(Duration::from_secs(10), board.message())
            .await
            .expect("a change arrives")
            .unwrap()
            .unwrap()
            .event
    else {
        panic!("expected a change");
    };
    assert_eq!(changed.id, g.id);
    assert_eq!(changed.last_reading.unwrap().battery_percent, Some(42));
}

async fn roles_idempotency_serials_and_service_due(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let mut hub = env.client(&env.a.hub).await;
    let denied = |s: Status| assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    denied(register_err(&mut staff, gun(&env.a.location, "S", &[])).await);
    denied(register_err(&mut hub, gun(&env.a.location, "S", &[])).await);

    let request = pb::RegisterDeviceRequest {
        device: Some(pb::Device {
            location_id: env.a.location.clone(),
            kind: pb::DeviceKind::CryoChamber as i32,
            display_name: "Chamber".into(),
            serial_number: "CRYO-1".into(),
            spec: Some(pb::device::Spec::CryoChamber(pb::CryoChamberSpec {
                target_temperature_celsius: -110.0,
                ready_threshold_celsius: -90.0,
            })),
            ..Default::default()
        }),
        request_id: "chamber-1".into(),
    };
    let first = manager
        .register_device(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = manager
        .register_device(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.device.as_ref().unwrap().id, again.device.unwrap().id);
    let chamber = first.device.unwrap();
    assert!(!chamber.ready, "no temperature yet");
    let mut other = request.clone();
    other.request_id = "chamber-2".into();
    refused(
        manager.register_device(other).await,
        Code::AlreadyExists,
        "SERIAL_TAKEN",
    );

    denied(
        hub.reserve_device(reserve_by_id(&chamber.id, env.now(), 3))
            .await
            .unwrap_err(),
    );
    denied(report(&mut staff, vec![]).await.unwrap_err());
    // A warm chamber is not ready and cannot be checked out.
    let warm = |t: f64| pb::ReportTelemetryRequest {
        reading: Some(pb::TelemetryReading {
            device_id: chamber.id.clone(),
            temperature_celsius: Some(t),
            ..Default::default()
        }),
    };
    report(&mut hub, vec![warm(-40.0)]).await.unwrap();
    assert!(!device(&mut staff, &chamber.id).await.ready);
    let r = staff
        .reserve_device(reserve_by_id(&chamber.id, env.now(), 3))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    refused(
        staff
            .check_out_device(pb::CheckOutDeviceRequest {
                reservation_id: r.id.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "DEVICE_NOT_READY",
    );
    report(&mut hub, vec![warm(-105.0)]).await.unwrap();
    assert!(device(&mut staff, &chamber.id).await.ready);
    staff
        .check_out_device(pb::CheckOutDeviceRequest {
            reservation_id: r.id.clone(),
        })
        .await
        .unwrap();
    env.advance(SignedDuration::from_hours(3));
    staff
        .check_in_device(pb::CheckInDeviceRequest {
            reservation_id: r.id,
            settings: None,
        })
        .await
        .unwrap();
    let due = |hours: u32| pb::ListDueForServiceRequest {
        location_id: env.a.location.clone(),
        min_usage_hours: hours,
        ..Default::default()
    };
    let listed = staff
        .list_due_for_service(due(3))
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, chamber.id);
    assert!(
        staff
            .list_due_for_service(due(4))
            .await
            .unwrap()
            .into_inner()
            .devices
            .is_empty()
    );

    // Updates: a field mask, and a serial taken by another device.
    let g = register(
        &mut manager,
        gun(&env.a.location, "UPD-1", &[pb::Attachment::Ball]),
    )
    .await;
    let updated = manager
        .update_device(pb::UpdateDeviceRequest {
            device: Some(pb::Device {
                id: g.id.clone(),
                display_name: "Gun of Anna".into(),
                spec: Some(pb::device::Spec::Percussion(pb::PercussionSpec {
                    speed_levels: 5,
                    attachments: vec![pb::Attachment::Ball as i32, pb::Attachment::Fork as i32],
                })),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert_eq!(updated.display_name, "Gun of Anna");
    let Some(pb::device::Spec::Percussion(spec)) = updated.spec else {
        panic!("percussion spec");
    };
    assert_eq!(spec.speed_levels, 5);
    refused(
        manager
            .update_device(pb::UpdateDeviceRequest {
                device: Some(pb::Device {
                    id: g.id.clone(),
                    serial_number: "CRYO-1".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["serial_number".into()],
                }),
            })
            .await,
        Code::AlreadyExists,
        "SERIAL_TAKEN",
    );
}

async fn telemetry_pages_hold_still_while_readings_arrive(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let mut hub = env.client(&env.a.hub).await;
    let g = register(
        &mut manager,
        gun(&env.a.location, "PAGE-1", &[pb::Attachment::Ball]),
    )
    .await;
    let base = env.now() - SignedDuration::from_mins(30);
    // Battery percent tells the readings apart; reading i is taken i
    // minutes after `base`, sent out of order.
    let at = |i: u32, battery: u32| pb::ReportTelemetryRequest {
        reading: Some(pb::TelemetryReading {
            device_id: g.id.clone(),
            battery_percent: Some(battery),
            reading_time: Some(to_proto(base + SignedDuration::from_mins(i.into()))),
            ..Default::default()
        }),
    };
    let first: Vec<_> = [3, 1, 7, 0, 5, 2, 6, 4].map(|i| at(i, i)).to_vec();
    report(&mut hub, first).await.unwrap();
    let list = |token: String| pb::ListTelemetryRequest {
        device_id: g.id.clone(),
        page_size: 3,
        page_token: token,
    };
    let batteries = |p: &pb::ListTelemetryResponse| -> Vec<u32> {
        p.readings
            .iter()
            .map(|r| r.battery_percent.unwrap())
            .collect()
    };
    let page1 = staff
        .list_telemetry(list(String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batteries(&page1), [7, 6, 5], "newest reading time first");
    assert!(!page1.next_page_token.is_empty());

    // New readings arrive: newer ones, and one taken at the same instant as
    // the last reading of page 1 (it sorts before it: received later).
    report(&mut hub, vec![at(9, 90), at(8, 80), at(5, 50)])
        .await
        .unwrap();
    let mut rest = Vec::new();
    let mut token = page1.next_page_token;
    while !token.is_empty() {
        let page = staff
            .list_telemetry(list(token))
            .await
            .unwrap()
            .into_inner();
        assert!(page.readings.len() <= 3);
        rest.extend(batteries(&page));
        token = page.next_page_token;
    }
    assert_eq!(rest, [4, 3, 2, 1, 0], "no duplicates, no gaps");

    // From the top again, the new readings lead.
    let top = staff
        .list_telemetry(list(String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batteries(&top), [90, 80, 7]);
    let next = staff
        .list_telemetry(list(top.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batteries(&next), [6, 50, 5], "a tie: received later first");

    // Tokens are checked: garbage, and another list's token.
    let bad = staff
        .list_telemetry(list("garbage".into()))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(fields(&bad), ["page_token"]);
    register(
        &mut manager,
        gun(&env.a.location, "PAGE-2", &[pb::Attachment::Ball]),
    )
    .await;
    let foreign = manager
        .list_devices(pb::ListDevicesRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let bad = staff.list_telemetry(list(foreign)).await.unwrap_err();
    assert_eq!(fields(&bad), ["page_token"]);
}

async fn service_due_pages_most_used_first(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let mut expected = Vec::new();
    for (i, hours) in [3i64, 5, 4, 5, 3, 1].into_iter().enumerate() {
        let g = register(
            &mut manager,
            gun(
                &env.a.location,
                &format!("DUE-{i}"),
                &[pb::Attachment::Ball],
            ),
        )
        .await;
        sqlx::query("UPDATE devices SET usage_since_service = $1 WHERE id = $2")
            .bind(hours * 3600)
            .bind(&g.id)
            .execute(env.db.db.reader())
            .await
            .unwrap();
        if hours >= 2 {
            expected.push((-hours, g.id));
        }
    }
    expected.sort();
    let expected: Vec<_> = expected.into_iter().map(|(_, id)| id).collect();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = staff
            .list_due_for_service(pb::ListDueForServiceRequest {
                min_usage_hours: 2,
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.devices.len() <= 2);
        seen.extend(page.devices.into_iter().map(|d| d.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, expected, "most used first, ties by id, each once");
}

async fn reservations_are_listed_by_device_and_location_in_a_window(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let one = register(
        &mut manager,
        gun(&env.a.location, "LST-1", &[pb::Attachment::Ball]),
    )
    .await;
    let two = register(
        &mut manager,
        gun(&env.a.location, "LST-2", &[pb::Attachment::Ball]),
    )
    .await;
    let now = env.now();
    let minutes = |m: i64| now + SignedDuration::from_mins(m);
    let mut reserve = async |device: &str, at_min: i64| {
        staff
            .reserve_device(reserve_by_id(device, minutes(at_min), 30))
            .await
            .unwrap()
            .into_inner()
            .reservation
            .unwrap()
    };
    // One: 60-90 and 180-210 (released) and in two days; two: 90-120.
    let a1 = reserve(&one.id, 60).await;
    let a2 = reserve(&one.id, 180).await;
    let later = reserve(&one.id, 2 * 24 * 60).await;
    let b1 = reserve(&two.id, 90).await;
    staff
        .release_reservation(pb::ReleaseReservationRequest {
            reservation_id: a2.id.clone(),
        })
        .await
        .unwrap();
    let window = |start: i64, end: i64| pb::ListReservationsRequest {
        start_time: Some(to_proto(minutes(start))),
        end_time: Some(to_proto(minutes(end))),
        ..Default::default()
    };
    let ids = |r: pb::ListReservationsResponse| -> Vec<String> {
        r.reservations.into_iter().map(|r| r.id).collect()
    };

    // A device's, earliest first; the released one too, unless filtered.
    let by_device = pb::ListReservationsRequest {
        device_id: one.id.clone(),
        ..window(0, 24 * 60)
    };
    let listed = staff.list_reservations(by_device.clone()).await.unwrap();
    assert_eq!(ids(listed.into_inner()), [a1.id.clone(), a2.id.clone()]);
    let held = staff
        .list_reservations(pb::ListReservationsRequest {
            state: pb::ReservationState::Held as i32,
            ..by_device.clone()
        })
        .await
        .unwrap();
    assert_eq!(ids(held.into_inner()), std::slice::from_ref(&a1.id));

    // Windows are half-open: one ending at the start or starting at the
    // end does not overlap.
    let edge = staff
        .list_reservations(pb::ListReservationsRequest {
            location_id: env.a.location.clone(),
            ..window(90, 180)
        })
        .await
        .unwrap();
    assert_eq!(ids(edge.into_inner()), std::slice::from_ref(&b1.id));

    // A location's, a page at a time, each once, across 31 days.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = staff
            .list_reservations(pb::ListReservationsRequest {
                location_id: env.a.location.clone(),
                page_size: 1,
                page_token: token,
                ..window(0, 31 * 24 * 60)
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.reservations.len() <= 1);
        seen.extend(page.reservations.iter().map(|r| r.id.clone()));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, [a1.id, b1.id, a2.id, later.id]);

    // Bad input names every field.
    let bad = staff
        .list_reservations(pb::ListReservationsRequest {
            device_id: one.id.clone(),
            location_id: env.a.location.clone(),
            state: 99,
            page_token: "nope".into(),
            ..window(0, 31 * 24 * 60 + 1)
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&bad),
        ["location_id", "end_time", "state", "page_token"]
    );
    let bad = staff
        .list_reservations(pb::ListReservationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["device_id", "start_time", "end_time"]);
    let bad = staff
        .list_reservations(pb::ListReservationsRequest {
            device_id: one.id.clone(),
            ..window(60, 60)
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["end_time"]);

    // Hubs may not; another tenant's device and location are NOT_FOUND.
    let mut hub = env.client(&env.a.hub).await;
    let denied = hub.list_reservations(by_device.clone()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut staff_b = env.client(&env.b.staff).await;
    let foreign = staff_b
        .list_reservations(by_device.clone())
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound, "{foreign:?}");
    let foreign = staff_b
        .list_reservations(pb::ListReservationsRequest {
            location_id: env.a.location.clone(),
            ..window(0, 24 * 60)
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound, "{foreign:?}");
    let own = staff_b
        .list_reservations(pb::ListReservationsRequest {
            location_id: env.b.location.clone(),
            ..window(0, 24 * 60)
        })
        .await
        .unwrap();
    assert!(own.into_inner().reservations.is_empty());
}

async fn the_board_hears_when_a_window_starts_and_ends(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let g = register(
        &mut manager,
        gun(&env.a.location, "WIN-1", &[pb::Attachment::Ball]),
    )
    .await;
    // Held from 2 to 7 minutes from now; nothing changes on the clock alone.
    staff
        .reserve_device(reserve_by_id(
            &g.id,
            env.now() + SignedDuration::from_mins(2),
            5,
        ))
        .await
        .unwrap();
    let mut board = staff
        .watch_devices(pb::WatchDevicesRequest {
            location_id: env.a.location.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::watch_devices_response::Event::Snapshot(snapshot)) =
        board.message().await.unwrap().unwrap().event
    else {
        panic!("a snapshot comes first");
    };
    assert_eq!(state(&snapshot.devices[0]), pb::DeviceState::Available);
    let mut next_change = async || {
        let message = tokio::time::timeout(Duration::from_secs(10), board.message())
            .await
            .expect("a change arrives")
            .unwrap()
            .unwrap();
        let Some(pb::watch_devices_response::Event::Device(changed)) = message.event else {
            panic!("expected a change");
        };
        changed
    };

    let swept = env.fleet.sweep().await.unwrap();
    assert_eq!(swept.windows, 0, "nothing started yet");
    env.advance(SignedDuration::from_mins(2));
    assert_eq!(env.fleet.sweep().await.unwrap().windows, 1);
    let changed = next_change().await;
    assert_eq!(changed.id, g.id);
    assert_eq!(state(&changed), pb::DeviceState::Reserved);
    assert!(changed.ready);
    assert_eq!(env.fleet.sweep().await.unwrap().windows, 0, "told once");

    env.advance(SignedDuration::from_mins(5));
    assert_eq!(env.fleet.sweep().await.unwrap().windows, 1);
    let changed = next_change().await;
    assert_eq!(state(&changed), pb::DeviceState::Available);

    // A window that starts and ends between two sweeps changes nothing the
    // board would see.
    staff
        .reserve_device(reserve_by_id(
            &g.id,
            env.now() + SignedDuration::from_mins(1),
            1,
        ))
        .await
        .unwrap();
    let changed = next_change().await;
    assert_eq!(
        state(&changed),
        pb::DeviceState::Available,
        "the reservation itself"
    );
    env.advance(SignedDuration::from_mins(3));
    assert_eq!(env.fleet.sweep().await.unwrap().windows, 0);
}

recovery_kit::engine_tests!(
    the_board_hears_when_a_window_starts_and_ends,
    reservations_are_listed_by_device_and_location_in_a_window,
    service_due_pages_most_used_first,
    telemetry_pages_hold_still_while_readings_arrive,
    fifty_clients_race_for_one_gun_and_one_wins,
    racing_requirements_get_one_gun_each,
    requirements_pick_a_charged_least_used_gun_with_the_attachment,
    check_out_and_in_record_usage_and_settings,
    every_state_move_legal_and_illegal,
    silent_devices_go_offline_by_the_clock,
    ten_thousand_readings_are_stored_and_bounded,
    another_tenants_devices_are_not_found,
    bad_input_names_every_field_and_writes_nothing,
    the_board_sees_a_battery_change_from_a_hub,
    roles_idempotency_serials_and_service_due,
);
