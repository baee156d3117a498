//! One pool type over SQLite (embedded) or PostgreSQL, chosen by URL scheme,
//! and each service's migrations run at start for the engine in use.
//!
//! Queries are written once, with `$1` placeholders (both engines accept
//! them), ids as TEXT and instants as BIGINT microseconds since the epoch.
//! On SQLite writes go through a single connection, so a write transaction
//! that reads before it writes never loses a race; reads use a pool (WAL).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Executor as _};

use crate::Error;
use crate::page::TokenKey;

mod reading;
mod writing;
pub(crate) use reading::note as note_fault;
pub use reading::{Reader, let_go};
use reading::{STASHED, Stash};
pub use writing::Tx;
use writing::Writer;

/// How long a call waits for a PostgreSQL connection before it is answered
/// UNAVAILABLE (`sqlx::Error::PoolTimedOut`): a pool run dry should tell the
/// caller to back off within a request's patience, not queue it for 10 s.
/// SQLite's one writer keeps 10 s: it is a queue by design, every write
/// waits its turn there.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The PostgreSQL role the services' queries run as: made by the
/// migrations, without `BYPASSRLS`, so row-level security holds for it.
pub const ROW_ROLE: &str = "recovery_app";

/// The PostgreSQL setting that names whose rows a connection may see: a
/// tenant id, or `*` for every tenant.
pub const TENANT_SETTING: &str = "recovery.tenant";

tokio::task_local! {
    /// Whose rows the current call's queries may see; unset outside calls.
    static CONFINED: Option<crate::Scope>;
    /// Set while [`Db::begin_holding`] takes a connection whose `BEGIN`
    /// confines it: the pool's hook then leaves it as it is.
    static CONFINED_BY_BEGIN: ();
}

/// Runs `call` with its PostgreSQL queries confined by row-level security
/// to the rows of `scope` (`None`: no tenant's rows at all). Queries made
/// outside any `confined` (start-up, sweeps, relays, tasks a call spawns)
/// see every tenant, as the service's own work must.
pub async fn confined<F: Future>(scope: Option<crate::Scope>, call: F) -> F::Output {
    CONFINED.scope(scope, call).await
}

/// The value of [`TENANT_SETTING`] for the current task.
fn tenant_setting() -> String {
    match CONFINED.try_with(Clone::clone) {
        Err(_) | Ok(Some(crate::Scope::All)) => "*".to_owned(),
        Ok(Some(crate::Scope::Tenant(tenant))) => tenant,
        Ok(None) => String::new(),
    }
}

/// Puts a PostgreSQL connection, as it is taken from the pool, under the
/// current task's tenant and, once the migrations made it, [`ROW_ROLE`].
async fn confine(
    conn: &mut AnyConnection,
    tenant: String,
    as_role: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('role', $1, false), set_config($2, $3, false)")
        .bind(if as_role { ROW_ROLE } else { "none" })
        .bind(TENANT_SETTING)
        .bind(tenant)
        .execute(conn)
        .await?;
    Ok(())
}

/// `value` as a SQL string literal, when it is made only of characters
/// that need no escaping (ids are UUIDs, tenants also `*` or empty, lock
/// keys ids joined by `/`); `None` for anything else, which then goes as a
/// bound parameter.
fn plain_literal(value: &str) -> Option<String> {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'*' | b'_' | b'.'))
        .then(|| format!("'{value}'"))
}

/// A PostgreSQL `BEGIN` that also confines the transaction to a tenant
/// (`confine`: the tenant and whether as [`ROW_ROLE`]; its `set_config`s
/// local to the transaction) and takes the advisory lock `hashtext(lock)`,
/// all in one round trip (one simple query); `None` when a value is not a
/// [`plain_literal`]. Without `confine`, the connection's own confinement
/// holds.
fn begin_statement(confine: Option<(&str, bool)>, lock: Option<&str>) -> Option<String> {
    let mut statement = String::from("BEGIN");
    if let Some((tenant, as_role)) = confine {
        let role = if as_role { ROW_ROLE } else { "none" };
        statement.push_str("; SELECT set_config('role', '");
        statement.push_str(role);
        statement.push_str("', true), set_config('");
        statement.push_str(TENANT_SETTING);
        statement.push_str("', ");
        statement.push_str(&plain_literal(tenant)?);
        statement.push_str(", true)");
    }
    if let Some(lock) = lock {
        statement.push_str("; SELECT pg_advisory_xact_lock(hashtext(");
        statement.push_str(&plain_literal(lock)?);
        statement.push_str("))");
    }
    Some(statement)
}

/// The database engine behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded: a file in the data directory.
    Sqlite,
    /// Production and multi-studio.
    Postgres,
}

impl Engine {
    /// The engine a URL names.
    pub fn of_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            anyhow::bail!("unsupported database url: use sqlite://… or postgres://…")
        }
    }
}

/// A connected database.
#[derive(Debug, Clone)]
pub struct Db {
    read: AnyPool,
    write: AnyPool,
    /// Connections for reading version counters only ([`Db::counter`]).
    counters: AnyPool,
    engine: Engine,
    /// PostgreSQL: whether connections act as [`ROW_ROLE`], which
    /// [`Db::migrate`] turns on once the migrations made it.
    as_role: Arc<AtomicBool>,
    /// The deployment's page-token key, read by [`Db::migrate`].
    token_key: Arc<RwLock<Option<TokenKey>>>,
    /// PostgreSQL: idle readers and counters kept out of their pools
    /// between reads (`reading.rs`).
    read_stash: Arc<Stash>,
    counter_stash: Arc<Stash>,
    /// SQLite: the one writer connection, kept out of its pool between
    /// write transactions (`writing.rs`).
    writer: Arc<Writer>,
}

pub(crate) static DRIVERS: Once = Once::new();

/// PostgreSQL connections per process for reads and writes: 20 for calls
/// at once, and room for those idle in the readers' stash
/// (`reading.rs`).
pub(crate) const PG_CONNECTIONS: u32 = 20 + STASHED;

/// PostgreSQL connections for version counters ([`Db::counter`]) per
/// process: a counter read is one short statement.
const COUNTER_CONNECTIONS: u32 = 4;

/// SQLite connections for reads: two per core, at least 2 and at most 8.
/// Each connection steps its statements on a thread of its own, so reads
/// are CPU on those threads; more threads than that only take turns on
/// the cores (on two cores 4 readers served the lists 1.05-1.1x the calls
/// of 8, `docs/BENCHMARKS.md`). No path holds a reader while it waits on
/// a peer, a stream or a write transaction, so a small pool is not
/// starved by a slow call elsewhere.
fn sqlite_readers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    u32::try_from(cores.saturating_mul(2))
        .unwrap_or(u32::MAX)
        .clamp(2, 8)
}

impl Db {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let engine = Engine::of_url(url)?;
        crate::telemetry::note_engine(engine);
        let options: AnyConnectOptions = url.parse().context("database url")?;
        let as_role = Arc::new(AtomicBool::new(false));
        let db = match engine {
            Engine::Sqlite => {
                // No ping before each acquire (sqlx's default): a file's
                // connection does not go away, and the ping is a round trip
                // to the connection's worker thread on every call.
                let pool = || {
                    AnyPoolOptions::new()
                        .test_before_acquire(false)
                        .acquire_timeout(Duration::from_secs(10))
                        .after_connect(|conn, _meta| {
                            Box::pin(async move {
                                conn.execute("PRAGMA journal_mode = WAL").await?;
                                conn.execute("PRAGMA busy_timeout = 5000").await?;
                                conn.execute("PRAGMA foreign_keys = ON").await?;
                                conn.execute("PRAGMA synchronous = NORMAL").await?;
                                Ok(())
                            })
                        })
                };
                let write = pool()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await
                    .context("open sqlite database")?;
                let read = pool()
                    .max_connections(sqlite_readers())
                    .connect_with(options)
                    .await
                    .context("open sqlite database")?;
                Self {
                    counters: read.clone(),
                    read,
                    write,
                    engine,
                    as_role,
                    token_key: Arc::default(),
                    read_stash: Stash::new(),
                    counter_stash: Stash::new(),
                    writer: Arc::default(),
                }
            }
            Engine::Postgres => {
                // The hooks run in the task that takes the connection, so
                // they read its call's tenant.
                let (on_connect, on_acquire) = (Arc::clone(&as_role), Arc::clone(&as_role));
                // No ping before each acquire (sqlx's default, a round trip
                // to the server on every call): `before_acquire` confines the
                // connection with a query on every acquire anyway, and a
                // connection that fails it is dropped and another taken.
                let pool = AnyPoolOptions::new()
                    .max_connections(PG_CONNECTIONS)
                    .test_before_acquire(false)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_connect(move |conn, _meta| {
                        let (tenant, as_role) =
                            (tenant_setting(), on_connect.load(Ordering::Relaxed));
                        Box::pin(confine(conn, tenant, as_role))
                    })
                    .before_acquire(move |conn, _meta| {
                        let confined_by_begin = CONFINED_BY_BEGIN.try_with(|()| ()).is_ok();
                        let (tenant, as_role) =
                            (tenant_setting(), on_acquire.load(Ordering::Relaxed));
                        Box::pin(async move {
                            if !confined_by_begin {
                                confine(conn, tenant, as_role).await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(options.clone())
                    .await
                    .context("connect to postgres")?;
                // Version counters: confined once, when connected, to every
                // tenant (as the service's own work is), and never again, so
                // a counter costs one round trip instead of two. Only
                // numbers are read through it (`Db::counter`).
                let on_counter = Arc::clone(&as_role);
                let counters = AnyPoolOptions::new()
                    .max_connections(COUNTER_CONNECTIONS + STASHED)
                    .test_before_acquire(false)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_connect(move |conn, _meta| {
                        let as_role = on_counter.load(Ordering::Relaxed);
                        Box::pin(confine(conn, "*".to_owned(), as_role))
                    })
                    .connect_lazy_with(options);
                Self {
                    counters,
                    read: pool.clone(),
                    write: pool,
                    engine,
                    as_role,
                    token_key: Arc::default(),
                    read_stash: Stash::new(),
                    counter_stash: Stash::new(),
                    writer: Arc::default(),
                }
            }
        };
        Ok(db)
    }

    /// The engine in use.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The readers' pool itself, for tests that look at the database:
    /// services read through [`Db::read`], which takes from the stash.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Runs a service's migrations. Every service shares the one migrations
    /// table, so each set ignores versions it does not know (the others'):
    /// services number their migrations in their own range.
    /// On PostgreSQL they run as the connecting user (who owns the
    /// tables), not as [`ROW_ROLE`].
    pub async fn migrate(&self, mut migrator: Migrator) -> anyhow::Result<()> {
        migrator.set_ignore_missing(true);
        // SQLite's one writer may be out of its pool already (`Writer`).
        let mut writer;
        let mut pooled;
        let conn: &mut AnyConnection = if self.engine == Engine::Sqlite {
            writer = self
                .writer
                .lock(&self.write)
                .await
                .context("run migrations")?;
            &mut writer
        } else {
            pooled = self.write.acquire().await.context("run migrations")?;
            pooled
                .execute("RESET ROLE")
                .await
                .context("run migrations")?;
            &mut pooled
        };
        migrator.run(&mut *conn).await.context("run migrations")?;
        let key = token_key(conn, self.engine)
            .await
            .context("read the page-token key")?;
        *self
            .token_key
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(key);
        if self.engine == Engine::Postgres {
            let usable: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1 \
                 AND pg_has_role(rolname, 'MEMBER'))",
            )
            .bind(ROW_ROLE)
            .fetch_one(&mut *conn)
            .await
            .context("find the row-level security role")?;
            // From the next connection taken on, queries act as the role.
            self.as_role.store(usable, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The key that signs page tokens: the deployment's, kept in the
    /// database (every replica and restart shares it) once [`Db::migrate`]
    /// ran; a process-lived random key before.
    pub fn token_key(&self) -> TokenKey {
        if let Some(key) = &*self
            .token_key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return key.clone();
        }
        self.token_key
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(TokenKey::random)
            .clone()
    }

    /// What a list request's page tokens are bound to: its list, the
    /// caller's tenant and `unpaged`, the request without its page size
    /// and token (`recovery_proto::Paged::unpaged`).
    pub fn pages<M: prost::Message>(
        &self,
        caller: &crate::Caller,
        unpaged: &M,
    ) -> Result<crate::page::Binding, Error> {
        Ok(self.token_key().bind(&caller.scope()?, unpaged))
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.read_stash.drain();
        self.counter_stash.drain();
        self.writer.release().await;
        self.write.close().await;
        self.read.close().await;
    }
}

/// Reads the deployment's page-token key from `kit_secrets`, making it the
/// first time. Not tenant data: the table has no row security; the
/// services' role ([`ROW_ROLE`]) has no right to it at all, only the owner
/// (who runs migrations) reads it.
async fn token_key(conn: &mut AnyConnection, engine: Engine) -> Result<TokenKey, sqlx::Error> {
    let mut fresh = [0_u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let mut tx = sqlx::Connection::begin(conn).await?;
    if engine == Engine::Postgres {
        // Replicas starting together: one makes the table and the key.
        sqlx::query("SELECT pg_advisory_xact_lock(7206373911)")
            .execute(&mut *tx)
            .await?;
    }
    tx.execute(
        "CREATE TABLE IF NOT EXISTS kit_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )
    .await?;
    if engine == Engine::Postgres {
        // The services' role gets every new table by default: not this one.
        tx.execute(
            "DO $$ BEGIN REVOKE ALL ON kit_secrets FROM recovery_app; \
             EXCEPTION WHEN undefined_object THEN NULL; END $$",
        )
        .await?;
    }
    sqlx::query("INSERT INTO kit_secrets (name, value) VALUES ('page_tokens', $1) ON CONFLICT (name) DO NOTHING")
        .bind(hex::encode(fresh))
        .execute(&mut *tx)
        .await?;
    let stored: String =
        sqlx::query_scalar("SELECT value FROM kit_secrets WHERE name = 'page_tokens'")
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let bytes = hex::decode(&stored)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| sqlx::Error::Decode("kit_secrets.page_tokens is not 32 hex bytes".into()))?;
    Ok(TokenKey::new(bytes))
}

/// The row `id` of `table` (its `columns`) if `scope` sees it, read with
/// `lock`: the one by-id read of every store.
pub async fn by_id<T>(
    conn: &mut AnyConnection,
    (table, columns): (&str, &str),
    scope: &crate::Scope,
    id: &str,
    lock: Lock,
    from_row: impl FnOnce(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
) -> Result<Option<T>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {columns} FROM {table} WHERE id = $1 AND {}{}",
        scope.filter("tenant_id", 2),
        lock.clause_for(conn)
    ))
    .bind(id)
    .bind(scope.tenant())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The condition of a filter a call may leave out, its values bound as
/// `params`: `condition` when the call sets it, else `$n IS NULL` for each
/// (true: a filter left out binds NULL). With one statement text per shape
/// of call, where `($n IS NULL OR condition)` served every shape, the
/// planner sees the conditions the call has: PostgreSQL can then keep a
/// generic plan as good as one made for the call's values, instead of
/// planning the statement again on every call. (So can a literal `LIMIT`:
/// a list writes its page size into the text, one of a handful.)
pub fn optional(set: bool, condition: &str, params: &[u8]) -> String {
    if set {
        format!("({condition})")
    } else {
        params
            .iter()
            .map(|n| format!("${n} IS NULL"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

/// `$first, $first+1, …`: `n` placeholders for an `IN (…)` list, which
/// both engines take.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `error` is a unique-constraint violation on either engine.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// Whether `error` is a PostgreSQL exclusion-constraint violation (two
/// overlapping reservations of one resource).
pub fn is_exclusion_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("23P01"))
}

/// Whether a transaction failed only because of concurrency and may simply
/// be run again: serialization failures and deadlocks on PostgreSQL, a busy
/// database on SQLite.
pub fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => matches!(
            e.code().as_deref(),
            Some("40001" | "40P01" | "5" | "6" | "517")
        ),
        _ => false,
    }
}

/// How many times a transaction that failed with [`is_retryable`] is tried.
pub const MAX_ATTEMPTS: u32 = 5;

/// Whether a read inside a write transaction locks the rows it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// A plain read.
    Read,
    /// The rows are read to be changed: `FOR UPDATE` on PostgreSQL. SQLite's
    /// write transactions are serialised already, so it needs nothing.
    ForUpdate,
}

impl Lock {
    /// The clause that ends a `SELECT` on `engine`.
    pub fn clause(self, engine: Engine) -> &'static str {
        match (self, engine) {
            (Lock::ForUpdate, Engine::Postgres) => " FOR UPDATE",
            (Lock::Read, _) | (Lock::ForUpdate, Engine::Sqlite) => "",
        }
    }

    /// The clause for the engine behind `conn` (a transaction or a
    /// connection).
    pub fn clause_for(self, conn: &AnyConnection) -> &'static str {
        self.clause(engine_of(conn))
    }
}

/// Takes the advisory lock `hashtext(key)` until the connection's
/// transaction ends (PostgreSQL; SQLite's write transactions are
/// serialised already: nothing is taken there). [`Db::begin_holding`]
/// takes it as the transaction begins.
pub async fn hold(conn: &mut AnyConnection, key: &str) -> Result<(), sqlx::Error> {
    if engine_of(conn) == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The engine behind a connection.
pub fn engine_of(conn: &AnyConnection) -> Engine {
    if conn.backend_name() == "PostgreSQL" {
        Engine::Postgres
    } else {
        Engine::Sqlite
    }
}

/// An optional double as a statement parameter: text, which the statement
/// casts back (`CAST($n AS DOUBLE PRECISION)`, on both engines). sqlx 0.8's
/// `Any` driver declares a NULL `f64` as a 4-byte `real` on PostgreSQL, and
/// a prepared statement keeps its parameters' types, so after a NULL the
/// next statement with a value on that connection was refused ("incorrect
/// binary data format"). Text has one format, NULL or not, and Rust prints
/// an `f64` so that it reads back the same.
#[must_use]
pub fn double(value: Option<f64>) -> Option<String> {
    value.map(|v| v.to_string())
}

/// How one attempt of a transaction that [`retry`] runs ended, when it did
/// not give its answer.
#[derive(Debug)]
pub enum Attempt {
    /// Lost a race (a serialization failure, a busy database, a conflict
    /// that a constraint refused): run again; if no attempt is left, answer
    /// the error.
    Again(Error),
    /// A final answer.
    Stop(Error),
}

impl Attempt {
    /// The same attempt, its error given one more fact (see
    /// [`Error::with_fact`]).
    #[must_use]
    pub fn with_fact(self, key: &str, value: impl Into<String>) -> Self {
        match self {
            Self::Again(error) => Self::Again(error.with_fact(key, value)),
            Self::Stop(error) => Self::Stop(error.with_fact(key, value)),
        }
    }

    /// `conflict` when `error` is an exclusion violation (another
    /// transaction took the same resource first: the next attempt sees it),
    /// otherwise what `From<sqlx::Error>` says.
    pub fn on_exclusion(error: sqlx::Error, conflict: impl FnOnce() -> Error) -> Self {
        if is_exclusion_violation(&error) {
            Attempt::Again(conflict())
        } else {
            error.into()
        }
    }
}

impl From<sqlx::Error> for Attempt {
    fn from(error: sqlx::Error) -> Self {
        if is_retryable(&error) {
            Attempt::Again(Error::Unavailable(format!("database busy: {error}")))
        } else {
            Attempt::Stop(error.into())
        }
    }
}

impl From<Error> for Attempt {
    fn from(error: Error) -> Self {
        Attempt::Stop(error)
    }
}

/// Runs `attempt` until it answers, at most `attempts` times: the one retry
/// loop for transactions that can lose a race. Each attempt opens and
/// commits (or drops) its own transaction.
pub async fn retry<T, F, Fut>(attempts: u32, mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    let mut last = Error::Unavailable("no attempt was made".to_owned());
    for _ in 0..attempts.max(1) {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Attempt::Stop(error)) => return Err(error),
            Err(Attempt::Again(error)) => last = error,
        }
    }
    Err(last)
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
