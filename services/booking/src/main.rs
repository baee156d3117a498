//! `booking`: the booking service on its own, next to a tenancy service.

use std::sync::Arc;

use clap::Parser;
use recovery_booking::Bookings;
use recovery_kit::config::ServerArgs;
use recovery_kit::events::Bus;
use recovery_kit::server::Services;
use recovery_kit::telemetry;
use recovery_kit::time::SystemClock;
use recovery_tenancy::RemoteArgs;

/// Treatments, resources, availability and bookings of the recovery backend.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    #[command(flatten)]
    tenancy: RemoteArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = telemetry::init("booking", args.server.otlp_endpoint.as_deref())?;
    let db = args.server.open_database().await?;
    let tenancy = Arc::new(args.tenancy.remote()?);
    let bookings =
        Bookings::start(db, Arc::new(SystemClock), Bus::default(), tenancy.clone()).await?;
    let mut services = Services::new(tenancy);
    bookings.mount(&mut services);
    args.server.serve(services).await
}
