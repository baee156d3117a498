//! The input and output types.

use std::sync::Arc;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// A half-open span of time, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    /// First instant inside the interval.
    pub start: Timestamp,
    /// First instant after the interval.
    pub end: Timestamp,
}

impl Interval {
    /// An interval from `start` to `end`; [`crate::search`] refuses one whose
    /// end is not after its start.
    #[must_use]
    pub const fn new(start: Timestamp, end: Timestamp) -> Self {
        Self { start, end }
    }
}

/// One range of local time on a weekday: opening hours of a location, or a
/// shift of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpeningHours {
    /// The local weekday this range applies to.
    pub weekday: Weekday,
    /// Local opening (or shift start) time.
    pub open: Time,
    /// Local closing (or shift end) time, after `open`; `00:00` means
    /// midnight at the end of the day.
    pub close: Time,
}

impl OpeningHours {
    /// A range on `weekday` from `open` to `close`.
    #[must_use]
    pub const fn new(weekday: Weekday, open: Time, close: Time) -> Self {
        Self {
            weekday,
            open,
            close,
        }
    }
}

/// A studio location: where the calendar is kept.
#[derive(Debug, Clone)]
pub struct Location {
    /// The location's IANA time zone; days and hours are local to it.
    pub tz: TimeZone,
    /// Weekly opening hours; several ranges per weekday are allowed as long
    /// as they do not overlap.
    pub weekly_hours: Vec<OpeningHours>,
    /// Local dates on which the location is closed all day.
    pub closures: Vec<Date>,
}

/// Pre-cooling of a cryo chamber that has been idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precool {
    /// Idle time after which the chamber must cool down again.
    pub after: SignedDuration,
    /// How long the cool-down takes, right before the session.
    pub duration: SignedDuration,
}

impl Default for Precool {
    /// Idle for more than 15 minutes: 10 minutes of cool-down.
    fn default() -> Self {
        Self {
            after: SignedDuration::from_mins(15),
            duration: SignedDuration::from_mins(10),
        }
    }
}

/// Something a session needs: a chamber, a room, a therapist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Unique id; bookings refer to it.
    pub id: String,
    /// What it is, e.g. `cryo_chamber`, `room`, `therapist`.
    pub kind: String,
    /// When the resource works, if not all opening hours (a therapist's
    /// shift); same shape as opening hours.
    pub shifts: Option<Vec<OpeningHours>>,
    /// Time needed after each session before the next one on this resource.
    pub turnover: SignedDuration,
    /// Cool-down needed after being idle (cryo chambers).
    pub precool: Option<Precool>,
    /// Times the resource cannot be used (maintenance and the like).
    pub blackouts: Vec<Interval>,
    /// Measured cold (a chamber whose hub reports it at its ready
    /// temperature): a session starting at or before this instant needs no
    /// pre-cool, whatever the idle rule says. `None`: the idle rule decides.
    pub cold_until: Option<Timestamp>,
}

impl Resource {
    /// A resource available whenever the location is open, with no
    /// turnover, precool or blackouts.
    #[must_use]
    pub fn new(id: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: kind.into(),
            shifts: None,
            turnover: SignedDuration::ZERO,
            precool: None,
            blackouts: Vec::new(),
            cold_until: None,
        }
    }
}

/// How many resources of one kind a treatment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The resource kind.
    pub kind: String,
    /// How many of them, at least one.
    pub count: u32,
}

impl Need {
    /// `count` resources of `kind`.
    #[must_use]
    pub fn new(kind: impl Into<String>, count: u32) -> Self {
        Self {
            kind: kind.into(),
            count,
        }
    }
}

/// A bookable treatment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Treatment {
    /// Length of one session.
    pub duration: SignedDuration,
    /// What one session needs; each kind at most once.
    pub needs: Vec<Need>,
    /// Distance between slot starts; `None` means the duration.
    pub step: Option<SignedDuration>,
    /// Extra time after the session during which its resources stay taken.
    pub turnover: SignedDuration,
}

impl Treatment {
    /// A treatment of `duration` needing `needs`, slots every `duration`,
    /// no extra turnover.
    #[must_use]
    pub fn new(duration: SignedDuration, needs: Vec<Need>) -> Self {
        Self {
            duration,
            needs,
            step: None,
            turnover: SignedDuration::ZERO,
        }
    }
}

/// An existing active booking or unexpired hold on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// The resource taken; unknown ids are ignored. Shared: a kept
    /// calendar's thousands of these are copied as a booking changes it.
    pub resource_id: Arc<str>,
    /// When it is taken.
    pub interval: Interval,
}

impl Busy {
    /// `resource_id` is taken from `start` to `end`.
    #[must_use]
    pub fn new(resource_id: impl Into<Arc<str>>, start: Timestamp, end: Timestamp) -> Self {
        Self {
            resource_id: resource_id.into(),
            interval: Interval::new(start, end),
        }
    }
}

/// An open slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot<'a> {
    /// Session start.
    pub start: Timestamp,
    /// Session end (turnover not included).
    pub end: Timestamp,
    /// Per needed kind, in the order of the treatment's needs: what is free.
    pub free: Vec<Free<'a>>,
}

/// The free resources of one kind for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Free<'a> {
    /// The resource kind.
    pub kind: &'a str,
    /// How many resources of the kind are free, at least the needed count.
    pub count: usize,
    /// Ids of the free resources, sorted.
    pub candidates: Vec<&'a str>,
}

/// One resource chosen for one unit of a need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment<'a> {
    /// The resource kind.
    pub kind: &'a str,
    /// The chosen resource.
    pub resource_id: &'a str,
}
