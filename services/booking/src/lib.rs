//! Booking: the studio's catalog (treatments), its resources (chambers,
//! rooms, therapists), open slots, holds and bookings with their session
//! lifecycle, and a live schedule for staff tablets.
//!
//! Open slots come from the pure `recovery-scheduling` crate; double booking
//! is impossible by construction (an exclusion constraint on PostgreSQL, one
//! serialised write transaction on SQLite).

mod availability;
mod bookings;
mod grpc;
mod holds;
mod lifecycle;
mod resources;
mod store;
mod treatments;
mod watch;
mod wire;

use std::sync::Arc;

use recovery_kit::events::Bus;
use recovery_kit::server::{Services, Shutdown};
use recovery_kit::time::Clock;
use recovery_kit::{Db, Engine, Role};
use recovery_proto::booking::v1::booking_service_server::BookingServiceServer;
use recovery_tenancy::Directory;

/// Booking's idempotency records.
const IDEMPOTENCY_TABLE: &str = "booking_idempotency";

/// The topic of booking changes; the scope is the location id, the payload
/// a `recovery.booking.v1.Booking`.
pub const BOOKING_TOPIC: &str = "booking.booking";

/// The booking service.
pub struct Bookings {
    db: Db,
    clock: Arc<dyn Clock>,
    bus: Bus,
    directory: Arc<dyn Directory>,
    shutdown: Shutdown,
}

impl Bookings {
    /// Booking's migrations for `engine` (versions 20000 to 29999).
    pub fn migrator(engine: Engine) -> sqlx::migrate::Migrator {
        match engine {
            Engine::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Engine::Postgres => sqlx::migrate!("migrations/postgres"),
        }
    }

    /// Runs the migrations and builds the service. Locations come from
    /// `directory`; changes are published on `bus`.
    pub async fn start(
        db: Db,
        clock: Arc<dyn Clock>,
        bus: Bus,
        directory: Arc<dyn Directory>,
    ) -> anyhow::Result<Arc<Self>> {
        db.migrate(Self::migrator(db.engine())).await?;
        Ok(Arc::new(Self {
            db,
            clock,
            bus,
            directory,
            shutdown: Shutdown::never(),
        }))
    }

    /// Another handle on the same service (for tasks that outlive a call).
    fn clone_handle(&self) -> Self {
        Self {
            db: self.db.clone(),
            clock: Arc::clone(&self.clock),
            bus: self.bus.clone(),
            directory: Arc::clone(&self.directory),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Mounts the gRPC service; its watch streams end when `services` shuts
    /// down.
    pub fn mount(self: &Arc<Self>, services: &mut Services) {
        let this = Arc::new(Self {
            shutdown: services.shutdown(),
            ..self.clone_handle()
        });
        services
            .add(BookingServiceServer::from_arc(this))
            .describe(recovery_proto::FILE_DESCRIPTOR_SET);
    }
}

/// What [`Bookings::seed_demo`] made.
#[derive(Debug)]
pub struct Demo {
    /// The whole-body cryotherapy treatment.
    pub cryo_treatment_id: String,
    /// The chambers of the location.
    pub chamber_ids: Vec<String>,
}

impl Bookings {
    /// Gives the demo location two cryo chambers and a whole-body cryo
    /// treatment, once.
    pub async fn seed_demo(&self, tenant_id: &str, location_id: &str) -> anyhow::Result<Demo> {
        use recovery_proto::booking::v1 as pb;
        let seeder = recovery_kit::Caller {
            tenant_id: Some(tenant_id.to_owned()),
            role: Role::Manager,
            key_id: "demo".into(),
        };
        let scope = seeder.scope()?;
        let page = wire::page(0, "")?;
        let existing = self
            .list_resources(&seeder, location_id, page)
            .await?
            .resources;
        let mut chamber_ids: Vec<String> = existing
            .into_iter()
            .filter(|r| r.kind == pb::ResourceKind::CryoChamber as i32)
            .map(|r| r.id)
            .collect();
        if chamber_ids.is_empty() {
            for name in ["Chamber 1", "Chamber 2"] {
                let request = pb::CreateResourceRequest {
                    resource: Some(pb::Resource {
                        location_id: location_id.to_owned(),
                        display_name: name.into(),
                        kind: pb::ResourceKind::CryoChamber as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                };
                let new = wire::NewResource::parse(&request, &scope)?;
                let chamber = self.create_resource(&seeder, new).await?;
                chamber_ids.push(chamber.id);
            }
        }
        let query = wire::TreatmentsQuery::parse(&pb::ListTreatmentsRequest::default())?;
        let treatments = self.list_treatments(&seeder, query).await?.treatments;
        let cryo_treatment_id = if let Some(t) = treatments.into_iter().next() {
            t.id
        } else {
            let request = pb::CreateTreatmentRequest {
                treatment: Some(pb::Treatment {
                    display_name: "Whole-body cryotherapy".into(),
                    modality: pb::Modality::WholeBodyCryotherapy as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            };
            let new = wire::NewTreatment::parse(&request, &seeder)?;
            self.create_treatment(&seeder, new).await?.id
        };
        Ok(Demo {
            cryo_treatment_id,
            chamber_ids,
        })
    }
}
