//! One reader connection for a run of reads that follow each other in a
//! call ([`Db::reading`]).
//!
//! On PostgreSQL every connection taken from the pool is confined to the
//! caller's tenant first (`confine`, a round trip of its own). A booking's
//! rules read the client's bookings nearby (booking), then the client and
//! their facts (protocols, in process): two connections taken, two
//! `set_config`s, one after the other in one task, for one tenant. Inside
//! [`Db::reading`] the connection a read gives back is kept for the next
//! read of the same task and tenant, and goes back to the pool when the
//! block ends: one confinement for the run.
//!
//! A kept connection is only ever handed to the task that kept it, and only
//! while that task is confined to the tenant it was confined to; a call
//! that waits on something else (a peer across the network) lets it go
//! first ([`let_go`]), so no path holds a reader while it waits.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection};

use super::{Db, Engine, tenant_setting};

tokio::task_local! {
    /// The connection a [`Db::reading`] block keeps between its reads, with
    /// what it is confined to.
    static KEPT: RefCell<Option<Held>>;
}

/// Idle PostgreSQL connections a pool has given out, kept out of it
/// between reads and write transactions (`writing.rs`), each with what it
/// is confined to.
///
/// A connection given back to an sqlx pool is pinged first (a round trip,
/// `Floating::return_to_pool`), and one taken from the reader pool is
/// confined to the caller's tenant (another). A read through the stash
/// takes a connection already confined as it needs, and gives it back
/// without the ping: two round trips fewer for a read (one fewer for a
/// version counter, whose connections are all confined alike).
///
/// Small and short-lived: at most [`STASHED`] connections, the oldest
/// handed back to its pool when another comes, and any left idle for
/// [`STASH_IDLE`] handed back as the stash is next used; the pool is made
/// that much larger. A call waiting on the pool also takes the next
/// connection put here, whatever it is confined to (confining it again), so
/// none waits while one lies idle here. A connection's first statement
/// after a cancelled read waits for that read's answer to drain, as sqlx
/// does on every use.
pub(crate) struct Stash {
    idle: Mutex<VecDeque<Idle>>,
    /// Told when a connection is put here, for the calls waiting on the
    /// pool.
    put: tokio::sync::Notify,
}

/// Connections a [`Stash`] keeps at most.
pub(crate) const STASHED: u32 = 4;

/// How long a connection stays in a [`Stash`] unused.
const STASH_IDLE: Duration = Duration::from_secs(30);

/// How long a connection goes between stash and use before it is given
/// back to its pool once (which pings it, and closes it past the pool's
/// lifetime).
const STASH_LIFETIME: Duration = Duration::from_secs(300);

/// Connection faults seen in this process ([`note`]): a connection taken
/// before the last is given back to its pool, not stashed, since the
/// pool's ping on return closes it if it is broken (the server restarted,
/// the link dropped) instead of handing it to the next read.
static FAULTS: AtomicU64 = AtomicU64::new(0);

/// Notes `error` if it says a connection may be broken.
pub(crate) fn note(error: &sqlx::Error) {
    let fault = match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions, and the server shutting down.
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    };
    if fault {
        FAULTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a PostgreSQL connection is confined to: the tenant setting and
/// whether it acts as the row role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Confined {
    pub(crate) tenant: String,
    pub(crate) as_role: bool,
}

struct Idle {
    confined: Confined,
    conn: PoolConnection<Any>,
    since: Instant,
    /// When it left its pool.
    out: Instant,
    /// [`FAULTS`] when it was stashed.
    faults: u64,
}

impl Stash {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(VecDeque::new()),
            put: tokio::sync::Notify::new(),
        })
    }

    /// A connection confined as `confined`: from the stash when one is,
    /// else from `pool` (whose hook confines it). While the pool has none
    /// to give (all out, none idle), one stashed for another tenant is
    /// taken and confined again, now or as the next is put here, so no
    /// call waits on the pool while a connection lies idle in the stash.
    ///
    /// For a writer (`writer`), whose `BEGIN` confines its transaction,
    /// any stashed connection does as it is (one confined as `confined`
    /// first), and one taken from the pool is left as it was. Returned with
    /// what the connection is confined to, when that is known.
    pub(super) async fn take_or_acquire(
        &self,
        pool: &sqlx::AnyPool,
        confined: &Confined,
        writer: bool,
    ) -> Result<Taken, sqlx::Error> {
        if let Some((idle, _)) = self.take(confined, writer) {
            return Ok((idle.conn, idle.out, Some(idle.confined)));
        }
        // Boxed: the pool's future is large, and only a miss waits on it.
        let mut acquire = if writer {
            Box::pin(super::CONFINED_BY_BEGIN.scope((), pool.acquire()))
                as std::pin::Pin<Box<dyn Future<Output = _> + Send + '_>>
        } else {
            Box::pin(pool.acquire())
        };
        loop {
            let mut put = std::pin::pin!(self.put.notified());
            put.as_mut().enable();
            let dry = pool.num_idle() == 0 && pool.size() >= pool.options().get_max_connections();
            if dry && let Some((mut idle, matched)) = self.take(confined, true) {
                if !matched && !writer {
                    super::confine(&mut idle.conn, confined.tenant.clone(), confined.as_role)
                        .await?;
                    idle.confined = confined.clone();
                }
                return Ok((idle.conn, idle.out, Some(idle.confined)));
            }
            tokio::select! {
                conn = acquire.as_mut() => {
                    let confined = (!writer).then(|| confined.clone());
                    return conn.map(|conn| (conn, Instant::now(), confined));
                }
                () = put => {}
            }
        }
    }

    /// The connection most lately kept that is confined as `confined`, or
    /// (with `any`) the one most lately kept; and whether it is confined as
    /// asked.
    fn take(&self, confined: &Confined, any: bool) -> Option<(Idle, bool)> {
        let faults = FAULTS.load(Ordering::Relaxed);
        let mut stale = Vec::new();
        let conn = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Oldest first: kept in the order they were put, each with the
            // faults and the time of then, so those taken before the last
            // fault, or idle too long, are all at the front.
            while idle
                .front()
                .is_some_and(|i| i.faults != faults || i.since.elapsed() >= STASH_IDLE)
            {
                stale.extend(idle.pop_front());
            }
            let at = idle
                .iter()
                .rposition(|i| i.confined == *confined)
                .or_else(|| any.then(|| idle.len().checked_sub(1)).flatten());
            at.and_then(|at| idle.remove(at)).map(|i| {
                let matched = i.confined == *confined;
                (i, matched)
            })
        };
        // Back to the pool, outside the lock.
        drop(stale);
        conn
    }

    fn put(&self, held: &mut Held) {
        let Some(mut conn) = held.conn.take() else {
            return;
        };
        if held.open {
            // A transaction may be open on it, holding its locks: closed,
            // which ends it in the server.
            conn.close_on_drop();
            drop(conn);
            return;
        }
        let Some(confined) = held.confined.take() else {
            // To the pool, pinged on the way, and confined by its hook when
            // next taken.
            drop(conn);
            return;
        };
        let faults = FAULTS.load(Ordering::Relaxed);
        if faults != held.faults || held.out.elapsed() >= STASH_LIFETIME {
            // To the pool, pinged on the way.
            drop(conn);
            return;
        }
        let oldest = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let oldest = if idle.len() >= STASHED as usize {
                idle.pop_front()
            } else {
                None
            };
            idle.push_back(Idle {
                confined,
                conn,
                since: Instant::now(),
                out: held.out,
                faults,
            });
            oldest
        };
        self.put.notify_waiters();
        drop(oldest);
    }

    /// Hands every kept connection back to its pool (before it closes).
    pub(crate) fn drain(&self) {
        let all = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        drop(all);
    }
}

impl fmt::Debug for Stash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let idle = self.idle.lock().map_or(0, |idle| idle.len());
        f.debug_struct("Stash")
            .field("idle", &idle)
            .finish_non_exhaustive()
    }
}

impl Drop for Stash {
    fn drop(&mut self) {
        // Giving a connection back to its pool spawns a task: without a
        // runtime (the last handle dropped after it) they are closed here.
        if tokio::runtime::Handle::try_current().is_err() {
            let idle = self.idle.get_mut().unwrap_or_else(PoisonError::into_inner);
            for Idle { conn, .. } in idle.drain(..) {
                drop(conn.detach());
            }
        }
    }
}

/// A PostgreSQL connection taken from a stash or its pool, and the stash
/// it goes to when dropped.
pub(super) struct Held {
    conn: Option<PoolConnection<Any>>,
    stash: Arc<Stash>,
    /// When it left its pool.
    out: Instant,
    /// [`FAULTS`] when it was taken.
    faults: u64,
    /// What it is confined to; `None`: not known (a writer's, taken from
    /// the pool unconfined), so it goes back to the pool.
    confined: Option<Confined>,
    /// Inside a transaction, or not known to be out of one: closed when
    /// dropped.
    pub(super) open: bool,
}

/// A connection taken from a stash or its pool: when it left its pool, and
/// what it is confined to, when that is known.
pub(super) type Taken = (PoolConnection<Any>, Instant, Option<Confined>);

impl Held {
    pub(super) fn new(stash: &Arc<Stash>, (conn, out, confined): Taken) -> Self {
        Self {
            conn: Some(conn),
            stash: Arc::clone(stash),
            out,
            faults: FAULTS.load(Ordering::Relaxed),
            confined,
            open: false,
        }
    }

    /// Its connection.
    pub(super) fn conn(&mut self) -> &mut AnyConnection {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("a held connection is there until dropped"),
        }
    }

    /// Its connection.
    pub(super) fn conn_ref(&self) -> &AnyConnection {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("a held connection is there until dropped"),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let stash = Arc::clone(&self.stash);
        stash.put(self);
    }
}

/// A connection to read from, outside a write transaction: back to the
/// pool (PostgreSQL: to its stash) when dropped, or, inside
/// [`Db::reading`], kept for the block's next read.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
}

enum Connection {
    /// SQLite, whose connections are not confined.
    Pooled(PoolConnection<Any>),
    /// PostgreSQL: kept in a [`Db::reading`] block or a stash.
    Held(Held),
    /// Dropped, or moved to the block's slot.
    Gone,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pooled(_) => "Pooled",
            Self::Held(_) => "Held",
            Self::Gone => "Gone",
        })
    }
}

impl Db {
    /// Runs `reads` with one reader connection kept between the reads it
    /// makes one after the other (PostgreSQL: one confinement for them all
    /// instead of one a read); the connection goes back when `reads` ends.
    /// Keep such a block to reads: a write transaction begun inside it
    /// takes a connection of its own while the kept one waits.
    pub async fn reading<F: Future>(&self, reads: F) -> F::Output {
        KEPT.scope(RefCell::new(None), reads).await
    }

    /// A connection to read from: inside [`Db::reading`], the one kept
    /// there when it is confined to this task's tenant, else one from the
    /// stash confined so, else one taken from the pool (and confined as it
    /// is taken).
    ///
    /// # Errors
    ///
    /// The pool's, when no connection comes.
    pub async fn read(&self) -> Result<Reader, sqlx::Error> {
        if self.engine == Engine::Sqlite {
            return Ok(Reader {
                conn: Connection::Pooled(self.read.acquire().await?),
            });
        }
        let confined = Confined {
            tenant: tenant_setting(),
            as_role: self.as_role.load(std::sync::atomic::Ordering::Relaxed),
        };
        let kept = KEPT
            .try_with(|kept| {
                let mut kept = kept.borrow_mut();
                match kept.take() {
                    Some(held) if held.confined.as_ref() == Some(&confined) => Some(held),
                    // Another tenant's (a nested confinement): left where it
                    // is, for the read it was kept for.
                    other => {
                        *kept = other;
                        None
                    }
                }
            })
            .ok()
            .flatten();
        let held = if let Some(held) = kept {
            held
        } else {
            let taken = self
                .read_stash
                .take_or_acquire(&self.read, &confined, false)
                .await?;
            Held::new(&self.read_stash, taken)
        };
        Ok(Reader {
            conn: Connection::Held(held),
        })
    }

    /// A connection for reading version counters, and nothing else: the
    /// calendar, catalog and list versions a kept value is checked against
    /// (`kit::kept`). On PostgreSQL its connections are not confined to the
    /// caller's tenant on every acquire as the reader's are (they see every
    /// tenant's rows, as the service's own work does), which saves a round
    /// trip a call; a version number says nothing about a tenant's data, and
    /// every counter query still filters by the caller's scope. On SQLite
    /// it is a reader.
    ///
    /// # Errors
    ///
    /// The pool's, when no connection comes.
    pub async fn counter(&self) -> Result<Reader, sqlx::Error> {
        if self.engine == Engine::Sqlite {
            return Ok(Reader {
                conn: Connection::Pooled(self.counters.acquire().await?),
            });
        }
        // All confined alike, when connected.
        let confined = Confined {
            tenant: "*".to_owned(),
            as_role: false,
        };
        let taken = self
            .counter_stash
            .take_or_acquire(&self.counters, &confined, false)
            .await?;
        Ok(Reader {
            conn: Connection::Held(Held::new(&self.counter_stash, taken)),
        })
    }
}

/// Gives the connection kept by the current [`Db::reading`] block back to
/// the pool: for a call about to wait on something other than this
/// database (a peer across the network).
pub fn let_go() {
    // Outside a block there is nothing kept.
    let _ = KEPT.try_with(|kept| kept.borrow_mut().take());
}

impl Deref for Reader {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match &self.conn {
            Connection::Pooled(conn) => conn,
            Connection::Held(held) => held.conn_ref(),
            Connection::Gone => unreachable!("a reader holds its connection until dropped"),
        }
    }
}

impl DerefMut for Reader {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.conn {
            Connection::Pooled(conn) => conn,
            Connection::Held(held) => held.conn(),
            Connection::Gone => unreachable!("a reader holds its connection until dropped"),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let Connection::Held(held) = std::mem::replace(&mut self.conn, Connection::Gone) else {
            return;
        };
        // Inside a block whose slot is free, kept; otherwise (outside any
        // block, or another read's connection kept already) the connection
        // goes to its stash.
        let _ = KEPT.try_with(move |kept| {
            let mut kept = kept.borrow_mut();
            if kept.is_none() {
                *kept = Some(held);
            }
        });
    }
}
