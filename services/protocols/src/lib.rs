//! Protocols: each client's recovery story (who they are, what they may not
//! do, what they trained, which sessions they had and how sore they felt),
//! the studio's protocols, and the rules check a session is booked against.
//!
//! The library is mounted by the `protocols` binary and by `recoveryd`.
//!
//! `grpc` is the thin tonic face; each area (`clients`, `screening`,
//! `waivers`, `history`, `plans`, `rules`, `audit`) is an `impl Protocols`
//! block holding its decisions; `store` holds every SQL statement; `wire`
//! converts and validates messages.

mod audit;
mod clients;
mod grpc;
mod history;
mod lists;
mod peers;
mod plans;
mod rules;
mod screening;
mod store;
mod waivers;
mod wire;

use std::future::Future;
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use recovery_kit::auth::BoxFuture;
use recovery_kit::db::Tx;
use recovery_kit::events::Bus;
use recovery_kit::idempotency::{self, Key};
use recovery_kit::outbox::Outbox;
use recovery_kit::server::Services;
use recovery_kit::time::{Clock, to_micros};
use recovery_kit::{Caller, Db, Engine, Error, Scope};
use recovery_proto::protocols::v1::protocol_service_server::ProtocolServiceServer;
use recovery_tenancy::Directory;
use tokio::task::JoinHandle;

pub use peers::IN_PROCESS_KEY_ID;

/// Protocols' idempotency records.
const IDEMPOTENCY_TABLE: &str = "protocols_idempotency";

/// Topic of the event written (to the outbox, in the erasure's own
/// transaction) when a client's personal fields are erased (payload: the
/// erased `Client`); other services drop their copies.
pub const CLIENT_ERASED: &str = "protocols.client_erased";

/// Protocols' outbox: events handed on after their transaction commits.
const OUTBOX_TABLE: &str = "protocols_outbox";
/// The topics protocols writes to its outbox.
const OUTBOX_TOPICS: &[&str] = &[CLIENT_ERASED];

/// The protocols service: its database, clock, outbox (whose relay
/// publishes on the bus) and where locations are looked up.
pub struct Protocols {
    db: Db,
    clock: Arc<dyn Clock>,
    outbox: Outbox,
    directory: Arc<dyn Directory>,
    /// Booking's open slots for recommended session steps, once told.
    slots: OnceLock<Arc<dyn recovery_peers::Slots>>,
    /// Pages of the client list and of timelines, under their versions.
    kept: lists::Kept,
}

impl Protocols {
    /// Protocols' migrations for `engine` (versions 40000 to 49999).
    pub fn migrator(engine: Engine) -> sqlx::migrate::Migrator {
        recovery_kit::migrator!(engine)
    }

    /// Runs the migrations and builds the service. Rule thresholds are each
    /// tenant's own (`protocols_rule_configs`), the studio defaults until a
    /// manager changes them.
    pub async fn start(
        db: Db,
        clock: Arc<dyn Clock>,
        bus: Bus,
        directory: Arc<dyn Directory>,
    ) -> anyhow::Result<Arc<Self>> {
        db.migrate(Self::migrator(db.engine())).await?;
        let outbox = Outbox::new(db.clone(), OUTBOX_TABLE, OUTBOX_TOPICS, bus);
        Ok(Arc::new(Self {
            db,
            clock,
            outbox,
            directory,
            slots: OnceLock::new(),
            kept: lists::Kept::default(),
        }))
    }

    /// Hands every erasure to `erasure` (booking's side): at least once, in
    /// order, retried with backoff until it succeeds; events written before
    /// the call and still waiting reach it too.
    pub fn on_erasure(&self, erasure: Arc<dyn recovery_peers::Erasure>) {
        self.outbox
            .add_consumer(Arc::new(peers::ForgetErased(erasure)));
    }

    /// Asks `slots` (booking's side) for the open slots of each session
    /// step `GetRecommendations` answers; without it, recommendations carry
    /// none. A second call changes nothing.
    pub fn suggest_with(&self, slots: Arc<dyn recovery_peers::Slots>) {
        let _ = self.slots.set(slots);
    }

    /// Runs the outbox relay until `shutdown` resolves: publishes each event
    /// on the bus once and hands it to the consumers (`on_erasure`).
    pub fn spawn_relay(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        self.outbox.spawn_relay(shutdown)
    }

    /// The outbox, e.g. to drive the relay by hand in tests
    /// (`outbox().pass()`) or to watch its backlog.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Mounts the gRPC service and its descriptors.
    pub fn mount(self: &Arc<Self>, services: &mut Services) {
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
                ProtocolServiceServer::from_arc(Arc::clone(self))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .describe(recovery_proto::FILE_DESCRIPTOR_SET);
    }
}

/// A change to a tenant's data: in which scope, by which key, when. Rows it
/// writes carry its key and time, and it writes its audit row
/// (`Change::audit`) in the same transaction.
#[derive(Debug, Clone, Copy)]
struct Change<'a> {
    scope: &'a Scope,
    /// The key making the change.
    actor: &'a str,
    now: Timestamp,
}

impl Protocols {
    /// A change by `caller` in `scope`, now.
    fn change<'a>(&self, caller: &'a Caller, scope: &'a Scope) -> Change<'a> {
        Change {
            scope,
            actor: &caller.key_id,
            now: self.clock.now(),
        }
    }

    /// Runs `work` — a create in the write transaction it is given, which
    /// reads the change and `new` and answers the created message — at most
    /// once per idempotency `key`. Returns the message and whether it is
    /// fresh (false for a replay of a stored result).
    async fn create_once<'a, N, T, F>(
        &self,
        change: Change<'a>,
        key: Option<&Key>,
        new: &'a N,
        work: F,
    ) -> Result<(T, bool), Error>
    where
        N: Sync,
        T: prost::Message + Default,
        F: for<'t> FnMut(&'t mut Tx, &'t (Change<'a>, &'a N)) -> BoxFuture<'t, Result<T, Error>>,
    {
        let input = (change, new);
        idempotency::create(
            &self.db,
            IDEMPOTENCY_TABLE,
            key,
            to_micros(change.now),
            &input,
            work,
        )
        .await
    }
}

/// The scope of a caller's reads and writes. Client data is the tenant's
/// own: no role table of `grpc` admits operators, and were one to, their
/// every-tenant scope is refused here.
fn tenant_scope(caller: &Caller) -> Result<Scope, Error> {
    match caller.scope()? {
        Scope::All => Err(Error::PermissionDenied(
            "client data is the tenant's own".to_owned(),
        )),
        tenant @ Scope::Tenant(_) => Ok(tenant),
    }
}

/// One page of a list, and the token of the next page (empty on the last).
#[derive(Debug, Clone)]
struct Listed<T> {
    items: Vec<T>,
    next_page_token: String,
}
