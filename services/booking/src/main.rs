//! `booking`: the booking service on its own, next to tenancy, protocols
//! and fleet.

use std::sync::Arc;

use clap::Parser;
use recovery_booking::{Bookings, Peers};
use recovery_peers::remote::{PeerArgs, RemoteFleet, RemoteProtocols};
use recovery_tenancy::apart::ApartArgs;

/// Treatments, resources, availability and bookings of the recovery backend.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    apart: ApartArgs,

    #[command(flatten)]
    peers: PeerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let service_key = args.apart.tenancy.service_key.clone();
    let protocols = Arc::new(RemoteProtocols(PeerArgs::peer(
        "protocols",
        "protocols-url",
        args.peers.protocols_url.as_deref(),
        &service_key,
    )?));
    let fleet = Arc::new(RemoteFleet(PeerArgs::peer(
        "fleet",
        "fleet-url",
        args.peers.fleet_url.as_deref(),
        &service_key,
    )?));
    let peers = Peers {
        clients: protocols.clone(),
        history: protocols,
        devices: fleet,
    };
    let apart = args.apart.start("booking").await?;
    let bookings = Bookings::start(
        apart.db.clone(),
        apart.clock.clone(),
        apart.bus.clone(),
        apart.directory(),
        peers,
    )
    .await?;
    let mut services = apart.services();
    bookings.mount(&mut services);
    bookings.spawn_workers(services.shutdown());
    apart.serve(services).await
}
