//! Contention that must use capacity: as many desks as free chambers on one
//! slot all book, on different chambers, without waiting seconds; many
//! desks booking one client's cryo the same day leave exactly one booking.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use recovery_kit::testing::TestDb;
use recovery_proto::booking::v1 as pb;
use sqlx::{Connection as _, Row as _};
use tokio::sync::Barrier;
use tonic::Code;

use crate::support::{Client, Studio, TEN_AM, reason, start, t};

/// The slowest call of a race this test tolerates: the calls are short
/// transactions that queue on one lock per location, so even a debug build
/// on a busy CI machine books 20 in well under this. Before the location
/// lock, losers retried against the exclusion constraint and the slowest
/// took 13 s in release.
const SLOWEST: Duration = Duration::from_secs(5);

const DESKS: usize = 20;

async fn twenty_desks_book_twenty_free_chambers_on_one_slot(db: TestDb) {
    let studio = start(db).await;
    for n in 2..=DESKS {
        studio.chamber(&format!("Chamber {n}")).await;
    }
    let mut requests = Vec::new();
    for i in 0..DESKS {
        requests.push(studio.booking(&format!("client-{i}"), TEN_AM).await);
    }
    let (answers, slowest) = race(&studio, requests, |mut desk, request| async move {
        desk.create_booking(request).await
    })
    .await;
    for answer in answers {
        if let Err(status) = answer {
            panic!("a free chamber was refused: {status:?}");
        }
    }
    assert!(slowest < SLOWEST, "the slowest call took {slowest:?}");
    assert_eq!(studio.rows("bookings").await, i64::try_from(DESKS).unwrap());

    // Read the allocations themselves: one per booking, each on its own
    // chamber.
    let held = held(&studio).await;
    assert_eq!(held.len(), DESKS, "every chamber used once");
    assert_eq!(held.values().map(Vec::len).sum::<usize>(), DESKS);
}

/// Holds and bookings on one slot, half each, with the slot's calendar
/// kept (a search first): each hands the location's turn on before it
/// commits (`calendars::changes`), and the next picks on the calendar with
/// it. Every desk gets a chamber of its own, none waits seconds.
async fn twenty_desks_hold_and_book_twenty_free_chambers_on_one_slot(db: TestDb) {
    let studio = start(db).await;
    for n in 2..=DESKS {
        studio.chamber(&format!("Chamber {n}")).await;
    }
    let mut desk = studio.client(&studio.desk).await;
    desk.search_availability(pb::SearchAvailabilityRequest {
        location_id: studio.location_id.clone(),
        treatment_id: studio.cryo_id.clone(),
        start_time: t(TEN_AM),
        end_time: t("2026-12-02T16:00:00Z"),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut requests = Vec::new();
    for i in 0..DESKS {
        let client_id = studio.person(&format!("client-{i}")).await;
        requests.push(if i % 2 == 0 {
            Ok(studio.hold_request(&client_id, TEN_AM))
        } else {
            Err(studio.booking(&format!("client-{i}"), TEN_AM).await)
        });
    }
    let (answers, slowest) = race(&studio, requests, |mut desk, request| async move {
        match request {
            Ok(hold) => desk.hold_slot(hold).await.map(|_| ()),
            Err(booking) => desk.create_booking(booking).await.map(|_| ()),
        }
    })
    .await;
    for answer in answers {
        if let Err(status) = answer {
            panic!("a free chamber was refused: {status:?}");
        }
    }
    assert!(slowest < SLOWEST, "the slowest call took {slowest:?}");
    assert_eq!(
        studio.rows("bookings").await,
        i64::try_from(DESKS / 2).unwrap()
    );
    let held = held(&studio).await;
    assert_eq!(held.len(), DESKS, "every chamber used once");
    assert_eq!(held.values().map(Vec::len).sum::<usize>(), DESKS);
}

/// Sends each request from a desk of its own, all released at once; the
/// answers in order, and how long the slowest took.
async fn race<R, T, F, Fut>(studio: &Studio, requests: Vec<R>, call: F) -> (Vec<T>, Duration)
where
    R: Send + 'static,
    T: Send + 'static,
    F: Fn(Client, R) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let gate = Arc::new(Barrier::new(requests.len()));
    let mut calls = Vec::new();
    for request in requests {
        let desk = studio.client(&studio.desk).await;
        let gate = Arc::clone(&gate);
        let call = call(desk, request);
        calls.push(tokio::spawn(async move {
            gate.wait().await;
            let started = Instant::now();
            let answer = call.await;
            (started.elapsed(), answer)
        }));
    }
    let mut answers = Vec::with_capacity(calls.len());
    let mut slowest = Duration::ZERO;
    for call in calls {
        let (took, answer) = call.await.unwrap();
        slowest = slowest.max(took);
        answers.push(answer);
    }
    (answers, slowest)
}

/// The allocations as stored, by resource, in time order; fails when two
/// of one resource overlap.
async fn held(studio: &Studio) -> HashMap<String, Vec<(i64, i64)>> {
    let rows = sqlx::query("SELECT resource_id, start_us, until_us FROM allocations")
        .fetch_all(studio.db.db.reader())
        .await
        .unwrap();
    let mut by_resource: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for row in &rows {
        by_resource
            .entry(row.get("resource_id"))
            .or_default()
            .push((row.get("start_us"), row.get("until_us")));
    }
    for (resource, spans) in &mut by_resource {
        spans.sort_unstable();
        for pair in spans.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "{resource} is double booked: {pair:?}"
            );
        }
    }
    by_resource
}

async fn many_desks_book_one_clients_cryo_the_same_day_and_one_wins(db: TestDb) {
    let studio = start(db).await;
    // A chamber per desk: only the client's daily limit can refuse.
    for n in 2..=12 {
        studio.chamber(&format!("Chamber {n}")).await;
    }
    let base = studio.booking("ana", TEN_AM).await;
    let gate = Arc::new(Barrier::new(12));
    let mut calls = Vec::new();
    for k in 0..12 {
        // 10:00 to 15:30 in New York, half an hour apart.
        let start = format!("2026-12-02T{}:{:02}:00Z", 15 + k / 2, (k % 2) * 30);
        let request = recovery_proto::booking::v1::CreateBookingRequest {
            start_time: t(&start),
            ..base.clone()
        };
        let mut desk = studio.client(&studio.desk).await;
        let gate = Arc::clone(&gate);
        calls.push(tokio::spawn(async move {
            gate.wait().await;
            desk.create_booking(request).await
        }));
    }
    let mut won = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => won += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(reason(&status), "DAILY_LIMIT_REACHED", "{status:?}");
            }
        }
    }
    assert_eq!(won, 1);
    assert_eq!(studio.rows("bookings").await, 1);
    assert_eq!(studio.rows("allocations").await, 1);
}

/// On PostgreSQL, where replicas meet only in the database: a booking
/// waits for a change to its location that another transaction holds
/// uncommitted (here a blackout on the first chamber, as another replica's
/// booking or a manager would write), then books around it, and the kept
/// calendar shows both. Without the location's lock the booking would not
/// wait and would take the chamber the blackout closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_waits_for_a_change_to_its_location_and_books_around_it() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let studio = start(db).await;
    let second = studio.chamber("Chamber 2").await;
    // A search keeps the day's calendar, as a desk's would.
    let free = studio.search(TEN_AM, "2026-12-02T15:01:00Z").await;
    assert_eq!(free[0].free[0].resource_ids.len(), 2, "{free:?}");

    // Another transaction locks the location as a change does, and closes
    // the first chamber at 10:00 without committing yet.
    let mut other = sqlx::PgConnection::connect(studio.db.url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT version FROM calendar_versions WHERE location_id = $1 FOR UPDATE")
        .bind(&studio.location_id)
        .execute(&mut other)
        .await
        .unwrap();
    let ten = crate::support::at(TEN_AM).as_microsecond();
    sqlx::query(
        "INSERT INTO blackouts (id, tenant_id, resource_id, start_us, end_us, reason, \
         create_time, created_by) VALUES ($1, $2, $3, $4, $5, 'repair', $4, 'test')",
    )
    .bind(recovery_kit::ids::new_id())
    .bind(&studio.tenant_id)
    .bind(&studio.chamber_id)
    .bind(ten - 3_600_000_000)
    .bind(ten + 3_600_000_000)
    .execute(&mut other)
    .await
    .unwrap();

    let request = studio.booking("ana", TEN_AM).await;
    let mut desk = studio.client(&studio.desk).await;
    let booking = tokio::spawn(async move { desk.create_booking(request).await });
    // The booking's transaction waits on the location's row.
    let mut watch = sqlx::PgConnection::connect(studio.db.url()).await.unwrap();
    let waited = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE '%calendar_versions%'",
        )
        .fetch_one(&mut watch)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            !booking.is_finished(),
            "the booking did not wait for the location's change: {:?}",
            booking.await.unwrap()
        );
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "no transaction waits on the location"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();

    let booked = booking
        .await
        .unwrap()
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    let held: Vec<_> = booked
        .resources
        .iter()
        .flat_map(|r| r.resource_ids.clone())
        .collect();
    assert_eq!(held, [second], "booked around the blackout");
    // The kept calendar holds both: no chamber is free at 10:00.
    let free = studio.search(TEN_AM, "2026-12-02T15:01:00Z").await;
    assert!(free.iter().all(|s| s.start_time != t(TEN_AM)), "{free:?}");
}

/// `10:00 + minutes` in New York on the test day (on the cryo grid: a
/// multiple of its 3 minutes).
fn at(minutes: usize) -> String {
    format!("2026-12-02T{}:{:02}:00Z", 15 + minutes / 60, minutes % 60)
}

/// Bookings made while others are rescheduled, at one location: a booking
/// writes its own rows before it takes the location's turn, and a
/// reschedule holding the turn writes a booking too; if the first held
/// anything the second waits for (the bookings version row, bumped at
/// commit for that reason), both would wait until their deadlines. Every
/// call is answered, quickly, and no chamber is double booked.
async fn bookings_made_while_others_move_all_finish(db: TestDb) {
    const MOVED: usize = 8;
    const MADE: usize = 16;
    let studio = start(db).await;
    for n in 2..=MOVED {
        studio.chamber(&format!("Chamber {n}")).await;
    }
    let mut moves = Vec::new();
    for i in 0..MOVED {
        let booking = studio.book(&format!("moved-{i}"), TEN_AM).await.unwrap();
        moves.push(pb::RescheduleBookingRequest {
            id: booking.id,
            start_time: t(&at(60 + 15 * i)),
            resource_id: String::new(),
        });
    }
    let mut bookings = Vec::new();
    for i in 0..MADE {
        bookings.push(studio.booking(&format!("made-{i}"), &at(15 + 15 * i)).await);
    }
    // Interleaved, so that moves and bookings meet in the queue.
    let mut moves = moves.into_iter();
    let requests: Vec<_> = bookings
        .into_iter()
        .flat_map(|make| [moves.next().map(Ok), Some(Err(make))])
        .flatten()
        .collect();
    let (answers, slowest) = race(&studio, requests, |mut desk, request| async move {
        let what = format!("{request:?}");
        let call = async {
            match request {
                Ok(move_to) => desk.reschedule_booking(move_to).await.map(|_| ()),
                Err(make) => desk.create_booking(make).await.map(|_| ()),
            }
        };
        // A wait in a circle would last until a deadline: fail instead of
        // hanging.
        (what, tokio::time::timeout(SLOWEST * 4, call).await)
    })
    .await;
    for (what, answer) in answers {
        match answer {
            Ok(Ok(())) => {}
            Ok(Err(status)) => panic!("{what} was refused: {status:?}"),
            Err(elapsed) => {
                panic!("{what} was never answered ({elapsed}): the desks waited in a circle")
            }
        }
    }
    assert!(slowest < SLOWEST, "the slowest call took {slowest:?}");
    assert_eq!(
        studio.rows("bookings").await,
        i64::try_from(MOVED + MADE).unwrap()
    );
    let held = held(&studio).await;
    assert_eq!(
        held.values().map(Vec::len).sum::<usize>(),
        MOVED + MADE,
        "one allocation a booking"
    );
}

/// Clients' bookings moved while desks book the same clients on the
/// following days and once more the same day, at one location at once: a
/// move takes the client's lock before the location's turn, as a booking
/// does; in the other order a move holding the turn and a booking holding
/// the client's lock would each wait for the other until a deadline. Every
/// call is answered quickly, every move and every booking of another day
/// lands, and every second cryo the same day is refused.
async fn clients_moved_while_booked_again_all_finish(db: TestDb) {
    const CLIENTS: usize = 6;
    const DAYS: usize = 3;
    let studio = start(db).await;
    for n in 2..=CLIENTS {
        studio.chamber(&format!("Chamber {n}")).await;
    }
    let mut requests = Vec::new();
    for c in 0..CLIENTS {
        let client = format!("client-{c}");
        let booking = studio.book(&client, TEN_AM).await.unwrap();
        requests.push(Again::Move(pb::RescheduleBookingRequest {
            id: booking.id,
            start_time: t(&at(60 + 3 * c)),
            resource_id: String::new(),
        }));
        requests.push(Again::SameDay(
            studio.booking(&client, &at(120 + 3 * c)).await,
        ));
        for day in 0..DAYS {
            let start = format!("2026-12-{:02}T15:{:02}:00Z", 3 + day, 3 * c);
            requests.push(Again::OtherDay(studio.booking(&client, &start).await));
        }
    }
    let (answers, slowest) = race(&studio, requests, |mut desk, request| async move {
        let call = async {
            match request {
                Again::Move(to) => (true, desk.reschedule_booking(to).await.map(|_| ())),
                Again::SameDay(again) => (false, desk.create_booking(again).await.map(|_| ())),
                Again::OtherDay(again) => (true, desk.create_booking(again).await.map(|_| ())),
            }
        };
        // A wait in a circle would last until a deadline: fail instead of
        // hanging.
        tokio::time::timeout(SLOWEST * 4, call).await
    })
    .await;
    for answer in answers {
        match answer.expect("a call was never answered: the desks waited in a circle") {
            (true, Ok(())) => {}
            (true, Err(status)) => panic!("a move or another day was refused: {status:?}"),
            (false, Ok(())) => panic!("a second cryo the same day was booked"),
            (false, Err(status)) => {
                assert_eq!(reason(&status), "DAILY_LIMIT_REACHED", "{status:?}");
            }
        }
    }
    assert!(slowest < SLOWEST, "the slowest call took {slowest:?}");
    let kept = CLIENTS * (1 + DAYS);
    assert_eq!(studio.rows("bookings").await, i64::try_from(kept).unwrap());
    assert_eq!(
        held(&studio).await.values().map(Vec::len).sum::<usize>(),
        kept
    );
}

/// What [`clients_moved_while_booked_again_all_finish`] sends.
enum Again {
    Move(pb::RescheduleBookingRequest),
    SameDay(pb::CreateBookingRequest),
    OtherDay(pb::CreateBookingRequest),
}

recovery_kit::engine_tests!(
    twenty_desks_book_twenty_free_chambers_on_one_slot,
    twenty_desks_hold_and_book_twenty_free_chambers_on_one_slot,
    many_desks_book_one_clients_cryo_the_same_day_and_one_wins,
    bookings_made_while_others_move_all_finish,
    clients_moved_while_booked_again_all_finish,
);
