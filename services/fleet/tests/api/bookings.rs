//! Devices for bookings: booking's side of the fleet, through gRPC with the
//! service key acting for a tenant, and in process through
//! `recovery_peers::Devices`.

use std::collections::BTreeMap;

use recovery_peers::{Attachment, DeviceKind, DeviceNeed, Devices};

use crate::support::*;

/// A fork-head gun for `booking`, by requirement, from `minutes` from now
/// for 30 minutes.
fn for_booking(env: &Env, booking: &str, minutes: i64) -> pb::ReserveDeviceRequest {
    let start = env.now() + SignedDuration::from_mins(minutes);
    pb::ReserveDeviceRequest {
        purpose: Some(pb::reserve_device_request::Purpose::BookingId(
            booking.into(),
        )),
        ..reserve_fitting(&env.a.location, pb::Attachment::Fork, 30, start)
    }
}

fn fork_need() -> DeviceNeed {
    DeviceNeed {
        kind: DeviceKind::PercussionMassager,
        attachment: Attachment::Fork,
        min_battery_percent: 30,
    }
}

/// The window of a 30-minute session `minutes` from now.
fn window(env: &Env, minutes: i64) -> (Timestamp, Timestamp) {
    let start = env.now() + SignedDuration::from_mins(minutes);
    (start, start + SignedDuration::from_mins(30))
}

/// Registers `n` charged fork guns at studio a.
async fn fork_guns(env: &Env, n: usize) -> Vec<pb::Device> {
    let (mut manager, _, mut hub) = env.crew().await;
    let mut guns = Vec::new();
    for i in 0..n {
        let g = env
            .gun(&mut manager, &format!("F-{i}"), &[pb::Attachment::Fork])
            .await;
        report_one(&mut hub, &g.id, 90, false).await;
        guns.push(g);
    }
    guns
}

async fn reservation_state(client: &mut ServiceClient, id: &str) -> pb::ReservationState {
    client
        .get_reservation(pb::GetReservationRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap()
        .state()
}

fn release_request(booking: &str, keep: &[&str]) -> pb::ReleaseBookingReservationsRequest {
    pb::ReleaseBookingReservationsRequest {
        booking_id: booking.into(),
        keep_reservation_ids: keep.iter().map(|k| (*k).to_owned()).collect(),
    }
}

async fn a_bookings_reservations_are_released_at_once_but_the_kept_one(db: TestDb) {
    let env = env(db).await;
    fork_guns(&env, 3).await;
    let mut booking = env.service(Some(&env.a.tenant)).await;
    let mut staff = env.client(&env.a.staff).await;
    let mut id = async |request| {
        booking
            .reserve_device(request)
            .await
            .unwrap()
            .into_inner()
            .reservation
            .unwrap()
            .id
    };
    // booking-9: one checked out now, three held later; booking-10: one.
    let out = id(for_booking(&env, "booking-9", 10)).await;
    let first = id(for_booking(&env, "booking-9", 60)).await;
    let second = id(for_booking(&env, "booking-9", 60)).await;
    let kept = id(for_booking(&env, "booking-9", 60)).await;
    let other = id(for_booking(&env, "booking-10", 180)).await;
    check_out(&mut staff, &out).await.unwrap();

    // A hub may not; a service naming no tenant may not: nothing changes.
    let mut hub = env.client(&env.a.hub).await;
    let denied = hub
        .release_booking_reservations(release_request("booking-9", &[]))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let mut platform = env.service(None).await;
    let denied = platform
        .release_booking_reservations(release_request("booking-9", &[]))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let mut booking = env.service(Some(&env.a.tenant)).await;
    for held in [&first, &second, &kept, &other] {
        assert_eq!(
            reservation_state(&mut booking, held).await,
            pb::ReservationState::Held
        );
    }

    // A bad request names its fields and releases nothing.
    let bad = booking
        .release_booking_reservations(release_request(" ", &["nope"]))
        .await
        .unwrap_err();
    invalid(&bad, &["booking_id", "keep_reservation_ids[0]"]);

    let mut manager = env.client(&env.a.manager).await;
    let mut board = watch(&mut manager, &env.a.location).await;
    snapshot(&mut board).await;
    let released = booking
        .release_booking_reservations(release_request("booking-9", &[&kept]))
        .await
        .unwrap()
        .into_inner()
        .released;
    // The board hears of the released devices.
    let changed = next_change(&mut board).await;
    assert!(released.iter().any(|r| r.device_id == changed.id));
    let mut ids: Vec<&str> = released.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert!(
        released
            .iter()
            .all(|r| r.state() == pb::ReservationState::Released)
    );
    for (id, state) in [
        (&out, pb::ReservationState::CheckedOut),
        (&first, pb::ReservationState::Released),
        (&second, pb::ReservationState::Released),
        (&kept, pb::ReservationState::Held),
        (&other, pb::ReservationState::Held),
    ] {
        assert_eq!(reservation_state(&mut booking, id).await, state, "{id}");
    }

    // Again: nothing more to release.
    let again = booking
        .release_booking_reservations(release_request("booking-9", &[&kept]))
        .await
        .unwrap()
        .into_inner()
        .released;
    assert!(again.is_empty());

    // Staff may too; in process the same: the kept one goes now, once.
    let released = staff
        .release_booking_reservations(release_request("booking-10", &[]))
        .await
        .unwrap()
        .into_inner()
        .released;
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].id, other);
    let fleet = &*env.fleet;
    assert_eq!(
        Devices::release_booking(fleet, &env.a.tenant, "booking-9", &[])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        Devices::release_booking(fleet, &env.a.tenant, "booking-9", &[])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        reservation_state(&mut booking, &kept).await,
        pb::ReservationState::Released
    );
    assert_eq!(
        reservation_state(&mut booking, &out).await,
        pb::ReservationState::CheckedOut
    );
}

async fn the_service_acts_for_one_tenant_only(db: TestDb) {
    let env = env(db).await;
    // Studio b's gun, reserved for b's booking-1.
    let mut b_manager = env.client(&env.b.manager).await;
    let b_gun = register(
        &mut b_manager,
        gun(&env.b.location, "B-1", &[pb::Attachment::Fork]),
    )
    .await;
    let mut b_staff = env.client(&env.b.staff).await;
    let start = env.now() + SignedDuration::from_hours(1);
    let b_reservation = reserve(&mut b_staff, reserve_by_id(&b_gun.id, start, 30))
        .await
        .reservation
        .unwrap()
        .id;
    let count = reservation_count(&env).await;

    // Acting for a, b's reservation, device and location are not there.
    let mut for_a = env.service(Some(&env.a.tenant)).await;
    let status = for_a
        .get_reservation(pb::GetReservationRequest {
            id: b_reservation.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = for_a
        .reserve_device(reserve_by_id(&b_gun.id, start, 30))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = for_a
        .reserve_device(pb::ReserveDeviceRequest {
            purpose: Some(pb::reserve_device_request::Purpose::BookingId(
                "booking-1".into(),
            )),
            ..reserve_fitting(&env.b.location, pb::Attachment::Fork, 0, start)
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let released = for_a
        .release_booking_reservations(release_request("booking-1", &[]))
        .await
        .unwrap()
        .into_inner()
        .released;
    assert!(released.is_empty());
    let status = Status::from(
        Devices::usage(&*env.fleet, &env.a.tenant, &b_reservation)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(
        Devices::release_booking(&*env.fleet, &env.a.tenant, "booking-1", &[])
            .await
            .unwrap(),
        0
    );

    // A service naming no tenant touches no tenant's data.
    let mut platform = env.service(None).await;
    let status = platform
        .get_reservation(pb::GetReservationRequest {
            id: b_reservation.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = platform
        .reserve_device(reserve_by_id(&b_gun.id, start, 30))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // Nor does the service release one reservation or list them.
    let mut for_b = env.service(Some(&env.b.tenant)).await;
    let status = for_b
        .release_reservation(pb::ReleaseReservationRequest {
            reservation_id: b_reservation.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // Nothing was written; b's reservation is still held, as b sees it.
    assert_eq!(reservation_count(&env).await, count);
    assert_eq!(
        reservation_state(&mut for_b, &b_reservation).await,
        pb::ReservationState::Held
    );
}

async fn reserving_through_the_trait_twice_gives_one_reservation(db: TestDb) {
    let env = env(db).await;
    fork_guns(&env, 2).await;
    let fleet = &*env.fleet;
    let (tenant, location) = (&env.a.tenant, &env.a.location);
    let first = Devices::reserve(
        fleet,
        tenant,
        "booking-7",
        location,
        window(&env, 60),
        fork_need(),
        "booking-7:device-0",
    )
    .await
    .unwrap();
    let again = Devices::reserve(
        fleet,
        tenant,
        "booking-7",
        location,
        window(&env, 60),
        fork_need(),
        "booking-7:device-0",
    )
    .await
    .unwrap();
    assert_eq!(again, first);
    assert_eq!(first.kind, DeviceKind::PercussionMassager);
    assert_eq!(reservation_count(&env).await, 1);

    // Over gRPC the same request id answers the same reservation too.
    let mut booking = env.service(Some(tenant)).await;
    let mut request = for_booking(&env, "booking-7", 60);
    request.start_time = Some(to_proto(window(&env, 60).0));
    request.duration = None;
    request.end_time = Some(to_proto(window(&env, 60).1));
    request.request_id = "booking-7:device-0".into();
    let answered = booking
        .reserve_device(request)
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!(answered.id, first.reservation_id);
    assert_eq!(answered.device_id, first.device_id);
    assert_eq!(
        answered.purpose,
        Some(pb::reservation::Purpose::BookingId("booking-7".into()))
    );
    assert_eq!(reservation_count(&env).await, 1);

    // Another request id takes the other gun; a third finds none.
    let second = Devices::reserve(
        fleet,
        tenant,
        "booking-7",
        location,
        window(&env, 60),
        fork_need(),
        "booking-7:device-1",
    )
    .await
    .unwrap();
    assert_ne!(second.device_id, first.device_id);
    let none = Devices::reserve(
        fleet,
        tenant,
        "booking-8",
        location,
        window(&env, 60),
        fork_need(),
        "booking-8:device-0",
    )
    .await
    .unwrap_err();
    unavailable(Err::<(), _>(Status::from(none)));
    assert_eq!(reservation_count(&env).await, 2);
}

async fn usage_is_none_until_check_in_then_the_settings(db: TestDb) {
    let env = env(db).await;
    let guns = fork_guns(&env, 1).await;
    let fleet = &*env.fleet;
    let tenant = &env.a.tenant;
    let reserved = Devices::reserve(
        fleet,
        tenant,
        "booking-3",
        &env.a.location,
        window(&env, 10),
        fork_need(),
        "booking-3:device-0",
    )
    .await
    .unwrap();
    assert_eq!(reserved.device_id, guns[0].id);
    let usage = async || {
        Devices::usage(fleet, tenant, &reserved.reservation_id)
            .await
            .unwrap()
    };
    assert_eq!(usage().await, None);
    let mut staff = env.client(&env.a.staff).await;
    check_out(&mut staff, &reserved.reservation_id)
        .await
        .unwrap();
    assert_eq!(usage().await, None);
    env.advance(SignedDuration::from_mins(25));
    check_in(
        &mut staff,
        &reserved.reservation_id,
        Some(pb::UsageSettings {
            speed_level: 2,
            attachment: pb::Attachment::Fork as i32,
            pressure_level: 0,
        }),
    )
    .await
    .unwrap();
    let expected = BTreeMap::from([
        ("attachment".to_owned(), "fork".to_owned()),
        ("speed_level".to_owned(), "2".to_owned()),
    ]);
    let used = usage().await.expect("checked in");
    assert_eq!(used.device_id, guns[0].id);
    assert_eq!(used.settings, expected);

    // The service reads the same over gRPC.
    let mut booking = env.service(Some(tenant)).await;
    let read = booking
        .get_reservation(pb::GetReservationRequest {
            id: reserved.reservation_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!(
        recovery_peers::remote::settings_map(read.settings.as_ref()),
        expected
    );
}

recovery_kit::engine_tests!(
    a_bookings_reservations_are_released_at_once_but_the_kept_one,
    the_service_acts_for_one_tenant_only,
    reserving_through_the_trait_twice_gives_one_reservation,
    usage_is_none_until_check_in_then_the_settings,
);
