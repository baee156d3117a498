//! The live board: snapshots, changes, and the sweep.

use crate::support::*;

async fn silent_devices_go_offline_by_the_clock(db: TestDb) {
    let env = env(db).await;
    let (mut manager, mut staff, mut hub) = env.crew().await;
    let g = env.ball_gun(&mut manager, "OFF-1").await;
    report_one(&mut hub, &g.id, 70, false).await;
    env.advance(SignedDuration::from_secs(OFFLINE_AFTER - 1));
    assert_eq!(
        state_of(&mut staff, &g.id).await,
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
    let mut board = watch(&mut staff, &env.a.location).await;
    snapshot(&mut board).await;
    assert_eq!(env.fleet.sweep_offline().await.unwrap(), 1);
    assert_eq!(env.fleet.sweep_offline().await.unwrap(), 0, "once");
    let changed = next_change(&mut board).await;
    assert_eq!(state(&changed), pb::DeviceState::Offline);

    // A reading brings it back.
    report_one(&mut hub, &g.id, 69, false).await;
    assert_eq!(
        state_of(&mut staff, &g.id).await,
        pb::DeviceState::Available
    );
}

async fn the_board_sees_a_battery_change_from_a_hub(db: TestDb) {
    let env = env(db).await;
    let (mut manager, mut staff, mut hub) = env.crew().await;
    let g = env.ball_gun(&mut manager, "BRD-1").await;
    report_one(&mut hub, &g.id, 80, false).await;
    let mut board = watch(&mut staff, &env.a.location).await;
    let snapshot = snapshot(&mut board).await;
    assert_eq!(snapshot.len(), 1);
    assert_eq!(
        snapshot[0].last_reading.as_ref().unwrap().battery_percent,
        Some(80)
    );
    report_one(&mut hub, &g.id, 42, false).await;
    let changed = next_change(&mut board).await;
    assert_eq!(changed.id, g.id);
    assert_eq!(changed.last_reading.unwrap().battery_percent, Some(42));
}

async fn the_board_hears_when_a_window_starts_and_ends(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let g = env.ball_gun(&mut manager, "WIN-1").await;
    // Held from 2 to 7 minutes from now; nothing changes on the clock alone.
    staff
        .reserve_device(reserve_by_id(
            &g.id,
            env.now() + SignedDuration::from_mins(2),
            5,
        ))
        .await
        .unwrap();
    let mut board = watch(&mut staff, &env.a.location).await;
    let snapshot = snapshot(&mut board).await;
    assert_eq!(state(&snapshot[0]), pb::DeviceState::Available);

    let swept = env.fleet.sweep().await.unwrap();
    assert_eq!(swept.windows, 0, "nothing started yet");
    env.advance(SignedDuration::from_mins(2));
    assert_eq!(env.fleet.sweep().await.unwrap().windows, 1);
    let changed = next_change(&mut board).await;
    assert_eq!(changed.id, g.id);
    assert_eq!(state(&changed), pb::DeviceState::Reserved);
    assert!(changed.ready);
    assert_eq!(env.fleet.sweep().await.unwrap().windows, 0, "told once");

    env.advance(SignedDuration::from_mins(5));
    assert_eq!(env.fleet.sweep().await.unwrap().windows, 1);
    let changed = next_change(&mut board).await;
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
    let changed = next_change(&mut board).await;
    assert_eq!(
        state(&changed),
        pb::DeviceState::Available,
        "the reservation itself"
    );
    env.advance(SignedDuration::from_mins(3));
    assert_eq!(env.fleet.sweep().await.unwrap().windows, 0);
}

/// A replayed `RegisterDevice` changes nothing, so it tells the board nothing:
/// it used to publish the stored answer, the device as it was when first
/// registered (available, no reading), over its current state (issue 11's
/// code-reading list).
async fn a_replayed_registration_does_not_republish_stale_state(db: TestDb) {
    let env = env(db).await;
    let (mut manager, mut staff, mut hub) = env.crew().await;
    let request = pb::RegisterDeviceRequest {
        device: Some(gun(&env.a.location, "RPL-1", &[pb::Attachment::Ball])),
        request_id: "replayed-gun".into(),
    };
    let first = manager
        .register_device(request.clone())
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    report_one(&mut hub, &first.id, 64, false).await;
    let mut board = watch(&mut staff, &env.a.location).await;
    snapshot(&mut board).await;
    let replayed = manager
        .register_device(request)
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert_eq!(replayed.id, first.id, "the replay answers the first device");
    // A marker: the next change the board hears must be this reading, not
    // the replay's stale device.
    report_one(&mut hub, &first.id, 63, false).await;
    let changed = next_change(&mut board).await;
    assert_eq!(
        changed.last_reading.map(|r| r.battery_percent),
        Some(Some(63)),
        "the board heard the stale device of the replay first"
    );
}

recovery_kit::engine_tests!(
    a_replayed_registration_does_not_republish_stale_state,
    silent_devices_go_offline_by_the_clock,
    the_board_sees_a_battery_change_from_a_hub,
    the_board_hears_when_a_window_starts_and_ends,
);
