//! `fleet`: the fleet service on its own, next to a tenancy service.

use std::time::Duration;

use clap::Parser;
use recovery_fleet::{Config, Fleet};
use recovery_tenancy::apart::ApartArgs;

/// Devices, assignment, telemetry and maintenance of the recovery backend.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    apart: ApartArgs,

    #[command(flatten)]
    fleet: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let apart = args
        .apart
        .start("fleet", &[recovery_fleet::DEVICE_TOPIC])
        .await?;
    let fleet = Fleet::start(
        apart.db.clone(),
        apart.clock.clone(),
        apart.bus.clone(),
        apart.directory(),
        args.fleet,
    )
    .await?;
    let mut services = apart.services()?;
    fleet.mount(&mut services);
    fleet.spawn_sweeper(Duration::from_secs(15), services.shutdown());
    apart.serve(services).await
}
