//! `tenancy`: the tenancy service on its own.

use std::sync::Arc;

use clap::Parser;
use recovery_kit::config::ServerArgs;
use recovery_kit::telemetry;
use recovery_kit::time::SystemClock;
use recovery_tenancy::{Bootstrap, Tenancy};

/// Tenants, locations and API keys of the recovery backend.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    #[command(flatten)]
    cache: recovery_tenancy::client::CacheArgs,

    /// A service key (at least 32 characters) to create if no key has this
    /// secret yet: what booking, fleet and protocols run apart use as their
    /// `--service-key`, so a deployment needs no person to issue it first.
    /// Never printed.
    #[arg(long, env = "RECOVERY_BOOTSTRAP_SERVICE_KEY", hide_env_values = true)]
    bootstrap_service_key: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = telemetry::init("tenancy", args.server.otlp_endpoint.as_deref())?;
    let db = args.server.open_database().await?;
    let tenancy = Tenancy::start(db, Arc::new(SystemClock), args.cache.ttl()).await?;
    let bootstrap_key = std::env::var("RECOVERY_BOOTSTRAP_KEY").ok();
    if let Bootstrap::Generated(key) = tenancy.bootstrap(bootstrap_key.as_deref()).await? {
        eprintln!("bootstrap operator key (shown once): {key}");
    }
    if let Some(key) = &args.bootstrap_service_key {
        tenancy.bootstrap_service_key(key).await?;
    }
    // Tenancy replicas drop a key another revoked at once (with Redis).
    let bus = args.server.bus(&[
        recovery_tenancy::KEY_REVOKED_TOPIC,
        recovery_tenancy::LOCATION_CHANGED_TOPIC,
    ])?;
    let mut services = args.server.services(tenancy.authenticator())?;
    tenancy.mount(&mut services);
    tenancy.share_revocations(&bus, services.shutdown());
    bus.spawn_reader(services.shutdown());
    args.server.serve(services).await
}
