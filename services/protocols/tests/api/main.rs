//! Protocols through real gRPC, with real tenancy keys and locations, every
//! test on SQLite and on PostgreSQL; a module per area, the fixtures in
//! `support`.

// A story reads best in one piece; prost's optional fields want Options.
#![allow(clippy::too_many_lines, clippy::unnecessary_wraps)]

mod audit;
mod clients;
mod history;
mod idempotency;
mod lists;
mod plans;
mod rpcs;
mod rules;
mod story;
mod support;
mod workflow;
