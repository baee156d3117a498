//! `recoveryd`: every recovery service in one process on one port, on an
//! embedded SQLite database by default (PostgreSQL with `--database-url`).

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use recovery_booking::{Bookings, Peers};
use recovery_fleet::Fleet;
use recovery_kit::config::ServerArgs;
use recovery_kit::telemetry;
use recovery_kit::time::{Clock, SystemClock};
use recovery_protocols::Protocols;
use recovery_tenancy::{Bootstrap, Directory, Tenancy};

mod demo;

/// The recovery studio backend, all services in one process.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    #[command(flatten)]
    cache: recovery_tenancy::client::CacheArgs,

    #[command(flatten)]
    fleet: recovery_fleet::Config,

    #[command(flatten)]
    relay: recovery_kit::config::RelayArgs,

    #[command(flatten)]
    waitlist: recovery_booking::WaitlistConfig,

    /// Seed a demo studio (one tenant, one location with opening hours, two
    /// cryo chambers registered in fleet and a whole-body cryo treatment)
    /// and print a fresh manager key for it.
    #[arg(long, env = "RECOVERY_DEMO")]
    demo: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = telemetry::init("recoveryd", args.server.otlp_endpoint.as_deref())?;
    let db = args.server.open_database().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Tablets watch the schedule, the waitlist's offers and the device
    // board, and every replica drops a key another revoked and a location
    // another changed: with Redis, those follow every replica.
    let bus = args.server.bus(&[
        recovery_booking::BOOKING_TOPIC,
        recovery_booking::OFFER_TOPIC,
        recovery_fleet::DEVICE_TOPIC,
        recovery_tenancy::KEY_REVOKED_TOPIC,
        recovery_tenancy::LOCATION_CHANGED_TOPIC,
    ])?;
    let tenancy = Tenancy::start(db.clone(), Arc::clone(&clock), args.cache.ttl()).await?;
    // In one process, tenancy answers the other services' lookups directly.
    let directory: Arc<dyn Directory> = tenancy.clone();
    let protocols = Protocols::start(
        db.clone(),
        Arc::clone(&clock),
        bus.clone(),
        Arc::clone(&directory),
    )
    .await?;
    let fleet = Fleet::start(
        db.clone(),
        Arc::clone(&clock),
        bus.clone(),
        Arc::clone(&directory),
        args.fleet,
    )
    .await?;
    // In one process the services answer each other directly: booking asks
    // protocols about clients and rules and hands it completed sessions,
    // reserves devices from fleet, and hears of erasures from protocols.
    let peers = Peers {
        clients: protocols.clone(),
        history: protocols.clone(),
        devices: fleet.clone(),
    };
    let bookings = Bookings::start(db, clock, bus.clone(), directory, peers).await?;
    bookings.configure_waitlist(&args.waitlist);
    protocols.on_erasure(bookings.clone());
    // Booking's and protocols' events wait while paused; fleet's device
    // links keep flowing, so booking still learns of the studio's chambers.
    args.relay.apply(&[bookings.outbox(), protocols.outbox()]);
    protocols.suggest_with(bookings.clone());
    // Fleet tells booking about the chambers and compression systems it
    // offers as resources.
    fleet.on_device_links(bookings.clone());
    let bootstrap_key = std::env::var("RECOVERY_BOOTSTRAP_KEY").ok();
    if let Bootstrap::Generated(key) = tenancy.bootstrap(bootstrap_key.as_deref()).await? {
        eprintln!("bootstrap operator key (shown once): {key}");
    }
    let base = if args.demo {
        let demo = tenancy.seed_demo().await?;
        let catalog = bookings
            .seed_demo(&demo.tenant_id, &demo.location_id)
            .await?;
        Some(demo::Base {
            tenant_id: demo.tenant_id,
            location_id: demo.location_id,
            manager_key: demo.manager_key,
            cryo_treatment_id: catalog.cryo_treatment_id,
        })
    } else {
        None
    };

    let mut services = args.server.services(tenancy.authenticator())?;
    tenancy.mount(&mut services);
    bookings.mount(&mut services);
    protocols.mount(&mut services);
    fleet.mount(&mut services);
    tenancy.share_revocations(&bus, services.shutdown());
    bus.spawn_reader(services.shutdown());
    fleet.spawn_sweeper(Duration::from_secs(15), services.shutdown());
    fleet.spawn_relay(services.shutdown());
    bookings.spawn_workers(services.shutdown());
    let mut shutdown = services.shutdown();
    protocols.spawn_relay(async move { shutdown.wait().await });
    let listener = args.server.bind().await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { args.server.serve_on(listener, services).await });
    if let Some(base) = base {
        // The rest of the demo studio is made through the API, as a studio
        // would make it.
        let studio = demo::seed(addr, base).await?;
        eprintln!("{}", studio.describe());
    }
    server.await?
}
