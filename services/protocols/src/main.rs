//! `protocols`: the protocols service on its own, next to a tenancy service.

use clap::Parser;
use recovery_protocols::Protocols;
use recovery_tenancy::apart::ApartArgs;

/// Clients, screening, waivers, activities, recovery history and protocols.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    apart: ApartArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let apart = Args::parse().apart.start("protocols").await?;
    let protocols = Protocols::start(
        apart.db.clone(),
        apart.clock.clone(),
        apart.bus.clone(),
        apart.directory(),
    )
    .await?;
    let mut services = apart.services();
    protocols.mount(&mut services);
    apart.serve(services).await
}
