//! Write transactions ([`Db::begin`], [`Db::begin_holding`]).
//!
//! On PostgreSQL a transaction runs on a connection from the readers'
//! stash (`reading.rs`) and goes back there once it ended, without the
//! ping sqlx's pool sends on every connection given back to it (a round
//! trip a write). Its `BEGIN` confines it to the caller's tenant for the
//! transaction alone (unless the connection is confined so already), so
//! any stashed connection serves, and the one it takes is confined as
//! before once the transaction ends.
//!
//! The transaction is begun and ended with plain statements, as sqlx's own
//! `Transaction` does; sqlx's count of open transactions is left at zero,
//! so nothing inside may begin a nested one (none does). One dropped
//! without its `COMMIT` (an error, a cancelled call) is rolled back by a
//! task of its own before the connection is used again; if that cannot
//! happen, the connection is closed, which ends the transaction in the
//! server. Never is a connection inside a transaction handed to anyone.
//!
//! SQLite's one writer connection is kept out of its pool too, behind a
//! mutex ([`Writer`]), for the same reason: given back to the pool after
//! every transaction, it was pinged (a hand-off to its worker thread) while
//! the next writer waited, and every write transaction is serialised on it.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Executor as _, Transaction};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

use super::reading::{Confined, Held};
use super::{Db, Engine, begin_statement, hold, tenant_setting};

/// A write transaction: commit it with [`Tx::commit`]; dropped without,
/// it is rolled back. Derefs to its connection for queries.
pub struct Tx {
    inner: Inner,
}

enum Inner {
    /// A PostgreSQL connection confined by its pool (a tenant that cannot
    /// go as a literal in the `BEGIN`).
    Pooled(Transaction<'static, Any>),
    /// PostgreSQL, begun on a stashed connection (`open` until it ends).
    Held(Option<Held>),
    /// SQLite's one writer (`open` until it ends).
    Sqlite(Option<Writing>),
}

/// SQLite's writer connection, out of its pool: taken from it when first
/// needed, and given back only when the database closes (or when a
/// transaction on it could not be rolled back: then it is closed, and the
/// next transaction takes a new one). Its mutex serialises the write
/// transactions in the order they asked, as the pool of one did.
#[derive(Default)]
pub(super) struct Writer {
    conn: Arc<Mutex<Option<PoolConnection<Any>>>>,
    /// The connection may be inside a transaction no one will end: the
    /// next to lock it closes it instead.
    spoiled: Arc<AtomicBool>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Writer")
    }
}

/// The writer connection, locked.
pub(super) type WriterConn =
    OwnedMappedMutexGuard<Option<PoolConnection<Any>>, PoolConnection<Any>>;

impl Writer {
    /// The writer connection once every caller before has let it go,
    /// taken from `pool` when there is none (or the last was spoiled).
    /// Waited for as long as the pool's own acquire would, then
    /// `PoolTimedOut`, as from the pool.
    pub(super) async fn lock(&self, pool: &sqlx::AnyPool) -> Result<WriterConn, sqlx::Error> {
        let wait = pool.options().get_acquire_timeout();
        let mut slot: OwnedMutexGuard<_> =
            tokio::time::timeout(wait, Arc::clone(&self.conn).lock_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?;
        if self.spoiled.swap(false, Ordering::AcqRel)
            && let Some(mut spoiled) = slot.take()
        {
            spoiled.close_on_drop();
        }
        if slot.is_none() {
            *slot = Some(pool.acquire().await?);
        }
        OwnedMutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| sqlx::Error::Protocol("the SQLite writer connection went missing".into()))
    }

    /// Gives the connection back to its pool (which [`Db::close`] waits
    /// for), after the transaction on it, if any, ended.
    pub(super) async fn release(&self) {
        self.conn.lock().await.take();
    }
}

/// A write transaction on SQLite's writer.
struct Writing {
    conn: WriterConn,
    spoiled: Arc<AtomicBool>,
    open: bool,
}

impl Writing {
    /// Rolls back, and spoils the connection if that failed (closed by the
    /// next to lock it, which ends the transaction).
    async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let rolled = self.conn.execute("ROLLBACK").await;
        self.open = false;
        if rolled.is_err() {
            self.spoiled.store(true, Ordering::Release);
        }
        rolled.map(|_| ())
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        // Left open (no runtime to roll it back): closed by the next to
        // lock it.
        if self.open {
            self.spoiled.store(true, Ordering::Release);
        }
    }
}

impl Db {
    /// Starts a write transaction.
    ///
    /// # Errors
    ///
    /// The pool's, when no connection comes, or the `BEGIN`'s.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.begin_holding(None).await
    }

    /// Starts a write transaction that holds, on PostgreSQL, the advisory
    /// lock `hashtext(lock)` until it ends (SQLite's write transactions are
    /// serialised already: nothing is taken there).
    ///
    /// On PostgreSQL the transaction's confinement to the caller's tenant
    /// and the lock go with the `BEGIN`, in its round trip, instead of a
    /// `set_config` as the connection is taken and a statement for the lock
    /// after: two round trips fewer for a booking (`docs/BENCHMARKS.md`).
    ///
    /// # Errors
    ///
    /// The pool's, when no connection comes, or the `BEGIN`'s.
    pub async fn begin_holding(&self, lock: Option<&str>) -> Result<Tx, sqlx::Error> {
        if self.engine == Engine::Sqlite {
            let mut conn = self.writer.lock(&self.write).await?;
            conn.execute("BEGIN").await?;
            return Ok(Tx {
                inner: Inner::Sqlite(Some(Writing {
                    conn,
                    spoiled: Arc::clone(&self.writer.spoiled),
                    open: true,
                })),
            });
        }
        let confined = Confined {
            tenant: tenant_setting(),
            as_role: self.as_role.load(Ordering::Relaxed),
        };
        let Some(begin) = begin_statement(Some((&confined.tenant, confined.as_role)), lock) else {
            let mut tx = self.write.begin().await?;
            if let Some(lock) = lock {
                hold(&mut tx, lock).await?;
            }
            return Ok(Tx::pooled(tx));
        };
        let taken = self
            .read_stash
            .take_or_acquire(&self.write, &confined, true)
            .await?;
        // A connection confined as the caller already needs no
        // `set_config`s: a statement fewer for PostgreSQL to parse and run.
        let begin = if taken.2.as_ref() == Some(&confined) {
            begin_statement(None, lock).unwrap_or(begin)
        } else {
            begin
        };
        let mut tx = Tx::held(Held::new(&self.read_stash, taken));
        // Dropped on an error: rolled back, as the statements after the
        // `BEGIN` in its string (the lock) may fail inside the transaction.
        tx.execute(begin.as_str()).await?;
        Ok(tx)
    }
}

impl Tx {
    fn pooled(tx: Transaction<'static, Any>) -> Self {
        Self {
            inner: Inner::Pooled(tx),
        }
    }

    fn held(mut held: Held) -> Self {
        held.open = true;
        Self {
            inner: Inner::Held(Some(held)),
        }
    }

    /// Commits the transaction.
    ///
    /// # Errors
    ///
    /// The `COMMIT`'s; the transaction is rolled back then.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        match &mut self.inner {
            Inner::Held(Some(held)) => {
                // On an error it stays open, and is rolled back as it is
                // dropped (after a failed `COMMIT` the server ended it
                // already: the `ROLLBACK` only warns).
                held.conn().execute("COMMIT").await?;
                held.open = false;
                Ok(())
            }
            Inner::Sqlite(Some(writing)) => {
                // On an error it stays open, and is rolled back as it is
                // dropped.
                writing.conn.execute("COMMIT").await?;
                writing.open = false;
                Ok(())
            }
            Inner::Held(None) | Inner::Sqlite(None) => Ok(()),
            Inner::Pooled(_) => match std::mem::replace(&mut self.inner, Inner::Held(None)) {
                Inner::Pooled(tx) => tx.commit().await,
                Inner::Held(_) | Inner::Sqlite(_) => Ok(()),
            },
        }
    }

    /// Rolls the transaction back.
    ///
    /// # Errors
    ///
    /// The `ROLLBACK`'s.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        match std::mem::replace(&mut self.inner, Inner::Held(None)) {
            Inner::Pooled(tx) => tx.rollback().await,
            Inner::Held(Some(held)) => rollback(held).await,
            Inner::Sqlite(Some(writing)) => writing.rollback().await,
            Inner::Held(None) | Inner::Sqlite(None) => Ok(()),
        }
    }
}

/// Rolls back the transaction on `held`, which then goes back (closed, if
/// the `ROLLBACK` failed).
async fn rollback(mut held: Held) -> Result<(), sqlx::Error> {
    held.conn().execute("ROLLBACK").await?;
    held.open = false;
    Ok(())
}

impl Drop for Tx {
    fn drop(&mut self) {
        match &mut self.inner {
            // sqlx's own rolls back on drop.
            Inner::Pooled(_) => {}
            // Failed, or never run: the connection is closed as it is
            // dropped (`open`).
            Inner::Held(held) => {
                if let Some(held) = held.take().filter(|h| h.open) {
                    roll_back_later(rollback(held));
                }
            }
            // The writer stays locked until the `ROLLBACK` ran. Failed, or
            // never run: the connection is spoiled (`open`).
            Inner::Sqlite(writing) => {
                if let Some(writing) = writing.take().filter(|w| w.open) {
                    roll_back_later(writing.rollback());
                }
            }
        }
    }
}

/// Runs `rollback` on a task of its own, when there is a runtime to run
/// it (a transaction dropped without its `COMMIT`).
fn roll_back_later(
    rollback: impl std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'static,
) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = rollback.await;
        });
    }
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match &self.inner {
            Inner::Pooled(tx) => tx,
            Inner::Held(Some(held)) => held.conn_ref(),
            Inner::Sqlite(Some(writing)) => &writing.conn,
            Inner::Held(None) | Inner::Sqlite(None) => {
                unreachable!("a transaction holds its connection until it ends")
            }
        }
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            Inner::Pooled(tx) => tx,
            Inner::Held(Some(held)) => held.conn(),
            Inner::Sqlite(Some(writing)) => &mut writing.conn,
            Inner::Held(None) | Inner::Sqlite(None) => {
                unreachable!("a transaction holds its connection until it ends")
            }
        }
    }
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.inner {
            Inner::Pooled(_) => "Tx(Pooled)",
            Inner::Held(_) => "Tx(Held)",
            Inner::Sqlite(_) => "Tx(Sqlite)",
        })
    }
}
