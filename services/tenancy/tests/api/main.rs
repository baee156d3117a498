//! Tenancy through real gRPC, every test on SQLite and on PostgreSQL: one
//! module per area, fixtures and helpers in `support`.

mod auth;
mod idempotency;
mod keys;
mod locations;
mod rpcs;
mod support;
mod tenants;
