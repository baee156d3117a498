//! Contention that must use capacity: as many desks as free chambers on one
//! slot all book, on different chambers, without waiting seconds; many
//! desks booking one client's cryo the same day leave exactly one booking.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use recovery_kit::testing::TestDb;
use sqlx::Row as _;
use tokio::sync::Barrier;
use tonic::Code;

use crate::support::{TEN_AM, reason, start, t};

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
    let gate = Arc::new(Barrier::new(DESKS));
    let mut calls = Vec::new();
    for request in requests {
        let mut desk = studio.client(&studio.desk).await;
        let gate = Arc::clone(&gate);
        calls.push(tokio::spawn(async move {
            gate.wait().await;
            let started = Instant::now();
            let answer = desk.create_booking(request).await;
            (started.elapsed(), answer)
        }));
    }
    let mut slowest = Duration::ZERO;
    for call in calls {
        let (took, answer) = call.await.unwrap();
        slowest = slowest.max(took);
        if let Err(status) = answer {
            panic!("a free chamber was refused: {status:?}");
        }
    }
    assert!(slowest < SLOWEST, "the slowest call took {slowest:?}");
    assert_eq!(studio.rows("bookings").await, i64::try_from(DESKS).unwrap());

    // Read the allocations themselves: one per booking, each on its own
    // chamber, and no two of one chamber overlap.
    let rows = sqlx::query("SELECT resource_id, start_us, until_us FROM allocations")
        .fetch_all(studio.db.db.reader())
        .await
        .unwrap();
    assert_eq!(rows.len(), DESKS);
    let mut by_resource: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for row in &rows {
        by_resource
            .entry(row.get("resource_id"))
            .or_default()
            .push((row.get("start_us"), row.get("until_us")));
    }
    assert_eq!(by_resource.len(), DESKS, "every chamber used once");
    for (resource, mut spans) in by_resource {
        spans.sort_unstable();
        for pair in spans.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "{resource} is double booked: {pair:?}"
            );
        }
    }
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

recovery_kit::engine_tests!(
    twenty_desks_book_twenty_free_chambers_on_one_slot,
    many_desks_book_one_clients_cryo_the_same_day_and_one_wins,
);
