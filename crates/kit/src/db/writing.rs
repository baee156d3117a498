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

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;

use sqlx::{Any, AnyConnection, Executor as _, Transaction};

use super::reading::{Confined, Held};
use super::{Db, Engine, begin_statement, hold, tenant_setting};

/// A write transaction: commit it with [`Tx::commit`]; dropped without,
/// it is rolled back. Derefs to its connection for queries.
pub struct Tx {
    inner: Inner,
}

enum Inner {
    /// SQLite's one writer, or a PostgreSQL connection confined by its
    /// pool (a tenant that cannot go as a literal in the `BEGIN`).
    Pooled(Transaction<'static, Any>),
    /// PostgreSQL, begun on a stashed connection (`open` until it ends).
    Held(Option<Held>),
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
            return Ok(Tx::pooled(self.write.begin().await?));
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
            Inner::Held(None) => Ok(()),
            Inner::Pooled(_) => match std::mem::replace(&mut self.inner, Inner::Held(None)) {
                Inner::Pooled(tx) => tx.commit().await,
                Inner::Held(_) => Ok(()),
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
            Inner::Held(None) => Ok(()),
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
        let Inner::Held(held) = &mut self.inner else {
            // sqlx's own rolls back on drop.
            return;
        };
        let Some(held) = held.take() else {
            return;
        };
        if !held.open {
            return;
        }
        // Without a runtime, or if the task is dropped before it ran, the
        // connection is closed (`open`).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // Failed: closed as it is dropped.
                let _ = rollback(held).await;
            });
        }
    }
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match &self.inner {
            Inner::Pooled(tx) => tx,
            Inner::Held(Some(held)) => held.conn_ref(),
            Inner::Held(None) => unreachable!("a transaction holds its connection until it ends"),
        }
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            Inner::Pooled(tx) => tx,
            Inner::Held(Some(held)) => held.conn(),
            Inner::Held(None) => unreachable!("a transaction holds its connection until it ends"),
        }
    }
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.inner {
            Inner::Pooled(_) => "Tx(Pooled)",
            Inner::Held(_) => "Tx(Held)",
        })
    }
}
