//! Reservations: races, picking by requirement, check-out and check-in,
//! listing.

use recovery_kit::Engine;
use recovery_kit::db::is_exclusion_violation;

use crate::support::*;

async fn fifty_clients_race_for_one_gun_and_one_wins(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let gun = env.gun(&mut manager, "HV-1", &[pb::Attachment::Fork]).await;
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
        let g = env.gun(&mut manager, serial, &[pb::Attachment::Fork]).await;
        report_one(&mut hub, &g.id, 90, false).await;
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
    let (mut manager, mut staff, mut hub) = env.crew().await;
    let loc = &env.a.location;
    let worn = register(&mut manager, gun(loc, "WORN", &[pb::Attachment::Fork])).await;
    let flat = register(&mut manager, gun(loc, "FLAT", &[pb::Attachment::Fork])).await;
    let ball = register(&mut manager, gun(loc, "BALL", &[pb::Attachment::Ball])).await;
    let fresh = register(
        &mut manager,
        gun(loc, "FRESH", &[pb::Attachment::Ball, pb::Attachment::Fork]),
    )
    .await;
    // Their hubs report (again after the session below: they stay online).
    let charge = vec![
        reading(&worn.id, 95, false),
        reading(&flat.id, 29, false),
        reading(&ball.id, 100, false),
        reading(&fresh.id, 80, false),
    ];
    report(&mut hub, charge.clone()).await.unwrap();
    // The worn gun has an hour of use behind it.
    let r = reserve(&mut staff, reserve_by_id(&worn.id, env.now(), 60))
        .await
        .reservation
        .unwrap();
    check_out(&mut staff, &r.id).await.unwrap();
    env.advance(SignedDuration::from_mins(60));
    check_in(&mut staff, &r.id, None).await.unwrap();
    report(&mut hub, charge).await.unwrap();

    let start = env.now() + SignedDuration::from_mins(30);
    let first = reserve(
        &mut staff,
        reserve_fitting(loc, pb::Attachment::Fork, 30, start),
    )
    .await;
    assert_eq!(first.device.unwrap().id, fresh.id, "least used first");
    let second = reserve(
        &mut staff,
        reserve_fitting(loc, pb::Attachment::Fork, 30, start),
    )
    .await;
    assert_eq!(second.device.unwrap().id, worn.id);
    // Left: a gun below the floor and one without a fork.
    unavailable(
        staff
            .reserve_device(reserve_fitting(loc, pb::Attachment::Fork, 30, start))
            .await,
    );
    // A higher floor rules out the fresh gun (80%): the worn one (95%) is
    // taken although it is used more.
    let later = start + SignedDuration::from_hours(2);
    let picked = reserve(
        &mut staff,
        reserve_fitting(loc, pb::Attachment::Fork, 85, later),
    )
    .await;
    assert_eq!(picked.device.unwrap().id, worn.id);
    unavailable(
        staff
            .reserve_device(reserve_fitting(loc, pb::Attachment::Fork, 85, later))
            .await,
    );
    // By id, a gun whose battery cannot last the window is refused too.
    unavailable(
        staff
            .reserve_device(reserve_by_id(&flat.id, later, 60))
            .await,
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
    let r = reserve(
        &mut staff,
        reserve_by_id(&g.id, env.now() + SignedDuration::from_mins(10), 30),
    )
    .await
    .reservation
    .unwrap();
    assert_eq!(r.state(), pb::ReservationState::Held);
    let out = check_out(&mut staff, &r.id).await.unwrap().into_inner();
    assert_eq!(state(out.device.as_ref().unwrap()), pb::DeviceState::InUse);
    refused(
        check_out(&mut staff, &r.id).await,
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
    invalid(
        &bad,
        &[
            "settings.speed_level",
            "settings.attachment",
            "settings.pressure_level",
        ],
    );
    assert_eq!(state_of(&mut staff, &g.id).await, pb::DeviceState::InUse);

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
        release(&mut staff, &r.id).await,
        Code::FailedPrecondition,
        "RESERVATION_NOT_ACTIVE",
    );
}

async fn reservations_are_listed_by_device_and_location_in_a_window(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let one = env.ball_gun(&mut manager, "LST-1").await;
    let two = env.ball_gun(&mut manager, "LST-2").await;
    let now = env.now();
    let minutes = |m: i64| now + SignedDuration::from_mins(m);
    let mut reserve = async |device: &str, at_min: i64| {
        reserve(&mut staff, reserve_by_id(device, minutes(at_min), 30))
            .await
            .reservation
            .unwrap()
    };
    // One: 60-90 and 180-210 (released) and in two days; two: 90-120.
    let a1 = reserve(&one.id, 60).await;
    let a2 = reserve(&one.id, 180).await;
    let later = reserve(&one.id, 2 * 24 * 60).await;
    let b1 = reserve(&two.id, 90).await;
    release(&mut staff, &a2.id).await.unwrap();
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
    let mut pages = Vec::new();
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
        pages.push(page.reservations.len());
        seen.extend(page.reservations.iter().map(|r| r.id.clone()));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, [a1.id, b1.id, a2.id, later.id]);
    assert_eq!(pages, [1, 1, 1, 1], "one a page, no empty last page");

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
    invalid(&bad, &["location_id", "end_time", "state", "page_token"]);
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

async fn a_duration_out_of_range_is_invalid(db: TestDb) {
    let env = env(db).await;
    let (mut manager, mut staff, _) = env.crew().await;
    let g = env.ball_gun(&mut manager, "DUR-1").await;
    // Huge seconds and a whole second of nanos: refused, not a panic.
    let mut request = reserve_by_id(&g.id, env.now(), 30);
    request.duration = Some(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 1_000_000_000,
    });
    let status = staff.reserve_device(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(fields(&status), ["duration"]);
    assert_eq!(reservation_count(&env).await, 0);
}

recovery_kit::engine_tests!(
    a_duration_out_of_range_is_invalid,
    fifty_clients_race_for_one_gun_and_one_wins,
    racing_requirements_get_one_gun_each,
    requirements_pick_a_charged_least_used_gun_with_the_attachment,
    check_out_and_in_record_usage_and_settings,
    reservations_are_listed_by_device_and_location_in_a_window,
);
