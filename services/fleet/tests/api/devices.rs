//! Devices: registering, reading, updating, retiring; tenants, roles and
//! bad input; the state machine end to end.

use tonic_types::StatusExt as _;

use crate::support::*;

async fn another_tenants_devices_are_not_found(db: TestDb) {
    let env = env(db).await;
    let mut manager_a = env.client(&env.a.manager).await;
    let g = register(
        &mut manager_a,
        gun(&env.a.location, "MINE", &[pb::Attachment::Ball]),
    )
    .await;
    let mut staff_a = env.client(&env.a.staff).await;
    let r = reserve(&mut staff_a, reserve_by_id(&g.id, env.now(), 30))
        .await
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
    nf(check_out(&mut staff_b, &r.id).await.unwrap_err());
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
    nf(retire(&mut manager_b, &g.id).await.unwrap_err());
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

async fn bad_input_names_every_field_and_writes_nothing(db: TestDb) {
    let env = env(db).await;
    let (mut manager, mut staff, mut hub) = env.crew().await;
    let mut bad = gun(&env.a.location, "", &[pb::Attachment::Fork]);
    bad.spec = Some(pb::device::Spec::Percussion(pb::PercussionSpec {
        speed_levels: 3,
        attachments: vec![pb::Attachment::Fork as i32, 99, pb::Attachment::Legs as i32],
    }));
    bad.purchase_date = "2026-02-30".into();
    let status = register_err(&mut manager, bad).await;
    invalid(
        &status,
        &[
            "device.serial_number",
            "device.purchase_date",
            "device.percussion.attachments[1]",
            "device.percussion.attachments[2]",
        ],
    );
    let none = staff
        .list_devices(pb::ListDevicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert!(none.is_empty(), "nothing was registered");

    let g = env.gun(&mut manager, "OK-1", &[pb::Attachment::Fork]).await;
    let status = report(&mut hub, vec![reading(&g.id, 140, false)])
        .await
        .unwrap_err();
    invalid(&status, &["readings[0].battery_percent"]);
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
    invalid(
        &status,
        &[
            "requirement.attachment",
            "requirement.min_battery_percent",
            "end_time",
            "booking_id",
        ],
    );
    assert_eq!(reservation_count(&env).await, 0);
}

async fn roles_idempotency_serials_and_service_due(db: TestDb) {
    let env = env(db).await;
    let (mut manager, mut staff, mut hub) = env.crew().await;
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
    let r = reserve(&mut staff, reserve_by_id(&chamber.id, env.now(), 3))
        .await
        .reservation
        .unwrap();
    refused(
        check_out(&mut staff, &r.id).await,
        Code::FailedPrecondition,
        "DEVICE_NOT_READY",
    );
    report(&mut hub, vec![warm(-105.0)]).await.unwrap();
    assert!(device(&mut staff, &chamber.id).await.ready);
    check_out(&mut staff, &r.id).await.unwrap();
    env.advance(SignedDuration::from_hours(3));
    check_in(&mut staff, &r.id, None).await.unwrap();
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
    let g = env.ball_gun(&mut manager, "UPD-1").await;
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

async fn every_state_move_legal_and_illegal(db: TestDb) {
    let env = env(db).await;
    let (mut manager, mut staff, mut hub) = env.crew().await;
    let g = env.ball_gun(&mut manager, "SM-1").await;
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
    report_one(&mut hub, &g.id, 50, true).await;
    assert_eq!(state_of(&mut staff, &g.id).await, pb::DeviceState::Charging);
    report_one(&mut hub, &g.id, 100, false).await;
    assert_eq!(
        state_of(&mut staff, &g.id).await,
        pb::DeviceState::Available
    );
    // available → reserved (a window under way) → released → available.
    let r = reserve(&mut staff, reserve_by_id(&g.id, env.now(), 30)).await;
    assert_eq!(state(r.device.as_ref().unwrap()), pb::DeviceState::Reserved);
    let r = r.reservation.unwrap();
    // reserved → maintenance, reserved → retired: illegal.
    illegal(
        unit(manager.start_maintenance(start_m(&g.id)).await),
        "reserved",
        "maintenance",
    );
    illegal(
        unit(retire(&mut manager, &g.id).await),
        "reserved",
        "retired",
    );
    // reserved → in use → available.
    check_out(&mut staff, &r.id).await.unwrap();
    // in use → maintenance, retired: illegal.
    illegal(
        unit(manager.start_maintenance(start_m(&g.id)).await),
        "in_use",
        "maintenance",
    );
    illegal(unit(retire(&mut manager, &g.id).await), "in_use", "retired");
    check_in(&mut staff, &r.id, None).await.unwrap();
    // available → maintenance; there, check-out and a second start are illegal.
    let later = reserve(
        &mut staff,
        reserve_by_id(&g.id, env.now() + SignedDuration::from_hours(1), 30),
    )
    .await
    .reservation
    .unwrap();
    // A hub cannot take it out of service; staff on the floor can.
    let hub_try = hub.start_maintenance(start_m(&g.id)).await.unwrap_err();
    assert_eq!(hub_try.code(), Code::PermissionDenied, "{hub_try:?}");
    let m = staff
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
        unit(check_out(&mut staff, &later.id).await),
        "maintenance",
        "in_use",
    );
    // New reservations are refused while in maintenance.
    unavailable(
        staff
            .reserve_device(reserve_by_id(
                &g.id,
                env.now() + SignedDuration::from_hours(3),
                30,
            ))
            .await,
    );
    // Readings do not take it out of maintenance.
    report_one(&mut hub, &g.id, 100, true).await;
    assert_eq!(
        state_of(&mut staff, &g.id).await,
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
    let retired = retire(&mut manager, &g.id)
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
        unit(retire(&mut manager, &g.id).await),
        "retired",
        "retired",
    );
    unavailable(
        staff
            .reserve_device(reserve_by_id(
                &g.id,
                env.now() + SignedDuration::from_hours(1),
                30,
            ))
            .await,
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
    let quiet = env.ball_gun(&mut manager, "SM-2").await;
    env.advance(SignedDuration::from_secs(OFFLINE_AFTER + 1));
    assert_eq!(
        state_of(&mut staff, &quiet.id).await,
        pb::DeviceState::Offline
    );
    unavailable(
        staff
            .reserve_device(reserve_by_id(&quiet.id, env.now(), 30))
            .await,
    );
    manager.start_maintenance(start_m(&quiet.id)).await.unwrap();
    manager.end_maintenance(end_m(&quiet.id)).await.unwrap();
    assert_eq!(
        state_of(&mut staff, &quiet.id).await,
        pb::DeviceState::Offline
    );
    let gone = retire(&mut manager, &quiet.id)
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert_eq!(state(&gone), pb::DeviceState::Retired);
}

recovery_kit::engine_tests!(
    another_tenants_devices_are_not_found,
    bad_input_names_every_field_and_writes_nothing,
    roles_idempotency_serials_and_service_due,
    every_state_move_legal_and_illegal,
);
