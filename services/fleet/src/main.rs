//! `fleet`: the fleet service on its own, authenticating keys and reading
//! locations through a tenancy service.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use recovery_fleet::{Config, Fleet};
use recovery_kit::config::ServerArgs;
use recovery_kit::events::Bus;
use recovery_kit::server::Services;
use recovery_kit::telemetry;
use recovery_kit::time::SystemClock;
use recovery_tenancy::RemoteArgs;

/// Devices, assignment, telemetry and maintenance of the recovery backend.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    #[command(flatten)]
    tenancy: RemoteArgs,

    #[command(flatten)]
    fleet: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = telemetry::init("fleet", args.server.otlp_endpoint.as_deref())?;
    let db = args.server.open_database().await?;
    let tenancy = Arc::new(args.tenancy.remote()?);
    let fleet = Fleet::start(
        db,
        Arc::new(SystemClock),
        Bus::default(),
        tenancy.clone(),
        args.fleet,
    )
    .await?;
    let mut services = Services::new(tenancy);
    fleet.mount(&mut services);
    fleet.spawn_sweeper(Duration::from_secs(15), services.shutdown());
    args.server.serve(services).await
}
