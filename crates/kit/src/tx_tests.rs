//! Write transactions on PostgreSQL's stashed connections (`db/writing.rs`):
//! a connection comes back from a transaction confined as it was, and one
//! left inside a transaction is never handed out again. On SQLite's one
//! writer, kept out of its pool: transactions take turns on it, and one
//! dropped or cancelled leaves it out of any transaction.

use std::time::Duration;

use sqlx::{Executor as _, Row as _};

use crate::Scope;
use crate::db::{Db, confined};
use crate::db_tests::reader_of;
use crate::testing::TestDb;

/// The tenant setting and server process inside a transaction begun and
/// committed under `scope`.
async fn write_as(db: &Db, scope: Scope) -> (String, i32) {
    confined(Some(scope), async {
        let mut tx = db.begin().await.unwrap();
        let row = sqlx::query("SELECT current_setting('recovery.tenant'), pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (row.get::<String, _>(0), row.get::<i32, _>(1))
    })
    .await
}

/// Waits (10 s at most) until no connection of this database is left
/// inside a transaction.
async fn settled(test: &TestDb) {
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(test.url())
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%'",
            )
            .fetch_one(&mut admin)
            .await
            .unwrap();
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "a connection stayed inside a transaction");
}

/// A transaction takes a stashed connection, of any tenant, and confines
/// it for the transaction only: given back, it serves its tenant's reads
/// as before, without going through the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_runs_on_a_stashed_connection_and_leaves_its_tenant_as_it_was() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    let db = &test.db;
    let (_, pid) = reader_of(db, "alpha").await;
    let (setting, in_tx) = write_as(db, Scope::tenant_of("alpha")).await;
    assert_eq!(setting, "alpha");
    assert_eq!(
        in_tx, pid,
        "the transaction did not take the stashed connection"
    );
    let (setting, in_tx) = write_as(db, Scope::tenant_of("bravo")).await;
    assert_eq!(
        setting, "bravo",
        "the transaction ran as the connection's tenant"
    );
    assert_eq!(
        in_tx, pid,
        "the transaction did not take the stashed connection"
    );
    let (setting, again) = reader_of(db, "alpha").await;
    assert_eq!(again, pid, "the connection did not come back to the stash");
    assert_eq!(
        setting, "alpha",
        "another tenant's transaction left its mark"
    );
    let (setting, _) = reader_of(db, "bravo").await;
    assert_eq!(setting, "bravo");
}

/// A transaction dropped without its commit is rolled back (its row gone,
/// its lock free) and its connection serves the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_dropped_without_commit_is_rolled_back_and_its_connection_kept() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    let db = &test.db;
    sqlx::query("CREATE TABLE kit_tx_test (id TEXT PRIMARY KEY)")
        .execute(db.reader())
        .await
        .unwrap();
    let (_, pid) = reader_of(db, "alpha").await;
    confined(Some(Scope::tenant_of("alpha")), async {
        let mut tx = db.begin_holding(Some("kit-tx-test")).await.unwrap();
        sqlx::query("INSERT INTO kit_tx_test (id) VALUES ('dropped')")
            .execute(&mut *tx)
            .await
            .unwrap();
        drop(tx);
        // The lock is free: not waited on until the connection is closed.
        let mut next = tokio::time::timeout(
            Duration::from_secs(10),
            db.begin_holding(Some("kit-tx-test")),
        )
        .await
        .expect("the dropped transaction kept its lock")
        .unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kit_tx_test")
            .fetch_one(&mut *next)
            .await
            .unwrap();
        assert_eq!(rows, 0, "the dropped transaction's row is there");
        next.commit().await.unwrap();
    })
    .await;
    settled(&test).await;
    let (_, again) = write_as(db, Scope::tenant_of("alpha")).await;
    assert_eq!(again, pid, "the rolled-back connection was not kept");
}

/// A transaction cancelled while its statement waits (a call whose client
/// went away) leaves no connection inside a transaction, and the lock it
/// waited for serves the next caller once its holder commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cancelled_mid_statement_is_ended_before_its_connection_serves_again() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    let db = &test.db;
    confined(Some(Scope::All), async {
        let holder = db.begin_holding(Some("kit-tx-cancel")).await.unwrap();
        let cancelled = tokio::time::timeout(
            Duration::from_millis(200),
            db.begin_holding(Some("kit-tx-cancel")),
        )
        .await;
        assert!(cancelled.is_err(), "the lock was not held");
        holder.commit().await.unwrap();
        // The cancelled one got the lock as its holder let go, and let go
        // of it in turn.
        settled(&test).await;
        let next = tokio::time::timeout(
            Duration::from_secs(10),
            db.begin_holding(Some("kit-tx-cancel")),
        )
        .await
        .expect("the cancelled transaction kept the lock")
        .unwrap();
        next.commit().await.unwrap();
    })
    .await;
    // Every connection of the stash and the pool is out of any transaction.
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                confined(Some(Scope::All), async {
                    let mut read = db.read().await.unwrap();
                    // A simple query: its statement's time is the
                    // transaction's unless one was open already.
                    let row = read
                        .fetch_one("SELECT now() = statement_timestamp()")
                        .await
                        .unwrap();
                    row.get::<bool, _>(0)
                })
                .await
            })
        })
        .collect();
    for read in reads {
        assert!(read.await.unwrap(), "a read ran inside a transaction");
    }
}

/// SQLite: many write transactions at once each run alone on the one
/// writer (no `BEGIN` inside another's transaction, no lost write), one
/// dropped without its commit is rolled back before the next begins, one
/// cancelled while it waits for the writer takes nothing, and the database
/// closes once they ended (the writer given back to its pool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_transactions_take_turns_on_one_writer_and_leave_it_clean() {
    let test = TestDb::sqlite().await;
    let db = &test.db;
    let mut setup = db.begin().await.unwrap();
    sqlx::query("CREATE TABLE kit_tx_test (id TEXT PRIMARY KEY, seen INTEGER NOT NULL)")
        .execute(&mut *setup)
        .await
        .unwrap();
    setup.commit().await.unwrap();

    let mut dropped = db.begin().await.unwrap();
    sqlx::query("INSERT INTO kit_tx_test (id, seen) VALUES ('dropped', 0)")
        .execute(&mut *dropped)
        .await
        .unwrap();
    drop(dropped);

    // One waits for the writer while another holds it, and is cancelled.
    let holder = db.begin().await.unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(100), db.begin()).await;
    assert!(
        cancelled.is_err(),
        "a second transaction began beside the first"
    );
    holder.commit().await.unwrap();

    let started = std::time::Instant::now();
    let writers: Vec<_> = (0..16)
        .map(|n| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut tx = db.begin().await?;
                // What the transaction saw before writing: the writes of
                // those before it, none of another one half done.
                let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kit_tx_test")
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO kit_tx_test (id, seen) VALUES ($1, $2)")
                    .bind(format!("w{n}"))
                    .bind(seen)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    let slowest = started.elapsed();
    assert!(
        slowest < Duration::from_secs(10),
        "16 writes took {slowest:?}"
    );

    let mut read = db.read().await.unwrap();
    let mut seen: Vec<i64> = sqlx::query_scalar("SELECT seen FROM kit_tx_test ORDER BY seen")
        .fetch_all(&mut *read)
        .await
        .unwrap();
    drop(read);
    seen.dedup();
    // Each saw all before it: 0, 1, …, 15, and the dropped row none of them.
    assert_eq!(
        seen,
        (0..16).collect::<Vec<i64>>(),
        "the dropped row stayed, or writes overlapped"
    );

    tokio::time::timeout(Duration::from_secs(10), db.close())
        .await
        .expect("the database did not close: the writer was not given back");
}

/// SQLite: a transaction on the writer whose `ROLLBACK` fails (here ended
/// behind its back) spoils the connection, and the next transaction begins
/// on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_writer_that_could_not_roll_back_is_replaced() {
    let test = TestDb::sqlite().await;
    let db = &test.db;
    let mut tx = db.begin().await.unwrap();
    sqlx::query("CREATE TEMP TABLE kit_writer_mark (n INTEGER)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut *tx).await.unwrap();
    // Its `ROLLBACK` fails: no transaction is open.
    assert!(tx.rollback().await.is_err());
    let mut next = db.begin().await.unwrap();
    // A temporary table lives as long as its connection.
    let marks: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM sqlite_temp_master WHERE name = 'kit_writer_mark'")
            .fetch_optional(&mut *next)
            .await
            .unwrap();
    assert_eq!(marks, None, "the spoiled connection served again");
    next.commit().await.unwrap();
}
