//! What every recovery service shares, written once: configuration,
//! telemetry, the server with health, reflection and gRPC-Web, API-key
//! authentication, errors with google.rpc details, the database, pagination,
//! values kept under their rows' versions, idempotent creates, the clock, and test support.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod ids;
pub mod kept;
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
#[cfg(test)]
mod tx_tests;

/// The heap of every binary that links kit (the five servers, the
/// examples, the tests): mimalloc instead of glibc's malloc. A call here
/// makes and frees thousands of small values across threads (rows, strings,
/// messages, h2 frames); with glibc's arenas that was about a third of a
/// list's CPU (`malloc`, `_int_free`, `malloc_consolidate` at the top of
/// the profile), with mimalloc the health check itself answers 1.5x more
/// calls a second (`docs/BENCHMARKS.md`). Built without transparent huge
/// pages (the workspace's `no_thp` feature): with them idle RSS doubled,
/// 22 to 46 MB. Only Rust's allocations move:
/// SQLite and the other C code keep the system's malloc (mimalloc's
/// `override` feature is not used; its maintainers advise against it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
