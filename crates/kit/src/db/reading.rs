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
use std::future::Future;
use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection};

use super::{Db, Engine, tenant_setting};

tokio::task_local! {
    /// The connection a [`Db::reading`] block keeps between its reads, with
    /// the tenant setting it was confined to.
    static KEPT: RefCell<Option<(String, PoolConnection<Any>)>>;
}

/// A connection to read from, outside a write transaction: back to the
/// pool when dropped, or, inside [`Db::reading`], kept for the block's next
/// read.
#[derive(Debug)]
pub struct Reader {
    conn: Option<PoolConnection<Any>>,
    /// The tenant setting it is confined to; `None` where nothing is kept
    /// (SQLite, whose connections are not confined).
    tenant: Option<String>,
}

impl Db {
    /// Runs `reads` with one reader connection kept between the reads it
    /// makes one after the other (PostgreSQL: one confinement for them all
    /// instead of one a read); the connection goes back to the pool when
    /// `reads` ends. Keep such a block to reads: a write transaction begun
    /// inside it takes a connection of its own while the kept one waits.
    pub async fn reading<F: Future>(&self, reads: F) -> F::Output {
        KEPT.scope(RefCell::new(None), reads).await
    }

    /// A connection to read from: inside [`Db::reading`], the one kept
    /// there when it is confined to this task's tenant, else one taken from
    /// the pool (and confined as it is taken).
    ///
    /// # Errors
    ///
    /// The pool's, when no connection comes.
    pub async fn read(&self) -> Result<Reader, sqlx::Error> {
        if self.engine == Engine::Sqlite {
            return Ok(Reader {
                conn: Some(self.read.acquire().await?),
                tenant: None,
            });
        }
        let tenant = tenant_setting();
        let kept = KEPT
            .try_with(|kept| {
                let mut kept = kept.borrow_mut();
                match kept.take() {
                    Some((confined, conn)) if confined == tenant => Some(conn),
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
        let conn = match kept {
            Some(conn) => conn,
            None => self.read.acquire().await?,
        };
        Ok(Reader {
            conn: Some(conn),
            tenant: Some(tenant),
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
        self.conn
            .as_deref()
            .unwrap_or_else(|| unreachable!("a reader holds its connection until dropped"))
    }
}

impl DerefMut for Reader {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("a reader holds its connection until dropped"))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let (Some(conn), Some(tenant)) = (self.conn.take(), self.tenant.take()) else {
            return;
        };
        // Inside a block whose slot is free, kept; otherwise (outside any
        // block, or another read's connection kept already) the connection
        // drops here and goes back to the pool.
        let _ = KEPT.try_with(move |kept| {
            let mut kept = kept.borrow_mut();
            if kept.is_none() {
                *kept = Some((tenant, conn));
            }
        });
    }
}
