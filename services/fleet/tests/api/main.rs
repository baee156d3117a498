//! The fleet through real gRPC, mounted with tenancy (real keys, real
//! locations) as in `recoveryd`; every test on SQLite and on PostgreSQL.

// A test tells one story from the studio floor, however long.
#![allow(clippy::too_many_lines)]

mod bookings;
mod devices;
mod idempotency;
mod lists;
mod maintenance;
mod reservations;
mod support;
mod telemetry;
mod watch;
