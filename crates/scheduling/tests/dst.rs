//! Days with a daylight-saving change: exact first and last slot instants.

mod common;

use common::{at, daily, location, single, ts, window};
use jiff::civil::{Time, Weekday};
use recovery_scheduling::{Interval, Location, OpeningHours, Resource, search};

/// First start, last start and number of 3-minute slots in `w`.
fn grid(loc: &Location, w: Interval) -> (String, String, usize) {
    let resources = [Resource::new("b1", "boots")];
    let slots = search(loc, &resources, &single("boots", 3), &[], w, None).unwrap();
    let first = slots
        .first()
        .map(|s| s.start.to_string())
        .unwrap_or_default();
    let last = slots
        .last()
        .map(|s| s.start.to_string())
        .unwrap_or_default();
    (first, last, slots.len())
}

fn expect(first: &str, last: &str, count: usize) -> (String, String, usize) {
    (first.to_owned(), last.to_owned(), count)
}

fn sunday(tz: &str, open: Time, close: Time) -> Location {
    location(tz, vec![OpeningHours::new(Weekday::Sunday, open, close)])
}

const MIDNIGHT: Time = Time::midnight();

#[test]
fn new_york_spring_forward_is_23_hours() {
    let w = window("2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z");
    let loc = location("America/New_York", daily(MIDNIGHT, MIDNIGHT));
    assert_eq!(
        grid(&loc, w),
        expect("2026-03-08T05:00:00Z", "2026-03-09T03:57:00Z", 460)
    );
    let loc = location("America/New_York", daily(at(6, 0), at(22, 0)));
    assert_eq!(
        grid(&loc, w),
        expect("2026-03-08T10:00:00Z", "2026-03-09T01:57:00Z", 320)
    );
}

#[test]
fn new_york_fall_back_is_25_hours() {
    let w = window("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z");
    let loc = location("America/New_York", daily(MIDNIGHT, MIDNIGHT));
    assert_eq!(
        grid(&loc, w),
        expect("2026-11-01T04:00:00Z", "2026-11-02T04:57:00Z", 500)
    );
    let loc = location("America/New_York", daily(at(6, 0), at(22, 0)));
    assert_eq!(
        grid(&loc, w),
        expect("2026-11-01T11:00:00Z", "2026-11-02T02:57:00Z", 320)
    );
}

#[test]
fn berlin_spring_forward_is_23_hours() {
    let w = window("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z");
    let loc = location("Europe/Berlin", daily(MIDNIGHT, MIDNIGHT));
    assert_eq!(
        grid(&loc, w),
        expect("2026-03-28T23:00:00Z", "2026-03-29T21:57:00Z", 460)
    );
    let loc = location("Europe/Berlin", daily(at(6, 0), at(22, 0)));
    assert_eq!(
        grid(&loc, w),
        expect("2026-03-29T04:00:00Z", "2026-03-29T19:57:00Z", 320)
    );
}

#[test]
fn berlin_fall_back_is_25_hours() {
    let w = window("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z");
    let loc = location("Europe/Berlin", daily(MIDNIGHT, MIDNIGHT));
    assert_eq!(
        grid(&loc, w),
        expect("2026-10-24T22:00:00Z", "2026-10-25T22:57:00Z", 500)
    );
    let loc = location("Europe/Berlin", daily(at(6, 0), at(22, 0)));
    assert_eq!(
        grid(&loc, w),
        expect("2026-10-25T05:00:00Z", "2026-10-25T20:57:00Z", 320)
    );
}

#[test]
fn a_window_across_the_change_keeps_local_hours() {
    let w = window("2026-03-07T05:00:00Z", "2026-03-09T04:00:00Z");
    let loc = location("America/New_York", daily(at(6, 0), at(22, 0)));
    assert_eq!(
        grid(&loc, w),
        expect("2026-03-07T11:00:00Z", "2026-03-09T01:57:00Z", 640)
    );
}

#[test]
fn opening_in_a_gap_opens_when_the_gap_ends() {
    let w = window("2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z");
    // 02:30 does not exist on this day; the clock reaches it at 03:00 EDT.
    let loc = sunday("America/New_York", at(2, 30), at(4, 0));
    assert_eq!(
        grid(&loc, w),
        expect("2026-03-08T07:00:00Z", "2026-03-08T07:57:00Z", 20)
    );
    let loc = sunday("America/New_York", at(2, 0), at(4, 0));
    assert_eq!(
        grid(&loc, w),
        expect("2026-03-08T07:00:00Z", "2026-03-08T07:57:00Z", 20)
    );
    // Closing in the gap: closes at 03:00 EDT, one hour after 01:00 EST.
    let loc = sunday("America/New_York", at(1, 0), at(2, 30));
    assert_eq!(
        grid(&loc, w),
        expect("2026-03-08T06:00:00Z", "2026-03-08T06:57:00Z", 20)
    );
    // A range entirely inside the gap is empty.
    let loc = sunday("America/New_York", at(2, 10), at(2, 50));
    assert_eq!(grid(&loc, w).2, 0);
}

#[test]
fn times_in_a_fold_are_their_first_occurrence() {
    let w = window("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z");
    // 01:00 EDT to 02:00 EST: two real hours.
    let loc = sunday("America/New_York", at(1, 0), at(2, 0));
    assert_eq!(
        grid(&loc, w),
        expect("2026-11-01T05:00:00Z", "2026-11-01T06:57:00Z", 40)
    );
    let loc = sunday("America/New_York", at(1, 30), at(1, 45));
    assert_eq!(
        grid(&loc, w),
        expect("2026-11-01T05:30:00Z", "2026-11-01T05:42:00Z", 5)
    );

    let w = window("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z");
    let loc = sunday("Europe/Berlin", at(2, 30), at(4, 0));
    // 02:30 CEST (00:30Z) to 04:00 CET (03:00Z).
    assert_eq!(
        grid(&loc, w),
        expect("2026-10-25T00:30:00Z", "2026-10-25T02:57:00Z", 50)
    );
}

#[test]
fn slot_instants_are_exact() {
    let loc = location("Europe/Berlin", daily(at(6, 0), at(22, 0)));
    let resources = [Resource::new("b1", "boots")];
    let w = window("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z");
    let slots = search(&loc, &resources, &single("boots", 3), &[], w, None).unwrap();
    assert_eq!(slots[0].start, ts("2026-03-29T04:00:00Z"));
    assert_eq!(slots[0].end, ts("2026-03-29T04:03:00Z"));
}
