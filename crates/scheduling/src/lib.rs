//! Open slots for a recovery studio: opening hours, resources and existing
//! bookings in, bookable slots out. Pure: no I/O, no async, no clock.
//!
//! [`search`] lists the open slots of a treatment in a window; [`pick`]
//! chooses concrete resources for one slot so the booking service can book it.
//! [`reference::search`] is the same search written as a plain scan, kept as
//! the oracle for property tests and the baseline for the benchmark.
//!
//! ```
//! use jiff::{SignedDuration, civil::{Time, Weekday}, tz::TimeZone};
//! use recovery_scheduling::{
//!     Busy, Interval, Location, Need, OpeningHours, Precool, Resource, Treatment, pick, search,
//! };
//!
//! let location = Location {
//!     tz: TimeZone::get("Europe/Berlin")?,
//!     weekly_hours: vec![OpeningHours::new(
//!         Weekday::Monday,
//!         Time::constant(6, 0, 0, 0),
//!         Time::constant(22, 0, 0, 0),
//!     )],
//!     closures: vec![],
//! };
//! let chambers = [Resource {
//!     precool: Some(Precool::default()),
//!     ..Resource::new("chamber-1", "cryo_chamber")
//! }];
//! let cryo = Treatment::new(SignedDuration::from_mins(3), vec![Need::new("cryo_chamber", 1)]);
//! let booked = [Busy::new(
//!     "chamber-1",
//!     "2026-06-01T04:12:00Z".parse()?,
//!     "2026-06-01T04:15:00Z".parse()?,
//! )];
//! let monday = Interval::new("2026-05-31T22:00:00Z".parse()?, "2026-06-01T22:00:00Z".parse()?);
//!
//! let slots = search(&location, &chambers, &cryo, &booked, monday, None)?;
//! // 06:00 local is 04:00Z; the chamber cools down for 10 minutes first and
//! // the 06:12 slot is taken.
//! assert_eq!(slots[0].start.to_string(), "2026-06-01T04:15:00Z");
//! assert_eq!(slots[0].free[0].candidates, ["chamber-1"]);
//!
//! let chosen = pick(&location, &chambers, &cryo, &booked, slots[0].start, None)?;
//! assert_eq!(chosen[0].resource_id, "chamber-1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Rules
//!
//! All intervals are half-open, `[start, end)`: a 10:00–10:03 session and a
//! 10:03–10:06 session do not conflict.
//!
//! - **Grid.** Every opening range of every local day that is not a closure
//!   date starts a grid at its opening instant; slots start at
//!   `open + k * step` (`step` defaults to the treatment's duration). A slot
//!   is listed when its start lies in the search window. Ranges of one weekday
//!   may touch but not overlap; each range has its own grid and a session
//!   never spans two ranges.
//! - **Closing.** The session itself, `[start, start + duration)`, must end by
//!   closing time (and by the end of the resource's shift). Turnover after the
//!   session may run past closing: cleaning after the last client is normal.
//! - **Turnover.** A session occupies each of its resources for
//!   `[start, end + treatment.turnover + resource.turnover)`. An existing
//!   booking or hold ([`Busy`]) occupies its resource for
//!   `[busy.start, busy.end + resource.turnover)`; store a booking's treatment
//!   turnover in its busy interval if it had one. The new occupation and any
//!   precool time before it must not overlap an existing occupation or a
//!   blackout of the resource.
//! - **Pre-cool.** A resource with a [`Precool`] is warm when one of its
//!   sessions ended within `precool.after` before the slot start (so
//!   back-to-back sessions need none) and at or after the opening instant of
//!   the slot's range; otherwise it is idle and needs
//!   `[start - precool.duration, start)` free, inside the opening range and
//!   the shift. At opening every chamber is idle, so with the defaults the
//!   first cryo slot of a day is `open + 10 min` (on the grid: the first grid
//!   point at or after it). A resource measured cold (`cold_until`, a
//!   chamber whose hub reports it at its ready temperature) needs no
//!   pre-cool for a session starting at or before that instant. Existing
//!   bookings' own precool time is not re-checked.
//! - **Kinds and preference.** A slot is open when, for every kind the
//!   treatment needs, at least `count` resources of that kind are free. A
//!   preferred resource is a hard filter: only slots where it is free are
//!   listed, and [`pick`] assigns it.
//! - **Days and daylight saving.** Days, weekdays, opening hours and shifts are
//!   local to the location's time zone; steps are elapsed time, so a 23-hour
//!   day has fewer slots and a 25-hour day more. A local time is resolved to
//!   the first instant at which the wall clock reaches it: a time in a fold
//!   (clocks go back) is its first occurrence; a time in a gap (clocks go
//!   forward) is the instant the gap ends (02:30 on a spring-forward day in
//!   New York is 03:00 EDT). A close of `00:00` means midnight at the end of
//!   the day. A range that falls entirely into a gap is empty that day.
//!
//! # Limits
//!
//! The window may span at most [`MAX_WINDOW_DAYS`] days; `step` must be at
//! least one minute. Invalid input is an [`Error`] naming the field.

mod calendar;
mod error;
mod fast;
mod model;
mod pick;
mod query;
pub mod reference;

pub use error::Error;
pub use fast::search;
pub use model::{
    Assignment, Busy, Free, Interval, Location, Need, OpeningHours, Precool, Resource, Slot,
    Treatment,
};
pub use pick::{open_for, pick};
pub use query::{MAX_WINDOW_DAYS, MIN_STEP};
