//! Configuration every server binary shares: flags, each with an environment
//! variable, over defaults. Secrets (database and Redis URLs) are never
//! printed, not even by `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::limits::{Admission, Limits};
use crate::server::ServeOptions;

/// Flags for serving; flatten into a binary's `clap::Parser`.
#[derive(Clone, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "RECOVERY_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://PATH?mode=rwc` or `postgres://USER@HOST/DB`.
    /// Default: an SQLite file `recovery.db` in the data directory.
    #[arg(long, env = "RECOVERY_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded database; created if missing.
    #[arg(long, env = "RECOVERY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Redis URL (`redis://HOST:6379/DB`) for the event bus across
    /// replicas: live views on every replica see every replica's changes.
    /// Unset: the in-process bus (one process, nothing to install).
    #[arg(long, env = "RECOVERY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Start of every Redis key this deployment uses (streams are
    /// `<prefix>:events:<topic>`), so that deployments can share a Redis.
    #[arg(long, env = "RECOVERY_REDIS_PREFIX", default_value = "recovery")]
    pub redis_prefix: String,

    /// Seconds in-flight calls get to finish after SIGTERM or SIGINT.
    #[arg(long, env = "RECOVERY_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// HTTP/2 streams (calls) one connection may have open at once.
    #[arg(long, env = "RECOVERY_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,

    /// Largest message a call may send or receive, in bytes.
    #[arg(long, env = "RECOVERY_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Longest a call may take, in seconds, and the deadline of a call
    /// that sends none; a shorter `grpc-timeout` wins. Streams are bounded
    /// only until they start.
    #[arg(long, env = "RECOVERY_MAX_DEADLINE_SECS", default_value_t = 30)]
    pub max_deadline_secs: u64,

    /// Calls (not streams) one tenant may have in flight; past it a call is
    /// refused `TENANT_BUSY` at once.
    #[arg(long, env = "RECOVERY_TENANT_IN_FLIGHT", default_value_t = 64)]
    pub tenant_in_flight: usize,

    /// Of a tenant's calls in flight, how many run at once (its share of
    /// the database pool and the runtime); the others wait their turn in
    /// the tenant's own queue, at most 3 s, then `TENANT_BUSY`.
    #[arg(long, env = "RECOVERY_TENANT_RUNNING", default_value_t = crate::limits::DEFAULT_TENANT_RUNNING)]
    pub tenant_running: usize,

    /// Streams (watches, hub uploads) one tenant may have open; past it a
    /// stream is refused `TOO_MANY_WATCHERS`.
    #[arg(long, env = "RECOVERY_TENANT_WATCHERS", default_value_t = 100)]
    pub tenant_watchers: usize,

    /// Calls a second one API key may make, sustained (a token bucket, in
    /// Redis with `--redis-url`); past it `RATE_LIMITED`.
    #[arg(long, env = "RECOVERY_KEY_RATE", default_value_t = 100.0)]
    pub key_rate: f64,

    /// Calls one API key may make at once (the bucket's size).
    #[arg(long, env = "RECOVERY_KEY_BURST", default_value_t = 200)]
    pub key_burst: u32,

    /// OTLP/gRPC endpoint for traces and metrics, e.g.
    /// `http://127.0.0.1:4317`. Unset: no export, logs only.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Flags of a binary whose services have an outbox (recoveryd, booking,
/// protocols); flatten into its `clap::Parser`.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Keep every event this process writes in its outbox tables and hand
    /// nothing of them on (no append to Redis; without Redis, no consumer
    /// call) until the process is started without it; the calls themselves
    /// work as usual, and with Redis entries other replicas appended are
    /// still consumed. For maintenance (Redis being moved) and for testing
    /// a crash between commit and publish.
    #[arg(long, env = "RECOVERY_PAUSE_OUTBOX_RELAY")]
    pub pause_outbox_relay: bool,
}

impl RelayArgs {
    /// Pauses `outboxes` when the operator asked for it.
    pub fn apply(&self, outboxes: &[&crate::outbox::Outbox]) {
        if self.pause_outbox_relay {
            tracing::warn!(
                "outbox relay paused: events wait in the outbox until a restart without --pause-outbox-relay"
            );
            for outbox in outboxes {
                outbox.pause();
            }
        }
    }
}

impl std::fmt::Debug for ServerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerArgs")
            .field("listen", &self.listen)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("data_dir", &self.data_dir)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("redis_prefix", &self.redis_prefix)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("max_concurrent_streams", &self.max_concurrent_streams)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_deadline_secs", &self.max_deadline_secs)
            .field("tenant_in_flight", &self.tenant_in_flight)
            .field("tenant_running", &self.tenant_running)
            .field("tenant_watchers", &self.tenant_watchers)
            .field("key_rate", &self.key_rate)
            .field("key_burst", &self.key_burst)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .finish()
    }
}

impl ServerArgs {
    /// The database URL to use: the given one, or the embedded SQLite file
    /// (creating the data directory).
    pub fn database_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("create data directory {}", self.data_dir.display()))?;
        let path = self.data_dir.join("recovery.db");
        Ok(format!("sqlite://{}?mode=rwc", path.display()))
    }

    /// Opens the database (logged without its secrets).
    pub async fn open_database(&self) -> anyhow::Result<crate::Db> {
        let url = self.database_url()?;
        tracing::info!(database = %redact_url(&url), "opening database");
        crate::Db::connect(&url).await
    }

    /// The event bus: across replicas through Redis with `--redis-url`
    /// (its watchers following the `live` topics of every replica), in
    /// process without. Start its reader with [`Bus::spawn_reader`] once
    /// the server's shutdown signal exists.
    ///
    /// [`Bus::spawn_reader`]: crate::events::Bus::spawn_reader
    pub fn bus(&self, live: &[&'static str]) -> anyhow::Result<crate::events::Bus> {
        match &self.redis_url {
            Some(url) => {
                tracing::info!(
                    redis = %redact_url(url),
                    prefix = %self.redis_prefix,
                    "events cross replicas through redis streams"
                );
                crate::events::Bus::with_redis(url, &self.redis_prefix, live).context("--redis-url")
            }
            None => Ok(crate::events::Bus::default()),
        }
    }

    /// The limits every call meets.
    pub fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.max_message_bytes,
            max_deadline: Duration::from_secs(self.max_deadline_secs.max(1)),
            tenant_in_flight: self.tenant_in_flight,
            tenant_running: self.tenant_running.max(1),
            tenant_queue_wait: Limits::default().tenant_queue_wait,
            tenant_streams: self.tenant_watchers,
            key_rate: self.key_rate.max(0.0),
            key_burst: self.key_burst.max(1),
        }
    }

    /// An empty set of services whose keys `auth` resolves, admitted by
    /// [`ServerArgs::limits`] (rate limits in Redis with `--redis-url`).
    pub fn services(
        &self,
        auth: std::sync::Arc<dyn crate::auth::Authenticator>,
    ) -> anyhow::Result<crate::server::Services> {
        let admission = match &self.redis_url {
            Some(url) => Admission::with_redis(self.limits(), url, &self.redis_prefix)
                .context("--redis-url")?,
            None => Admission::new(self.limits()),
        };
        Ok(crate::server::Services::with_admission(auth, admission))
    }

    /// Binds the listen address and serves `services` until SIGTERM or
    /// SIGINT, then drains (see [`crate::server::serve`]).
    pub async fn serve(&self, services: crate::server::Services) -> anyhow::Result<()> {
        self.serve_on(self.bind().await?, services).await
    }

    /// Binds the listen address (for a binary that talks to itself once it
    /// serves, like `recoveryd --demo`).
    pub async fn bind(&self) -> anyhow::Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("listen on {}", self.listen))
    }

    /// Serves `services` on `listener` until SIGTERM or SIGINT, then drains.
    pub async fn serve_on(
        &self,
        listener: tokio::net::TcpListener,
        services: crate::server::Services,
    ) -> anyhow::Result<()> {
        crate::server::serve(
            listener,
            services,
            self.serve_options(),
            crate::server::shutdown_signal(),
        )
        .await
    }

    /// Serving options.
    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            max_concurrent_streams: self.max_concurrent_streams,
        }
    }
}

/// The database engine a URL names, for logs, without its secrets.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_credentials, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => "<invalid url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/recovery"),
            "postgres://***@db:5432/recovery"
        );
        assert_eq!(
            redact_url("sqlite://data/recovery.db"),
            "sqlite://data/recovery.db"
        );
    }
}
