//! Booking: the studio's catalog (treatments), its resources (chambers,
//! rooms, therapists), open slots, holds and bookings with their session
//! lifecycle, and a live schedule for staff tablets.
//!
//! Open slots come from the pure `recovery-scheduling` crate; double booking
//! is impossible by construction (an exclusion constraint on PostgreSQL, one
//! serialised write transaction on SQLite).

mod availability;
mod bookings;
mod calendars;
mod devices;
mod erasure;
mod gates;
mod grpc;
mod holds;
mod lifecycle;
mod offer_watch;
mod offers;
mod open_slots;
mod plans;
mod reassign;
mod relay;
mod reschedule;
mod resources;
mod saga;
mod store;
mod suggestions;
mod treatments;
mod vetting;
mod waitlist;
mod watch;
mod wire;

use std::sync::Arc;

use recovery_kit::events::Bus;
use recovery_kit::outbox::Outbox;
use recovery_kit::server::{Services, Shutdown};
use recovery_kit::time::Clock;
use recovery_kit::{Db, Engine, Role};
use recovery_proto::booking::v1::booking_service_server::BookingServiceServer;
use recovery_tenancy::Directory;

pub use offers::{DEFAULT_OFFER_TIME, WaitlistConfig};

/// Booking's idempotency records.
const IDEMPOTENCY_TABLE: &str = "booking_idempotency";

/// The topic of booking changes; the scope is the location id, the payload
/// a `recovery.booking.v1.Booking`.
pub const BOOKING_TOPIC: &str = "booking.booking";

/// Booking's outbox: events that must reach fleet and protocols.
const OUTBOX_TABLE: &str = "booking_outbox";

/// Release a booking's device reservations in fleet (cancel, no-show, the
/// old window of a reschedule); payload a
/// `recovery.fleet.v1.ReleaseBookingReservationsRequest`.
pub const RELEASE_DEVICES_TOPIC: &str = "booking.release_devices";

/// A session was completed: record it in the client's history; payload a
/// `recovery.booking.v1.GetBookingRequest` naming the booking.
pub const SESSION_COMPLETED_TOPIC: &str = "booking.session_completed";

/// A window of a location to offer to the waitlist: it freed up (a
/// cancellation, a no-show, a lapsed or declined offer or hold, a blackout
/// removed, a resource added) or a client joined the waitlist for it; the
/// matcher offers its free slots; payload a
/// `recovery.booking.v1.SearchAvailabilityRequest` naming the location and
/// the window.
pub const SLOT_FREED_TOPIC: &str = "booking.slot_freed";

/// The topic of waitlist offers (made, accepted, declined, withdrawn,
/// expired); the scope is the location id, the payload a
/// `recovery.booking.v1.WaitlistOffer`. A live topic: binaries name it with
/// `BOOKING_TOPIC`.
pub const OFFER_TOPIC: &str = "booking.offer";

/// The services booking reaches in the studio's day: protocols (the client,
/// the rules, the history) and fleet (devices). In `recoveryd` the service
/// values themselves; apart, `recovery_peers::remote`.
#[derive(Clone)]
pub struct Peers {
    /// Whether a client exists and may book, and the rules' verdict.
    pub clients: Arc<dyn recovery_peers::Clients>,
    /// The client's recovery history, where completed sessions land.
    pub history: Arc<dyn recovery_peers::History>,
    /// Devices reserved with bookings.
    pub devices: Arc<dyn recovery_peers::Devices>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").finish_non_exhaustive()
    }
}

/// The booking service.
pub struct Bookings {
    db: Db,
    clock: Arc<dyn Clock>,
    bus: Bus,
    directory: Arc<dyn Directory>,
    peers: Peers,
    outbox: Outbox,
    /// One allocating transaction per location at a time.
    gates: gates::Gates,
    /// Calendars kept for searches, under their locations' versions.
    calendars: Arc<calendars::Calendars>,
    /// Treatments kept for searches, under their tenants' catalog versions.
    catalog: Arc<treatments::Catalog>,
    /// Pages of a location's day kept for lists, under its list versions.
    day_pages: Arc<bookings::DayPages>,
    /// Reads of a location's list versions, shared by lists asking at once.
    list_versions: Arc<bookings::ListVersions>,
    /// Reads of a location's search versions, shared by searches asking at once.
    search_versions: Arc<availability::SearchVersions>,
    /// The waitlist's offer time.
    waitlist: Arc<offers::Settings>,
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
    /// `directory`; changes are published on `bus`; clients, rules, history
    /// and devices are asked of `peers`. Call [`Bookings::spawn_workers`]
    /// to run the outbox relay and the saga sweeper.
    pub async fn start(
        db: Db,
        clock: Arc<dyn Clock>,
        bus: Bus,
        directory: Arc<dyn Directory>,
        peers: Peers,
    ) -> anyhow::Result<Arc<Self>> {
        db.migrate(Self::migrator(db.engine())).await?;
        let outbox = Outbox::new(
            db.clone(),
            OUTBOX_TABLE,
            &[
                RELEASE_DEVICES_TOPIC,
                SESSION_COMPLETED_TOPIC,
                SLOT_FREED_TOPIC,
            ],
            bus.clone(),
        );
        outbox.add_consumer(Arc::new(relay::Workflow::new(db.clone(), peers.clone())));
        let this = Arc::new(Self {
            db,
            clock,
            bus,
            directory,
            peers,
            outbox,
            gates: gates::Gates::default(),
            calendars: Arc::default(),
            catalog: Arc::default(),
            day_pages: Arc::new(bookings::DayPages::new(bookings::DAY_PAGES)),
            list_versions: Arc::default(),
            search_versions: Arc::default(),
            waitlist: Arc::default(),
            shutdown: Shutdown::never(),
        });
        // The waitlist's matcher takes freed slots off the outbox.
        this.outbox
            .add_consumer(Arc::new(offers::Matcher(Arc::downgrade(&this))));
        Ok(this)
    }

    /// Runs booking's background work until `shutdown`: the outbox relay
    /// (device releases and completed sessions to fleet and protocols,
    /// freed slots to the waitlist's matcher), the saga sweeper (at start,
    /// then every 30 s: releases devices reserved for bookings that never
    /// committed), the offer sweep (every 5 s: frees lapsed holds and
    /// offers and passes their slots on) and the hold pruner (at start, then
    /// every 5 minutes: expired holds, `Bookings::prune_holds`).
    pub fn spawn_workers(self: &Arc<Self>, shutdown: Shutdown) {
        let mut relay_shutdown = shutdown.clone();
        self.outbox
            .spawn_relay(async move { relay_shutdown.wait().await });
        self.spawn_offer_sweeper(offers::SWEEP_EVERY, shutdown.clone());
        self.spawn_hold_pruner(holds::PRUNE_EVERY, shutdown.clone());
        self.spawn_sweeper(saga::SWEEP_EVERY, shutdown);
    }

    /// The outbox, for tests and operators: `pass()` hands on every waiting
    /// event now, `backlog()` counts them.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Another handle on the same service (for tasks that outlive a call).
    fn clone_handle(&self) -> Self {
        Self {
            db: self.db.clone(),
            clock: Arc::clone(&self.clock),
            bus: self.bus.clone(),
            directory: Arc::clone(&self.directory),
            peers: self.peers.clone(),
            outbox: self.outbox.clone(),
            gates: self.gates.clone(),
            calendars: Arc::clone(&self.calendars),
            catalog: Arc::clone(&self.catalog),
            day_pages: Arc::clone(&self.day_pages),
            list_versions: Arc::clone(&self.list_versions),
            search_versions: Arc::clone(&self.search_versions),
            waitlist: Arc::clone(&self.waitlist),
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
        // Request ids are remembered for a day (kit::idempotency::KEEP).
        recovery_kit::idempotency::spawn_pruner(
            self.db.clone(),
            IDEMPOTENCY_TABLE,
            Arc::clone(&self.clock),
            services.shutdown(),
        );
        let max = services.limits().max_message_bytes;
        services
            .add(
                BookingServiceServer::from_arc(this)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
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
    /// Gives the demo location a whole-body cryo treatment, once, and lists
    /// the chambers it knows (fleet registers them).
    pub async fn seed_demo(&self, tenant_id: &str, location_id: &str) -> anyhow::Result<Demo> {
        use recovery_proto::booking::v1 as pb;
        let seeder = recovery_kit::Caller {
            tenant_id: Some(tenant_id.to_owned()),
            role: Role::Manager,
            key_id: "demo".into(),
        };
        let page = recovery_kit::page::Page::first(recovery_kit::page::MAX_SIZE);
        let existing = self
            .list_resources(&seeder, location_id, page)
            .await?
            .resources;
        // Chambers are registered in fleet, which tells booking (one
        // chamber, one record); here only those already known are listed.
        let chamber_ids: Vec<String> = existing
            .into_iter()
            .filter(|r| r.kind == pb::ResourceKind::CryoChamber as i32)
            .map(|r| r.id)
            .collect();
        let query = wire::TreatmentsQuery::parse(
            &pb::ListTreatmentsRequest::default(),
            &recovery_kit::page::Binding::internal(),
        )?;
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
