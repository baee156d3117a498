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
    // Hands the outbox's events (erasures) to the bus; consumers in other
    // processes are added with `on_erasure`.
    let _relay = protocols.spawn_relay(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    let mut services = apart.services();
    protocols.mount(&mut services);
    apart.serve(services).await
}
