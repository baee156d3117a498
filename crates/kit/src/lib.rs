//! What every recovery service shares, written once: configuration,
//! telemetry, the server with health, reflection and gRPC-Web, API-key
//! authentication, errors with google.rpc details, the database, pagination,
//! idempotent creates, the clock, and test support.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod page;
pub mod server;
pub mod telemetry;
pub mod time;
pub mod wire;

#[cfg(test)]
mod db_tests;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod outbox_tests;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use auth::{Caller, Role, Scope, authorize};
pub use db::{Db, Engine, Lock};
pub use error::{Error, Violations, reason};

/// A service's migrations for an [`Engine`]: the `migrations/sqlite` or
/// `migrations/postgres` folder of the crate that calls it, embedded at
/// build time. A macro because `sqlx::migrate!` reads the calling crate's
/// folder; the caller depends on `sqlx` with its `migrate` feature.
#[macro_export]
macro_rules! migrator {
    ($engine:expr) => {
        match $engine {
            $crate::Engine::Sqlite => ::sqlx::migrate!("migrations/sqlite"),
            $crate::Engine::Postgres => ::sqlx::migrate!("migrations/postgres"),
        }
    };
}
