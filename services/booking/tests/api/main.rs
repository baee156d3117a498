//! Booking through real gRPC, with tenancy in the same server, every test on
//! SQLite and on PostgreSQL: a module per area, the shared studio in
//! `support`.

// Scenarios told in order; wire fields are options.
#![allow(clippy::unnecessary_wraps, clippy::too_many_lines)]

// The four services started as the load examples start them, and clients
// made through protocols' API as they make them.
#[path = "../../examples/common/mod.rs"]
mod common;

mod availability;
mod bookings;
mod calendars;
mod catalog;
mod chambers;
mod contention;
mod day;
mod devices;
mod dst;
mod holds;
mod idempotency;
mod lifecycle;
mod lists;
mod rpcs;
mod suggestions;
mod support;
mod waitlist;
mod watch;
