//! Fixtures shared by the integration tests.
#![allow(dead_code)]

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use recovery_scheduling::{Interval, Location, Need, OpeningHours, Slot, Treatment};

pub(crate) const WEEK: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// A UTC instant from `2026-06-01T10:00:00Z`-style text.
pub(crate) fn ts(text: &str) -> Timestamp {
    text.parse().expect("test timestamp")
}

pub(crate) fn at(hour: i8, minute: i8) -> Time {
    Time::constant(hour, minute, 0, 0)
}

pub(crate) fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

pub(crate) fn window(start: &str, end: &str) -> Interval {
    Interval::new(ts(start), ts(end))
}

/// The same range every day of the week.
pub(crate) fn daily(open: Time, close: Time) -> Vec<OpeningHours> {
    WEEK.iter()
        .map(|&weekday| OpeningHours::new(weekday, open, close))
        .collect()
}

pub(crate) fn location(tz: &str, weekly_hours: Vec<OpeningHours>) -> Location {
    Location {
        tz: TimeZone::get(tz).expect("bundled time zone"),
        weekly_hours,
        closures: Vec::new(),
    }
}

/// A treatment of `minutes` needing one resource of `kind`.
pub(crate) fn single(kind: &str, minutes: i64) -> Treatment {
    Treatment::new(mins(minutes), vec![Need::new(kind, 1)])
}

/// Slot starts as RFC 3339 text, for readable assertions.
pub(crate) fn starts(slots: &[Slot<'_>]) -> Vec<String> {
    slots.iter().map(|s| s.start.to_string()).collect()
}

pub(crate) fn has_start(slots: &[Slot<'_>], start: &str) -> bool {
    slots.iter().any(|s| s.start == ts(start))
}
