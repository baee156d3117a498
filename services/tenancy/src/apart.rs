//! What every service binary run apart from tenancy does alike: its flags,
//! telemetry, the database, tenancy over gRPC for keys and locations, and
//! serving until a signal.

use std::sync::Arc;

use recovery_kit::Db;
use recovery_kit::config::ServerArgs;
use recovery_kit::events::Bus;
use recovery_kit::server::Services;
use recovery_kit::telemetry::{self, Telemetry};
use recovery_kit::time::{Clock, SystemClock};

use crate::{Directory, Remote, RemoteArgs};

/// Flags of a service binary run apart from tenancy; flatten into its
/// `clap::Parser`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApartArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub tenancy: RemoteArgs,
}

/// What a service run apart starts from.
pub struct Apart {
    /// The service's database.
    pub db: Db,
    /// The system clock.
    pub clock: Arc<dyn Clock>,
    /// The process's event bus.
    pub bus: Bus,
    /// Tenancy over gRPC.
    pub tenancy: Arc<Remote>,
    server: ServerArgs,
    _telemetry: Telemetry,
}

impl ApartArgs {
    /// Starts telemetry as `name`, opens the database, makes the event bus
    /// (whose watchers follow the `live` topics of every replica when Redis
    /// is configured) and reaches tenancy (lazily: the service may start
    /// before tenancy does).
    pub async fn start(self, name: &'static str, live: &[&'static str]) -> anyhow::Result<Apart> {
        let telemetry = telemetry::init(name, self.server.otlp_endpoint.as_deref())?;
        let db = self.server.open_database().await?;
        Ok(Apart {
            db,
            clock: Arc::new(SystemClock),
            bus: self.server.bus(live)?,
            tenancy: Arc::new(self.tenancy.remote()?),
            server: self.server,
            _telemetry: telemetry,
        })
    }
}

impl Apart {
    /// Tenancy as the service looks locations up.
    pub fn directory(&self) -> Arc<dyn Directory> {
        Arc::clone(&self.tenancy) as Arc<dyn Directory>
    }

    /// An empty set of services whose keys tenancy checks, under the
    /// server's limits.
    pub fn services(&self) -> anyhow::Result<Services> {
        self.server
            .services(Arc::clone(&self.tenancy) as Arc<dyn recovery_kit::auth::Authenticator>)
    }

    /// Reads other replicas' events (with Redis), then serves `services`
    /// until SIGTERM or SIGINT and drains.
    pub async fn serve(self, services: Services) -> anyhow::Result<()> {
        self.bus.spawn_reader(services.shutdown());
        self.server.serve(services).await
    }
}
