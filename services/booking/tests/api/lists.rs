//! A day's list answers from pages kept in memory under the location's
//! versions, and never shows a page older than the last commit before the
//! call: not on the replica that made the change, not on another replica
//! that kept the page before it. Two booking services (replicas) on one
//! database, each behind its own server.

use std::sync::Arc;
use std::time::Instant;

use recovery_kit::testing::{Bearer, TestDb};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use tokio::sync::Barrier;

use crate::calendars::{racing_bookings, replica, spawn_desks, studio_with_chambers};
use crate::support::{Client, Studio, TEN_AM, start};

const DAY: &str = "2026-12-02";
const NOON: &str = "2026-12-02T17:00:00Z";

fn day(studio: &Studio, status: pb::BookingStatus, page_size: i32) -> pb::ListBookingsRequest {
    pb::ListBookingsRequest {
        location_id: studio.location_id.clone(),
        day: DAY.into(),
        status: status.into(),
        page_size,
        ..Default::default()
    }
}

async fn list(client: &mut Client, request: pb::ListBookingsRequest) -> pb::ListBookingsResponse {
    client.list_bookings(request).await.unwrap().into_inner()
}

/// The day as `client` lists it: each booking's id and status.
async fn listed(client: &mut Client, studio: &Studio) -> Vec<(String, pb::BookingStatus)> {
    list(client, day(studio, pb::BookingStatus::Unspecified, 0))
        .await
        .bookings
        .iter()
        .map(|b| (b.id.clone(), b.status()))
        .collect()
}

/// Both replicas list the day after every step; each step is made on one
/// of them, and the other's next list shows it: a booking, its check-in,
/// its session and notes, a cancellation, a booking on the other replica.
/// A kept page's token still leads to the next page.
async fn a_change_on_one_replica_reaches_the_others_next_day_list(db: TestDb) {
    use pb::BookingStatus::{Booked, Cancelled, CheckedIn, Completed};
    let studio = start(db).await;
    let (_replica, server) = replica(&studio).await;
    let mut a = studio.client(&studio.manager).await;
    let mut b = BookingServiceClient::with_interceptor(
        server.channel().await,
        Bearer::new(&studio.manager),
    );
    assert!(listed(&mut a, &studio).await.is_empty());
    assert!(listed(&mut b, &studio).await.is_empty());

    let ana = studio.book("ana", TEN_AM).await.unwrap();
    assert_eq!(listed(&mut b, &studio).await, [(ana.id.clone(), Booked)]);
    assert_eq!(listed(&mut a, &studio).await, [(ana.id.clone(), Booked)]);

    a.check_in(pb::CheckInRequest { id: ana.id.clone() })
        .await
        .unwrap();
    assert_eq!(listed(&mut b, &studio).await, [(ana.id.clone(), CheckedIn)]);
    b.start_session(pb::StartSessionRequest { id: ana.id.clone() })
        .await
        .unwrap();
    b.complete_session(pb::CompleteSessionRequest {
        id: ana.id.clone(),
        soreness_before: Some(6),
        soreness_after: Some(2),
        notes: "shoulders loose".into(),
    })
    .await
    .unwrap();
    let page = list(&mut a, day(&studio, pb::BookingStatus::Unspecified, 0)).await;
    assert_eq!(page.bookings[0].status(), Completed);
    assert_eq!(page.bookings[0].session_notes, "shoulders loose");
    assert_eq!(page.bookings[0].soreness_after, Some(2));

    // Booked on B, listed on both, cancelled on A.
    let request = studio.booking("bea", NOON).await;
    let bea = b
        .create_booking(request)
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    let both = [(ana.id.clone(), Completed), (bea.id.clone(), Booked)];
    assert_eq!(listed(&mut a, &studio).await, both);
    assert_eq!(listed(&mut b, &studio).await, both);
    let bea_on_b = &list(&mut b, day(&studio, pb::BookingStatus::Unspecified, 0))
        .await
        .bookings[1];
    assert_eq!(bea_on_b.resources, bea.resources, "what it holds, listed");
    studio.cancel(&bea.id, "flu").await.unwrap();
    let both = [(ana.id.clone(), Completed), (bea.id.clone(), Cancelled)];
    assert_eq!(listed(&mut b, &studio).await, both);
    assert_eq!(listed(&mut a, &studio).await, both);
    let cancelled = list(&mut b, day(&studio, Cancelled, 0)).await.bookings;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].cancel_reason, "flu");
    assert!(
        cancelled[0].resources.is_empty(),
        "a cancelled booking holds nothing"
    );

    // A page of one, twice (the second from memory): the same page, and
    // its token leads on to Bea.
    let first = list(&mut b, day(&studio, pb::BookingStatus::Unspecified, 1)).await;
    let again = list(&mut b, day(&studio, pb::BookingStatus::Unspecified, 1)).await;
    assert_eq!(first, again);
    assert_eq!(first.bookings[0].id, ana.id);
    let next = list(
        &mut b,
        pb::ListBookingsRequest {
            page_token: again.next_page_token.clone(),
            ..day(&studio, pb::BookingStatus::Unspecified, 1)
        },
    )
    .await;
    assert_eq!(next.bookings[0].id, bea.id);
    assert!(next.next_page_token.is_empty());
}

const BOOKERS: usize = 4;
const BOOKINGS_EACH: usize = 10;
const LISTERS: usize = 4;
/// Lists per lister (the keys' rate limit stays far away).
const LISTS_EACH: usize = 30;

/// Bookings and cancellations race lists of the day on two replicas: every
/// list shows every booking whose answer reached its desk before the list
/// was sent (so committed before the list began), cancelled when its
/// cancellation had been answered by then.
async fn bookings_racing_lists_are_never_missing_from_a_later_list(db: TestDb) {
    let studio = studio_with_chambers(db).await;
    let (_replica, server) = replica(&studio).await;
    let channels = [studio.server.channel().await, server.channel().await];
    let requests = racing_bookings(&studio, BOOKERS, BOOKINGS_EACH).await;
    // Both replicas keep the empty day's page before the race.
    let whole_day = || day(&studio, pb::BookingStatus::Unspecified, 100);
    for channel in &channels {
        let mut client =
            BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&studio.manager));
        assert!(list(&mut client, whole_day()).await.bookings.is_empty());
    }

    let epoch = Instant::now();
    let gate = Arc::new(Barrier::new(BOOKERS + LISTERS));
    let bookers = spawn_desks(&studio, &channels, requests, (&gate, epoch), true);
    let mut listers = Vec::new();
    for n in 0..LISTERS {
        let mut client = BookingServiceClient::with_interceptor(
            channels[n % 2].clone(),
            Bearer::new(&studio.manager),
        );
        let request = whole_day();
        let gate = Arc::clone(&gate);
        listers.push(tokio::spawn(async move {
            gate.wait().await;
            let mut seen = Vec::new();
            for _ in 0..LISTS_EACH {
                let began = epoch.elapsed();
                seen.push((began, list(&mut client, request.clone()).await.bookings));
            }
            seen
        }));
    }
    let (mut booked, mut cancelled) = (Vec::new(), Vec::new());
    for booker in bookers {
        let (b, c) = booker.await.unwrap();
        booked.extend(b);
        cancelled.extend(c);
    }
    let mut answers = Vec::new();
    for lister in listers {
        answers.extend(lister.await.unwrap());
    }
    assert_eq!(booked.len(), BOOKERS * BOOKINGS_EACH, "every booking fits");

    let mut checked = 0;
    for (began, bookings) in &answers {
        let status = |id: &str| {
            bookings
                .iter()
                .find(|b| b.id == id)
                .map(pb::Booking::status)
        };
        for (answered, id) in booked
            .iter()
            .filter(|(at, _)| at < began)
            .map(|(at, b)| (at, &b.id))
        {
            checked += 1;
            assert!(
                status(id).is_some(),
                "a list begun at {began:?} misses {id}, booked at {answered:?}"
            );
        }
        for (answered, id) in cancelled.iter().filter(|(at, _)| at < began) {
            assert_eq!(
                status(id),
                Some(pb::BookingStatus::Cancelled),
                "a list begun at {began:?} shows {id} not cancelled, cancelled at {answered:?}"
            );
        }
    }
    assert!(
        checked > 0,
        "no list began after a booking was answered: the race was not run"
    );
    // After the race, both replicas list the same day.
    let mut last = Vec::new();
    for channel in &channels {
        let mut client =
            BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&studio.manager));
        last.push(list(&mut client, whole_day()).await.bookings);
    }
    assert_eq!(last[0].len(), BOOKERS * BOOKINGS_EACH);
    assert_eq!(last[0], last[1]);
}

recovery_kit::engine_tests!(
    a_change_on_one_replica_reaches_the_others_next_day_list,
    bookings_racing_lists_are_never_missing_from_a_later_list,
);
