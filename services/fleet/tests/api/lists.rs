//! `ListDevices` answers from pages kept in memory under the tenant's device
//! list version, and only until the clock alone would change a state in
//! them: a device going offline, a reservation starting or ending. Every
//! step below reads the page kept by the step before it.

use crate::support::*;

/// The states `client` lists for the studio's location, in id order.
async fn states(client: &mut Client, location: &str) -> Vec<pb::DeviceState> {
    client
        .list_devices(pb::ListDevicesRequest {
            location_id: location.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .devices
        .iter()
        .map(state)
        .collect()
}

async fn a_kept_device_list_follows_the_clock_and_every_write(db: TestDb) {
    use pb::DeviceState::{Available, Offline, Reserved};
    let env = env(db).await;
    let (mut manager, mut staff, mut hub) = env.crew().await;
    let location = env.a.location.clone();
    let g = env.ball_gun(&mut manager, "LST-1").await;
    report_one(&mut hub, &g.id, 70, false).await;
    assert_eq!(states(&mut staff, &location).await, [Available]);

    // The clock alone, no write: silent past the threshold, offline.
    env.advance(SignedDuration::from_secs(OFFLINE_AFTER - 1));
    assert_eq!(states(&mut staff, &location).await, [Available]);
    env.advance(SignedDuration::from_secs(2));
    assert_eq!(states(&mut staff, &location).await, [Offline]);
    // A reading (a write) brings it back.
    report_one(&mut hub, &g.id, 69, false).await;
    assert_eq!(states(&mut staff, &location).await, [Available]);

    // Reserved from 5 minutes on, for 8: available until it starts,
    // reserved while it runs, available once it ends, by the clock alone.
    reserve(
        &mut staff,
        reserve_by_id(&g.id, env.now() + SignedDuration::from_mins(5), 8),
    )
    .await;
    assert_eq!(states(&mut staff, &location).await, [Available]);
    env.advance(SignedDuration::from_mins(5));
    assert_eq!(states(&mut staff, &location).await, [Reserved]);
    report_one(&mut hub, &g.id, 68, false).await;
    assert_eq!(states(&mut staff, &location).await, [Reserved]);
    env.advance(SignedDuration::from_mins(8));
    assert_eq!(states(&mut staff, &location).await, [Available]);

    // A second device registered (a write) is listed at once.
    let h = env.ball_gun(&mut manager, "LST-2").await;
    let listed = states(&mut staff, &location).await;
    assert_eq!(listed.len(), 2, "{} listed: {listed:?}", h.id);
}

recovery_kit::engine_tests!(a_kept_device_list_follows_the_clock_and_every_write);
