//! The database plumbing on both engines: idempotent creates, the retry
//! loop, the tenant scope and row locks as typed arguments.

use std::sync::atomic::{AtomicU32, Ordering};

use prost_types::Duration as Msg;
use sqlx::{Executor as _, Row as _};

use crate::db::{Attempt, Lock, retry};
use crate::idempotency::{self, Key};
use crate::testing::TestDb;
use crate::{Error, Scope, Violations};

const TABLE: &str = "kit_test_idempotency";

async fn setup(db: &crate::Db) {
    let mut tx = db.begin().await.unwrap();
    tx.execute(
        "CREATE TABLE kit_test_idempotency (scope TEXT NOT NULL, request_id TEXT NOT NULL, \
         fingerprint TEXT NOT NULL, response BYTEA NOT NULL, create_time BIGINT NOT NULL, \
         PRIMARY KEY (scope, request_id))"
            .replace(
                "BYTEA",
                if db.engine() == crate::Engine::Sqlite {
                    "BLOB"
                } else {
                    "BYTEA"
                },
            )
            .as_str(),
    )
    .await
    .unwrap();
    tx.execute("CREATE TABLE things (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, seconds BIGINT NOT NULL)")
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn key(request_id: &str, seconds: i64) -> Option<Key> {
    let mut v = Violations::new();
    let request = Msg { seconds, nanos: 0 };
    Key::new("Create", "t1", request_id, &request, &mut v)
}

async fn create(
    db: &crate::Db,
    key: Option<&Key>,
    id: &str,
    seconds: i64,
) -> Result<(Msg, bool), Error> {
    let input = (id.to_owned(), seconds);
    idempotency::create(db, TABLE, key, 0, &input, |tx, (id, seconds)| {
        Box::pin(async move {
            sqlx::query("INSERT INTO things (id, tenant_id, seconds) VALUES ($1, 't1', $2)")
                .bind(id.as_str())
                .bind(*seconds)
                .execute(&mut **tx)
                .await?;
            Ok(Msg {
                seconds: *seconds,
                nanos: 0,
            })
        })
    })
    .await
}

async fn count(db: &crate::Db, scope: &Scope) -> i64 {
    sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM things WHERE {tenant}",
        tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .fetch_one(db.reader())
    .await
    .unwrap()
    .try_get("n")
    .unwrap()
}

async fn creates_happen_once_per_request_id(test: TestDb) {
    let db = &test.db;
    setup(db).await;
    let k = key("r1", 7);
    let (first, fresh) = create(db, k.as_ref(), "a", 7).await.unwrap();
    assert!(fresh);
    let (again, fresh) = create(db, k.as_ref(), "b", 7).await.unwrap();
    assert!(!fresh, "a replay is not fresh");
    assert_eq!(again, first);
    assert_eq!(count(db, &Scope::All).await, 1, "the replay wrote nothing");
    let other = key("r1", 8);
    let error = create(db, other.as_ref(), "c", 8).await.unwrap_err();
    assert!(matches!(
        error,
        Error::AlreadyExists {
            reason: "REQUEST_ID_REUSED",
            ..
        }
    ));
    // Without a request_id every call creates.
    create(db, None, "d", 9).await.unwrap();
    assert_eq!(count(db, &Scope::All).await, 2);
    assert_eq!(count(db, &Scope::tenant_of("t1")).await, 2);
    assert_eq!(
        count(db, &Scope::tenant_of("t2")).await,
        0,
        "another tenant sees nothing"
    );
}

async fn retry_runs_again_only_when_told(test: TestDb) {
    let db = &test.db;
    setup(db).await;
    let tries = AtomicU32::new(0);
    let answer = retry(5, || async {
        let n = tries.fetch_add(1, Ordering::SeqCst);
        if n < 2 {
            Err(Attempt::Again(Error::Unavailable("busy".into())))
        } else {
            Ok(n)
        }
    })
    .await
    .unwrap();
    assert_eq!(answer, 2);
    tries.store(0, Ordering::SeqCst);
    let error = retry(3, || async {
        tries.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(Attempt::Again(Error::precondition(
            "SLOT_UNAVAILABLE",
            "taken",
        )))
    })
    .await
    .unwrap_err();
    assert_eq!(tries.load(Ordering::SeqCst), 3, "every attempt was made");
    assert!(matches!(
        error,
        Error::FailedPrecondition {
            reason: "SLOT_UNAVAILABLE",
            ..
        }
    ));
    tries.store(0, Ordering::SeqCst);
    retry(3, || async {
        tries.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(Attempt::Stop(Error::invalid("x", "bad")))
    })
    .await
    .unwrap_err();
    assert_eq!(
        tries.load(Ordering::SeqCst),
        1,
        "a final answer is not retried"
    );
    // A row lock is a clause only where the engine needs one.
    let mut tx = db.begin().await.unwrap();
    let clause = Lock::ForUpdate.clause_for(&tx);
    assert_eq!(clause.is_empty(), db.engine() == crate::Engine::Sqlite);
    sqlx::query(&format!("SELECT id FROM things WHERE id = $1{clause}"))
        .bind("none")
        .fetch_optional(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
}

async fn request_ids_are_forgotten_after_a_day(test: TestDb) {
    let db = &test.db;
    setup(db).await;
    let k = key("r1", 7);
    // `create` stamps records with `now_micros` 0; pruning before 1 drops them.
    create(db, k.as_ref(), "a", 7).await.unwrap();
    assert_eq!(
        idempotency::prune(db, TABLE, 0).await.unwrap(),
        0,
        "not older"
    );
    assert_eq!(idempotency::prune(db, TABLE, 1).await.unwrap(), 1);
    let (_, fresh) = create(db, k.as_ref(), "b", 7).await.unwrap();
    assert!(fresh, "after pruning the id creates again");
    assert_eq!(count(db, &Scope::All).await, 2);
}

/// Page tokens outlive a restart and pass between replicas: the key that
/// signs them is the database's, the same for every `Db` on it once
/// migrated, and another database's differs.
async fn the_page_token_key_is_the_databases(test: TestDb) {
    let none = || sqlx::migrate::Migrator::DEFAULT;
    let before = test.db.token_key();
    test.db.migrate(none()).await.unwrap();
    let first = test.db.token_key();
    assert_ne!(
        first, before,
        "the process's own key gave way to the database's"
    );
    let again = crate::Db::connect(test.url()).await.unwrap();
    again.migrate(none()).await.unwrap();
    assert_eq!(again.token_key(), first);
    test.db.migrate(none()).await.unwrap();
    assert_eq!(test.db.token_key(), first, "a second migration keeps it");
    let other = TestDb::of(test.engine()).await.unwrap();
    other.db.migrate(none()).await.unwrap();
    assert_ne!(other.db.token_key(), first);
}

crate::engine_tests!(
    the_page_token_key_is_the_databases,
    creates_happen_once_per_request_id,
    retry_runs_again_only_when_told,
    request_ids_are_forgotten_after_a_day,
);

mod outbox {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use sqlx::Executor as _;

    use crate::auth::BoxFuture;
    use crate::events::{Bus, Event};
    use crate::outbox::{Consumer, Outbox, Pass, record};
    use crate::testing::TestDb;
    use crate::{Engine, Error};

    const TOPICS: &[&str] = &["test.thing"];

    /// The next live event's id, failing the test after five seconds.
    async fn next(live: &mut crate::events::Subscription) -> String {
        tokio::time::timeout(std::time::Duration::from_secs(5), live.next())
            .await
            .expect("a live event within 5 s")
            .expect("the bus is open")
            .id
            .clone()
    }

    /// Takes events, failing while `down` is set.
    #[derive(Default)]
    struct History {
        seen: Mutex<Vec<String>>,
        down: AtomicBool,
    }

    impl Consumer for History {
        fn name(&self) -> &'static str {
            "test.history"
        }
        fn wants(&self, topic: &str) -> bool {
            topic == "test.thing"
        }
        fn consume<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), Error>> {
            Box::pin(async move {
                if self.down.load(Ordering::SeqCst) {
                    return Err(Error::Unavailable("history is down".into()));
                }
                self.seen.lock().unwrap().push(event.id.clone());
                Ok(())
            })
        }
    }

    async fn outbox_hands_on_every_event_in_order_once_it_committed(test: TestDb) {
        let db = &test.db;
        let blob = if db.engine() == Engine::Sqlite {
            "BLOB"
        } else {
            "BYTEA"
        };
        let mut tx = db.begin().await.unwrap();
        tx.execute(
            format!(
                "CREATE TABLE test_outbox (id TEXT PRIMARY KEY, topic TEXT NOT NULL, \
                     tenant_id TEXT NOT NULL, scope TEXT NOT NULL, payload {blob} NOT NULL, \
                     create_time BIGINT NOT NULL, traceparent TEXT)"
            )
            .as_str(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let bus = Bus::default();
        let mut live = bus.subscribe("test.thing", "t1", "loc");
        let outbox = Outbox::new(db.clone(), "test_outbox", TOPICS, bus);
        let history = std::sync::Arc::new(History::default());
        outbox.add_consumer(history.clone());

        // A rolled-back change leaves no event.
        let mut tx = db.begin().await.unwrap();
        record(
            &mut tx,
            "test_outbox",
            &Event::new("test.thing", "t1", "loc", vec![0]),
            0,
        )
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(outbox.backlog().await.unwrap(), 0);

        // Two committed events; the consumer is down.
        let events: Vec<Event> = (1..=2)
            .map(|i| Event::new("test.thing", "t1", "loc", vec![i]))
            .collect();
        let mut tx = db.begin().await.unwrap();
        for event in &events {
            record(&mut tx, "test_outbox", event, 0).await.unwrap();
        }
        tx.commit().await.unwrap();
        history.down.store(true, Ordering::SeqCst);
        let pass = outbox.pass().await.unwrap();
        assert_eq!(
            pass,
            Pass {
                delivered: 0,
                stalled: true
            }
        );
        assert_eq!(
            outbox.backlog().await.unwrap(),
            2,
            "nothing is lost while it is down"
        );
        // Live views saw the first event already, once.
        assert_eq!(next(&mut live).await, events[0].id);

        history.down.store(false, Ordering::SeqCst);
        let pass = outbox.pass().await.unwrap();
        assert_eq!(
            pass,
            Pass {
                delivered: 2,
                stalled: false
            }
        );
        assert_eq!(
            outbox.backlog().await.unwrap(),
            0,
            "delivered events are pruned"
        );
        let seen = history.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [events[0].id.clone(), events[1].id.clone()],
            "in order"
        );
        // The retry did not show the first event to live views again.
        assert_eq!(next(&mut live).await, events[1].id);
    }

    crate::engine_tests!(outbox_hands_on_every_event_in_order_once_it_committed);
}

/// A tenant's statement reaches its rows through an index led by the
/// tenant; every tenant's still sees all rows. (SQLite plans
/// `($n IS NULL OR tenant_id = $n)` as a scan of the whole table.)
#[tokio::test]
async fn a_tenants_filter_is_served_by_the_tenants_index() {
    let test = TestDb::sqlite().await;
    let db = &test.db;
    setup(db).await;
    let mut tx = db.begin().await.unwrap();
    tx.execute("CREATE INDEX things_by_tenant ON things (tenant_id, seconds)")
        .await
        .unwrap();
    for (id, tenant) in [("a", "t1"), ("b", "t1"), ("c", "t2")] {
        sqlx::query("INSERT INTO things (id, tenant_id, seconds) VALUES ($1, $2, 1)")
            .bind(id)
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let plan = |scope: Scope| async move {
        let rows = sqlx::query(&format!(
            "EXPLAIN QUERY PLAN SELECT id FROM things WHERE {} AND seconds > 0",
            scope.filter("tenant_id", 1)
        ))
        .bind(scope.tenant())
        .fetch_all(db.reader())
        .await
        .unwrap();
        rows.iter()
            .map(|row| row.try_get::<String, _>("detail").unwrap())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let tenant = plan(Scope::tenant_of("t1")).await;
    assert!(
        tenant.contains("SEARCH things USING") && tenant.contains("tenant_id=?"),
        "{tenant}"
    );
    assert_eq!(count(db, &Scope::tenant_of("t1")).await, 2);
    assert_eq!(count(db, &Scope::All).await, 3, "every tenant's rows");
}

/// A PostgreSQL pool run dry answers UNAVAILABLE after the acquire timeout,
/// not after 10 s: held connections are what a rush on one slot used to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_pool_answers_unavailable_within_the_acquire_timeout() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    let mut held = Vec::new();
    for _ in 0..crate::db::PG_CONNECTIONS {
        held.push(test.db.read().await.unwrap());
    }
    let started = std::time::Instant::now();
    let error = test.db.begin().await.expect_err("the pool is dry");
    let waited = started.elapsed();
    assert!(matches!(error, sqlx::Error::PoolTimedOut), "{error:?}");
    assert!(
        waited >= crate::db::ACQUIRE_TIMEOUT
            && waited < crate::db::ACQUIRE_TIMEOUT + std::time::Duration::from_secs(1),
        "waited {waited:?}"
    );
    assert!(matches!(Error::from(error), Error::Unavailable(_)));
    drop(held);
}

/// The tenant setting and the server process of a reader taken under
/// `tenant`.
pub(crate) async fn reader_of(db: &crate::Db, tenant: &str) -> (String, i32) {
    crate::db::confined(Some(Scope::tenant_of(tenant)), async {
        let mut read = db.read().await.unwrap();
        let row = sqlx::query("SELECT current_setting('recovery.tenant'), pg_backend_pid()")
            .fetch_one(&mut *read)
            .await
            .unwrap();
        (row.get::<String, _>(0), row.get::<i32, _>(1))
    })
    .await
}

/// A reader given back is stashed and handed to the next read of its
/// tenant as it is (the same server process, still confined to it), and
/// never to another tenant's: many reads of two tenants at once each see
/// only their own tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stashed_reader_serves_its_own_tenant_only() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    let db = &test.db;
    let (first, pid) = reader_of(db, "alpha").await;
    assert_eq!(first, "alpha");
    let (again, again_pid) = reader_of(db, "alpha").await;
    assert_eq!(again, "alpha");
    assert_eq!(again_pid, pid, "the stashed reader was not handed back");
    let (other, _) = reader_of(db, "bravo").await;
    assert_eq!(other, "bravo", "a reader went to another tenant as it was");
    let reads: Vec<_> = (0..48)
        .map(|i| {
            let db = db.clone();
            let tenant = if i % 2 == 0 { "alpha" } else { "bravo" };
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..5 {
                    seen.push(reader_of(&db, tenant).await.0);
                }
                (tenant, seen)
            })
        })
        .collect();
    for read in reads {
        let (tenant, seen) = read.await.unwrap();
        assert!(
            seen.iter().all(|s| s == tenant),
            "a read of {tenant} saw {seen:?}"
        );
    }
}

/// With every connection out, a read waiting on the pool takes the next
/// reader given back, though it was another tenant's, confined to its own
/// tenant again: no call waits while a connection lies idle in the stash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waiting_on_a_dry_pool_takes_a_stashed_reader_confined_again() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    let db = test.db.clone();
    let mut held = crate::db::confined(Some(Scope::tenant_of("bravo")), async {
        let mut held = Vec::new();
        for _ in 0..crate::db::PG_CONNECTIONS {
            held.push(db.read().await.unwrap());
        }
        held
    })
    .await;
    let waiting = tokio::spawn({
        let db = db.clone();
        crate::db::confined(Some(Scope::tenant_of("alpha")), async move {
            let mut read = db.read().await?;
            sqlx::query_scalar::<_, String>("SELECT current_setting('recovery.tenant')")
                .fetch_one(&mut *read)
                .await
        })
    });
    // One of bravo's readers given back: to the stash, not to the pool.
    drop(held.pop());
    let setting = waiting
        .await
        .unwrap()
        .expect("the read waited out the pool");
    assert_eq!(
        setting, "alpha",
        "the stashed reader was not confined again"
    );
    drop(held);
}

/// A reader whose connection failed is not stashed again: the read after a
/// connection's server process was ended gets a working one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_whose_connection_failed_is_not_handed_out_again() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    let db = &test.db;
    let (_, pid) = reader_of(db, "alpha").await;
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(test.url())
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .unwrap();
    // Until the process is gone.
    loop {
        let alive: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        if alive == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The stashed reader is the ended one: its read fails, as a pooled
    // one's would, and the error is seen (as every service's error path
    // does) before the reader is given back.
    crate::db::confined(Some(Scope::tenant_of("alpha")), async {
        let mut read = db.read().await.unwrap();
        let failed = sqlx::query("SELECT 1")
            .execute(&mut *read)
            .await
            .expect_err("the ended connection answered");
        let _ = Error::from(failed);
        drop(read);
    })
    .await;
    for _ in 0..3 {
        let (setting, again) = reader_of(db, "alpha").await;
        assert_eq!(setting, "alpha");
        assert_ne!(again, pid);
    }
}
