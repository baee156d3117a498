//! `protocols`: the protocols service on its own, next to a tenancy service
//! and a booking service (erasures reach booking over gRPC).

use std::sync::Arc;

use clap::Parser;
use recovery_peers::remote::{Peer, RemoteBooking};
use recovery_protocols::Protocols;
use recovery_tenancy::apart::ApartArgs;

/// Clients, screening, waivers, activities, recovery history and protocols.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    apart: ApartArgs,

    /// Where the booking service listens: an erased client's personal data
    /// is removed there too (delivered from protocols' outbox, retried until
    /// booking answers), e.g. `http://127.0.0.1:50052`.
    #[arg(long, env = "RECOVERY_BOOKING_URL")]
    booking_url: String,

    #[command(flatten)]
    relay: recovery_kit::config::RelayArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let booking = Peer::new(
        "booking",
        &args.booking_url,
        &args.apart.tenancy.service_key,
    )?;
    let apart = args.apart.start("protocols", &[]).await?;
    let protocols = Protocols::start(
        apart.db.clone(),
        apart.clock.clone(),
        apart.bus.clone(),
        apart.directory(),
    )
    .await?;
    protocols.on_erasure(Arc::new(RemoteBooking(booking.clone())));
    protocols.suggest_with(Arc::new(RemoteBooking(booking)));
    args.relay.apply(&[protocols.outbox()]);
    let mut services = apart.services()?;
    protocols.mount(&mut services);
    let mut shutdown = services.shutdown();
    let _relay = protocols.spawn_relay(async move { shutdown.wait().await });
    apart.serve(services).await
}
