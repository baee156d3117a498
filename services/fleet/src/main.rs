//! `fleet`: the fleet service on its own, next to a tenancy service.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use recovery_fleet::{Config, Fleet};
use recovery_peers::remote::{Peer, RemoteBooking};
use recovery_tenancy::apart::ApartArgs;

/// Devices, assignment, telemetry and maintenance of the recovery backend.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    apart: ApartArgs,

    #[command(flatten)]
    fleet: Config,

    /// Where the booking service listens: fleet tells it about the cryo
    /// chambers and compression systems it offers as resources (their
    /// state decides whether they are offered), e.g.
    /// `http://127.0.0.1:50052`. Unset: booking is not told.
    #[arg(long, env = "RECOVERY_BOOKING_URL")]
    booking_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let booking = args
        .booking_url
        .as_deref()
        .map(|url| Peer::new("booking", url, &args.apart.tenancy.service_key))
        .transpose()?;
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
    if let Some(booking) = booking {
        fleet.on_device_links(Arc::new(RemoteBooking(booking)));
    }
    let mut services = apart.services()?;
    fleet.mount(&mut services);
    fleet.spawn_sweeper(Duration::from_secs(15), services.shutdown());
    fleet.spawn_relay(services.shutdown());
    apart.serve(services).await
}
