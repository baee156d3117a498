//! `WatchSchedule`: a snapshot of the day, then its changes.

use recovery_kit::testing::TestDb;
use recovery_proto::booking::v1 as pb;

use crate::support::{TEN_AM, start};

/// How long a change may take to reach the tablet before the test fails.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The next event of the watch, within [`WAIT`].
async fn next(
    stream: &mut tonic::Streaming<pb::WatchScheduleResponse>,
) -> Option<pb::watch_schedule_response::Event> {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("the tablet heard nothing in time")
        .unwrap()
        .unwrap()
        .event
}

async fn a_tablet_watching_the_day_sees_another_desks_booking(db: TestDb) {
    let studio = start(db).await;
    studio.book("early", TEN_AM).await.unwrap();
    let mut stream = studio
        .watch(&studio.staff, &studio.location_id, "2026-12-02")
        .await;
    let Some(pb::watch_schedule_response::Event::Snapshot(snapshot)) = next(&mut stream).await
    else {
        panic!("a snapshot first");
    };
    assert_eq!(snapshot.bookings.len(), 1);
    let made = studio
        .book("walk-in", "2026-12-02T16:00:00Z")
        .await
        .unwrap();
    let Some(pb::watch_schedule_response::Event::Changed(seen)) = next(&mut stream).await else {
        panic!("then a change");
    };
    assert_eq!(seen.id, made.id);
    assert_eq!(seen.client_id, studio.person("walk-in").await);
    // A booking of another day is not this tablet's news; a check-in is.
    studio
        .book("tomorrow", "2026-12-03T16:00:00Z")
        .await
        .unwrap();
    studio
        .client(&studio.desk)
        .await
        .check_in(pb::CheckInRequest {
            id: made.id.clone(),
        })
        .await
        .unwrap();
    let Some(pb::watch_schedule_response::Event::Changed(seen)) = next(&mut stream).await else {
        panic!("a change");
    };
    assert_eq!(seen.id, made.id);
    assert_eq!(seen.status(), pb::BookingStatus::CheckedIn);
}

recovery_kit::engine_tests!(a_tablet_watching_the_day_sees_another_desks_booking,);
