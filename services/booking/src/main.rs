//! `booking`: the booking service on its own, next to tenancy, protocols
//! and fleet.

use std::sync::Arc;

use clap::Parser;
use recovery_booking::{Bookings, Peers};
use recovery_peers::remote::{Peer, RemoteFleet, RemoteProtocols};
use recovery_tenancy::apart::ApartArgs;

/// Treatments, resources, availability and bookings of the recovery backend.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    apart: ApartArgs,

    /// Where the protocols service listens: booking asks it about each
    /// client and the studio's rules before a hold or a booking, and hands
    /// it completed sessions, e.g. `http://127.0.0.1:50053`.
    #[arg(long, env = "RECOVERY_PROTOCOLS_URL")]
    protocols_url: String,

    /// Where the fleet service listens: booking reserves the devices a
    /// treatment needs there, e.g. `http://127.0.0.1:50054`.
    #[arg(long, env = "RECOVERY_FLEET_URL")]
    fleet_url: String,

    #[command(flatten)]
    relay: recovery_kit::config::RelayArgs,

    #[command(flatten)]
    waitlist: recovery_booking::WaitlistConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let service_key = args.apart.tenancy.service_key.clone();
    let protocols = Arc::new(RemoteProtocols(Peer::new(
        "protocols",
        &args.protocols_url,
        &service_key,
    )?));
    let fleet = Arc::new(RemoteFleet(Peer::new(
        "fleet",
        &args.fleet_url,
        &service_key,
    )?));
    let peers = Peers {
        clients: protocols.clone(),
        history: protocols,
        devices: fleet,
    };
    let apart = args
        .apart
        .start(
            "booking",
            &[
                recovery_booking::BOOKING_TOPIC,
                recovery_booking::OFFER_TOPIC,
            ],
        )
        .await?;
    let bookings = Bookings::start(
        apart.db.clone(),
        apart.clock.clone(),
        apart.bus.clone(),
        apart.directory(),
        peers,
    )
    .await?;
    args.relay.apply(&[bookings.outbox()]);
    bookings.configure_waitlist(&args.waitlist);
    let mut services = apart.services()?;
    bookings.mount(&mut services);
    bookings.spawn_workers(services.shutdown());
    apart.serve(services).await
}
