//! `protocols`: the protocols service on its own, authenticating keys and
//! looking up locations through the tenancy service.

use std::sync::Arc;

use clap::Parser;
use recovery_kit::config::ServerArgs;
use recovery_kit::events::Bus;
use recovery_kit::server::Services;
use recovery_kit::telemetry;
use recovery_kit::time::SystemClock;
use recovery_protocols::Protocols;
use recovery_tenancy::{Directory, RemoteArgs};

/// Clients, screening, waivers, activities, recovery history and protocols.
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
    let _telemetry = telemetry::init("protocols", args.server.otlp_endpoint.as_deref())?;
    let db = args.server.open_database().await?;
    let tenancy = Arc::new(args.tenancy.remote()?);
    let protocols = Protocols::start(
        db,
        Arc::new(SystemClock),
        Bus::default(),
        Arc::clone(&tenancy) as Arc<dyn Directory>,
    )
    .await?;
    let mut services = Services::new(tenancy);
    protocols.mount(&mut services);
    args.server.serve(services).await
}
