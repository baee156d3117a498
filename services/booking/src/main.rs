//! `booking`: the booking service on its own, next to a tenancy service.

use clap::Parser;
use recovery_booking::Bookings;
use recovery_tenancy::apart::ApartArgs;

/// Treatments, resources, availability and bookings of the recovery backend.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    apart: ApartArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let apart = Args::parse().apart.start("booking").await?;
    let bookings = Bookings::start(
        apart.db.clone(),
        apart.clock.clone(),
        apart.bus.clone(),
        apart.directory(),
    )
    .await?;
    let mut services = apart.services();
    bookings.mount(&mut services);
    apart.serve(services).await
}
