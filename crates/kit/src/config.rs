//! Configuration every server binary shares: flags, each with an environment
//! variable, over defaults. Secrets (database and Redis URLs) are never
//! printed, not even by `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

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

    /// OTLP/gRPC endpoint for traces and metrics, e.g.
    /// `http://127.0.0.1:4317`. Unset: no export, logs only.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
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
