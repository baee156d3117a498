//! The local day through the booking API on the days New York changes its
//! clocks: 2026-03-08 has 23 hours, 2026-11-01 has 25. A studio open around
//! the clock shows each day's slots (as many as the day has minutes), counts
//! the daily limit on the local day, and lists and watches the bookings of
//! that day: sessions at 00:30 and 23:30 local land on the right day.

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};
use recovery_kit::testing::TestDb;
use recovery_kit::time::to_proto;
use recovery_proto::booking::v1 as pb;
use tonic::Streaming;

use crate::support::{Studio, reason, start, starts};

/// How long a watch may take to show a change before the test fails.
const WATCH_WAIT: Duration = Duration::from_secs(10);

fn new_york() -> TimeZone {
    TimeZone::get("America/New_York").unwrap()
}

/// `hh:mm` local on `day` in New York, as an instant.
fn local(day: Date, hh: i8, mm: i8) -> Timestamp {
    day.at(hh, mm, 0, 0)
        .to_zoned_datetime(new_york())
        .unwrap()
        .timestamp()
}

/// Local midnight of `day` and of the next day.
fn bounds(day: Date) -> (Timestamp, Timestamp) {
    (local(day, 0, 0), local(day.tomorrow().unwrap(), 0, 0))
}

/// A second location of the studio, in New York and open around the clock,
/// with one chamber; its id.
async fn all_day(studio: &Studio) -> String {
    studio
        .location("Night owls", ("00:00", "24:00"), "Night chamber")
        .await
}

/// The open cryo slots at `location_id` from local midnight to local
/// midnight of `day`.
async fn slots_of(studio: &Studio, location_id: &str, day: Date) -> Vec<Timestamp> {
    let (from, to) = bounds(day);
    starts(&studio.search_at(location_id, from, to).await)
}

async fn book(
    studio: &Studio,
    location_id: &str,
    name: &str,
    at: Timestamp,
) -> Result<pb::Booking, tonic::Status> {
    let request = pb::CreateBookingRequest {
        location_id: location_id.into(),
        start_time: Some(to_proto(at)),
        ..studio.booking(name, "2026-12-02T15:00:00Z").await
    };
    studio.create_booking(request).await
}

/// The ids of the bookings `ListBookings` shows for the local `day`.
async fn listed(studio: &Studio, location_id: &str, day: Date) -> Vec<String> {
    studio
        .client(&studio.desk)
        .await
        .list_bookings(pb::ListBookingsRequest {
            location_id: location_id.into(),
            day: day.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .bookings
        .into_iter()
        .map(|b| b.id)
        .collect()
}

async fn next_event(
    stream: &mut Streaming<pb::WatchScheduleResponse>,
) -> pb::watch_schedule_response::Event {
    tokio::time::timeout(WATCH_WAIT, stream.message())
        .await
        .expect("the watch showed nothing in time")
        .unwrap()
        .unwrap()
        .event
        .unwrap()
}

/// A day's slots, bookings, limit and watch on `day` (a clock-change day)
/// against the plain day before it.
async fn a_local_day(studio: &Studio, day: Date, hours: i64) {
    studio
        .clock
        .set(local(day.checked_sub(3.days()).unwrap(), 12, 0));
    let location_id = all_day(studio).await;
    let (from, to) = bounds(day);
    assert_eq!(to.duration_since(from).as_hours(), hours, "{day}");

    // Slots: an idle chamber cools 10 minutes from opening, so the first
    // starts at 00:12; then every three minutes to the last at 23:57. The
    // day has as many as its minutes allow: the plain day before has
    // (1440 - 12) / 3, this one 20 fewer or more for its hour.
    let plain = slots_of(studio, &location_id, day.yesterday().unwrap()).await;
    assert_eq!(plain.len(), (1440 - 12) / 3);
    let slots = slots_of(studio, &location_id, day).await;
    let minutes = usize::try_from(hours * 60).unwrap();
    assert_eq!(slots.len(), (minutes - 12) / 3, "{day}: {hours}-hour day");
    assert_eq!(slots.first(), Some(&local(day, 0, 12)));
    assert_eq!(slots.last(), Some(&local(day, 23, 57)));
    assert!(
        slots
            .windows(2)
            .all(|w| w[1].duration_since(w[0]).as_mins() == 3),
        "{day}: three minutes apart on the real clock, the changed hour too"
    );

    // Sessions at 00:30 and 23:30 local are the same local day.
    let early = local(day, 0, 30);
    let late = local(day, 23, 30);
    let ana = book(studio, &location_id, "ana", early).await.unwrap();
    let bo = book(studio, &location_id, "bo", late).await.unwrap();
    let bookings = studio.rows("bookings").await;
    let limited = book(studio, &location_id, "ana", late).await.unwrap_err();
    assert_eq!(
        reason(&limited),
        "DAILY_LIMIT_REACHED",
        "{day}: {limited:?}"
    );
    assert_eq!(studio.rows("bookings").await, bookings);
    // 00:30 the next day is another day, though it is less than 24 hours
    // (on the 23-hour day) after ana's first.
    let next_day = day.tomorrow().unwrap();
    let ana_next = book(studio, &location_id, "ana", local(next_day, 0, 30))
        .await
        .unwrap();
    assert_eq!(
        listed(studio, &location_id, day).await,
        [ana.id.clone(), bo.id.clone()]
    );
    assert_eq!(listed(studio, &location_id, next_day).await, [ana_next.id]);
    assert!(
        listed(studio, &location_id, day.yesterday().unwrap())
            .await
            .is_empty()
    );

    // The day's watch: its two bookings, then a change of that day only.
    let mut stream = studio
        .watch(&studio.staff, &location_id, &day.to_string())
        .await;
    let pb::watch_schedule_response::Event::Snapshot(snapshot) = next_event(&mut stream).await
    else {
        panic!("a snapshot first");
    };
    let ids: Vec<_> = snapshot.bookings.iter().map(|b| b.id.clone()).collect();
    assert_eq!(ids, [ana.id, bo.id]);
    // A booking at 00:45 the next day is not this day's news; one at 23:00
    // is.
    book(studio, &location_id, "cy", local(next_day, 0, 45))
        .await
        .unwrap();
    let dee = book(studio, &location_id, "dee", local(day, 23, 0))
        .await
        .unwrap();
    let pb::watch_schedule_response::Event::Changed(seen) = next_event(&mut stream).await else {
        panic!("then a change");
    };
    assert_eq!(seen.id, dee.id, "{day}: the next day's booking came first");
}

async fn the_23_hour_day_in_new_york(db: TestDb) {
    let studio = start(db).await;
    a_local_day(&studio, Date::constant(2026, 3, 8), 23).await;
}

async fn the_25_hour_day_in_new_york(db: TestDb) {
    let studio = start(db).await;
    a_local_day(&studio, Date::constant(2026, 11, 1), 25).await;
}

recovery_kit::engine_tests!(the_23_hour_day_in_new_york, the_25_hour_day_in_new_york);
