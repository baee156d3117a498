//! `fleet`: the fleet service on its own, authenticating keys and reading
//! locations through a tenancy service.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use recovery_fleet::{Config, Fleet};
use recovery_kit::config::{ServerArgs, redact_url};
use recovery_kit::events::Bus;
use recovery_kit::server::{Services, serve, shutdown_signal};
use recovery_kit::time::SystemClock;
use recovery_kit::{Db, telemetry};
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
    let url = args.server.database_url()?;
    tracing::info!(database = %redact_url(&url), "opening database");
    let db = Db::connect(&url).await?;
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
    let listener = tokio::net::TcpListener::bind(args.server.listen).await?;
    serve(
        listener,
        services,
        args.server.serve_options(),
        shutdown_signal(),
    )
    .await
}
