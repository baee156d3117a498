//! Searches answer from calendars kept in memory, and never show a slot as
//! free that a committed booking took: not on the replica that booked, not
//! on another replica whose kept calendar predates the booking. Two booking
//! services (replicas) on one database, each behind its own server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use recovery_booking::Bookings;
use recovery_kit::server::Services;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use sqlx::Connection as _;
use tokio::sync::Barrier;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::support::{Client, Studio, reason, start, t};

const CHAMBERS: usize = 4;
/// 10:00-11:00 in New York on Wednesday 2026-12-02: 20 three-minute slots.
const WINDOW: (&str, &str) = ("2026-12-02T15:00:00Z", "2026-12-02T16:00:00Z");

/// A second booking service on the studio's database, behind its own
/// server: its own kept calendars, its own bus.
pub(crate) async fn replica(studio: &Studio) -> (Arc<Bookings>, TestServer) {
    let replica = studio.replica().await;
    let mut services = Services::new(Arc::clone(&studio.authenticator));
    replica.mount(&mut services);
    let server = TestServer::start(services).await;
    (replica, server)
}

fn window(studio: &Studio) -> pb::SearchAvailabilityRequest {
    pb::SearchAvailabilityRequest {
        location_id: studio.location_id.clone(),
        treatment_id: studio.cryo_id.clone(),
        start_time: t(WINDOW.0),
        end_time: t(WINDOW.1),
        resource_id: String::new(),
        ..Default::default()
    }
}

async fn search(client: &mut Client, request: pb::SearchAvailabilityRequest) -> Vec<pb::Slot> {
    client
        .search_availability(request)
        .await
        .unwrap()
        .into_inner()
        .slots
}

/// The resources `slots` offer at `start`.
fn free_at(slots: &[pb::Slot], start: Option<prost_types::Timestamp>) -> Vec<String> {
    slots
        .iter()
        .filter(|s| s.start_time == start)
        .flat_map(|s| s.free.iter().flat_map(|f| f.resource_ids.clone()))
        .collect()
}

fn taken(booking: &pb::Booking) -> Vec<String> {
    booking
        .resources
        .iter()
        .flat_map(|r| r.resource_ids.clone())
        .collect()
}

pub(crate) async fn studio_with_chambers(db: TestDb) -> Studio {
    let studio = start(db).await;
    for n in 2..=CHAMBERS {
        studio.chamber(&format!("Chamber {n}")).await;
    }
    studio
}

/// Both replicas searched the window (so both keep its calendar); a
/// booking on one, then a search on the other: the booked chamber is not
/// offered at that time, and a cancellation there frees it again.
async fn a_booking_on_one_replica_is_taken_in_the_others_next_search(db: TestDb) {
    let studio = studio_with_chambers(db).await;
    let (_replica, server) = replica(&studio).await;
    let mut a = studio.client(&studio.manager).await;
    let mut b = BookingServiceClient::with_interceptor(
        server.channel().await,
        Bearer::new(&studio.manager),
    );
    let before_a = search(&mut a, window(&studio)).await;
    let before_b = search(&mut b, window(&studio)).await;
    assert_eq!(before_a, before_b);
    assert_eq!(free_at(&before_b, t(WINDOW.0)).len(), CHAMBERS);

    for round in 0..CHAMBERS {
        let booking = studio
            .book(&format!("client-{round}"), WINDOW.0)
            .await
            .unwrap();
        let chamber = taken(&booking);
        assert_eq!(chamber.len(), 1);
        // B's kept calendar is older than the booking: B must not use it.
        let free = free_at(&search(&mut b, window(&studio)).await, t(WINDOW.0));
        assert!(
            !free.contains(&chamber[0]),
            "replica B offers {chamber:?} at {} after A booked it (round {round})",
            WINDOW.0
        );
        assert_eq!(free.len(), CHAMBERS - round - 1);
        // A sees it too.
        let free = free_at(&search(&mut a, window(&studio)).await, t(WINDOW.0));
        assert!(!free.contains(&chamber[0]));
    }
    // The slot is full, as both replicas see it.
    assert!(free_at(&search(&mut b, window(&studio)).await, t(WINDOW.0)).is_empty());

    // Booked on B, cancelled on B: A's kept calendar learns both.
    let later = "2026-12-02T15:30:00Z";
    let request = studio.booking("client-b", later).await;
    let booking = b
        .create_booking(request)
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    let free = free_at(&search(&mut a, window(&studio)).await, t(later));
    assert!(!free.contains(&taken(&booking)[0]));
    assert_eq!(free.len(), CHAMBERS - 1);
    b.cancel_booking(pb::CancelBookingRequest {
        id: booking.id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let free = free_at(&search(&mut a, window(&studio)).await, t(later));
    assert_eq!(
        free.len(),
        CHAMBERS,
        "the cancelled chamber is offered again"
    );
}

const BOOKERS: usize = 4;
const BOOKINGS_EACH: usize = 10;
const SEARCHERS: usize = 4;
/// Searches per searcher at most (the keys' rate limit stays far away).
const SEARCHES_EACH: usize = 30;

/// The bookings of `bookers` desks racing in the window, `each` apiece:
/// desk `d`'s `k`-th takes slot `(k + 5 d) mod 20`, so with 4 desks of 10
/// every slot is booked twice (2 of the 4 chambers), and all of them fit.
pub(crate) async fn racing_bookings(
    studio: &Studio,
    bookers: usize,
    each: usize,
) -> Vec<Vec<pb::CreateBookingRequest>> {
    let mut requests = Vec::new();
    for booker in 0..bookers {
        let mut mine = Vec::new();
        for k in 0..each {
            let slot = (k + 5 * booker) % 20;
            let start: jiff::Timestamp = WINDOW.0.parse().unwrap();
            let start = start + jiff::SignedDuration::from_mins(3 * i64::try_from(slot).unwrap());
            mine.push(
                studio
                    .booking(&format!("racer-{booker}-{k}"), &start.to_string())
                    .await,
            );
        }
        requests.push(mine);
    }
    requests
}

/// What a racing desk did: each booking with when its answer came back,
/// and each cancellation's booking id with when its answer came back.
pub(crate) type Done = (Vec<(Duration, pb::Booking)>, Vec<(Duration, String)>);

/// One desk per list of `requests`, on `channels` in turn: each waits at
/// the gate, then books its requests one after another, cancelling every
/// second booking when `cancel` is set; times are since the epoch.
pub(crate) fn spawn_desks(
    studio: &Studio,
    channels: &[Channel],
    requests: Vec<Vec<pb::CreateBookingRequest>>,
    (gate, epoch): (&Arc<Barrier>, Instant),
    cancel: bool,
) -> Vec<JoinHandle<Done>> {
    let mut desks = Vec::new();
    for (n, mine) in requests.into_iter().enumerate() {
        let mut desk = BookingServiceClient::with_interceptor(
            channels[n % channels.len()].clone(),
            Bearer::new(&studio.desk),
        );
        let gate = Arc::clone(gate);
        desks.push(tokio::spawn(async move {
            gate.wait().await;
            let (mut booked, mut cancelled) = (Vec::new(), Vec::new());
            for (k, request) in mine.into_iter().enumerate() {
                let booking = desk
                    .create_booking(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .booking
                    .unwrap();
                let id = booking.id.clone();
                booked.push((epoch.elapsed(), booking));
                if cancel && k % 2 == 1 {
                    desk.cancel_booking(pb::CancelBookingRequest {
                        id: id.clone(),
                        reason: "race".into(),
                    })
                    .await
                    .unwrap();
                    cancelled.push((epoch.elapsed(), id));
                }
            }
            (booked, cancelled)
        }));
    }
    desks
}

/// Bookings race searches on two replicas: every slot a search returned
/// was free when the search began. A search's answer is checked against
/// every booking whose answer reached its desk before the search was sent
/// (so committed before the search began): none of its chambers may be
/// offered at its time.
async fn bookings_racing_searches_never_show_a_taken_slot_free(db: TestDb) {
    let studio = studio_with_chambers(db).await;
    let (_replica, server) = replica(&studio).await;
    let channels = [studio.server.channel().await, server.channel().await];
    let requests = racing_bookings(&studio, BOOKERS, BOOKINGS_EACH).await;
    // Both replicas keep the empty window's calendar before the race.
    for channel in &channels {
        let mut client =
            BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&studio.manager));
        assert_eq!(search(&mut client, window(&studio)).await.len(), 20);
    }

    let epoch = Instant::now();
    let gate = Arc::new(Barrier::new(BOOKERS + SEARCHERS));
    let bookers = spawn_desks(&studio, &channels, requests, (&gate, epoch), false);
    let mut searchers = Vec::new();
    for n in 0..SEARCHERS {
        let mut client = BookingServiceClient::with_interceptor(
            channels[n % 2].clone(),
            Bearer::new(&studio.manager),
        );
        let request = window(&studio);
        let gate = Arc::clone(&gate);
        searchers.push(tokio::spawn(async move {
            gate.wait().await;
            let mut seen = Vec::new();
            for _ in 0..SEARCHES_EACH {
                let began = epoch.elapsed();
                seen.push((began, search(&mut client, request.clone()).await));
            }
            seen
        }));
    }
    let mut booked = Vec::new();
    for booker in bookers {
        booked.extend(booker.await.unwrap().0);
    }
    let mut answers = Vec::new();
    for searcher in searchers {
        answers.extend(searcher.await.unwrap());
    }
    assert_eq!(booked.len(), BOOKERS * BOOKINGS_EACH, "every booking fits");

    let mut checked = 0;
    for (began, slots) in &answers {
        for (answered, booking) in &booked {
            if answered >= began {
                continue;
            }
            checked += 1;
            let free = free_at(slots, booking.start_time);
            for chamber in taken(booking) {
                assert!(
                    !free.contains(&chamber),
                    "a search begun at {began:?} offers {chamber} at {:?}, \
                     booked by {} answered at {answered:?}",
                    booking.start_time,
                    booking.id
                );
            }
        }
    }
    assert!(
        checked > 0,
        "no search began after a booking was answered: the race was not run"
    );
    // After the race, both replicas agree with each other: the 40
    // bookings take 2 of the 4 chambers of every slot.
    for channel in &channels {
        let mut client =
            BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&studio.manager));
        let slots = search(&mut client, window(&studio)).await;
        assert_eq!(slots.len(), 20);
        for slot in &slots {
            assert_eq!(free_at(&slots, slot.start_time).len(), CHAMBERS - 2);
        }
    }
}

/// Desks on both replicas race for one slot, after both searched it (so
/// both keep its calendar): a booking takes the calendar kept at the
/// location's version under the location's lock, and moves it on after it
/// commits; a replica whose kept calendar is older than the other's last
/// booking must read again. Exactly one booking per chamber, every chamber
/// used, the rest refused `SLOT_UNAVAILABLE`, and nobody waits seconds.
async fn desks_on_two_replicas_take_each_chamber_once(db: TestDb) {
    const DESKS: usize = 12;
    let studio = studio_with_chambers(db).await;
    let (_replica, server) = replica(&studio).await;
    let channels = [studio.server.channel().await, server.channel().await];
    let mut requests = Vec::new();
    for n in 0..DESKS {
        requests.push(studio.booking(&format!("desk-{n}"), WINDOW.0).await);
    }
    // Both replicas keep the window's calendar, and each has booked once
    // (another slot), so each has moved its kept calendar on by itself.
    let later: jiff::Timestamp = WINDOW.0.parse().unwrap();
    let later = (later + jiff::SignedDuration::from_mins(30)).to_string();
    for (n, channel) in channels.iter().enumerate() {
        let mut desk =
            BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&studio.desk));
        assert_eq!(search(&mut desk, window(&studio)).await.len(), 20);
        let request = studio.booking(&format!("early-{n}"), &later).await;
        desk.create_booking(request).await.unwrap();
    }

    let gate = Arc::new(Barrier::new(DESKS));
    let mut desks = Vec::new();
    for (n, request) in requests.into_iter().enumerate() {
        let mut desk = BookingServiceClient::with_interceptor(
            channels[n % 2].clone(),
            Bearer::new(&studio.desk),
        );
        let gate = Arc::clone(&gate);
        desks.push(tokio::spawn(async move {
            gate.wait().await;
            let began = Instant::now();
            let answer = desk.create_booking(request).await;
            (began.elapsed(), answer)
        }));
    }
    let mut chambers = Vec::new();
    let mut slowest = std::time::Duration::ZERO;
    for desk in desks {
        let (took, answer) = desk.await.unwrap();
        slowest = slowest.max(took);
        match answer {
            Ok(booked) => chambers.extend(taken(&booked.into_inner().booking.unwrap())),
            Err(status) => assert_eq!(reason(&status), "SLOT_UNAVAILABLE", "{status:?}"),
        }
    }
    chambers.sort();
    let booked = chambers.len();
    chambers.dedup();
    assert_eq!(booked, CHAMBERS, "one booking per chamber: {chambers:?}");
    assert_eq!(chambers.len(), CHAMBERS, "a chamber booked twice");
    assert!(
        slowest < std::time::Duration::from_secs(5),
        "the slowest desk waited {slowest:?}"
    );
    // Both replicas see the slot full, and the earlier bookings kept.
    for channel in &channels {
        let mut client =
            BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&studio.manager));
        let slots = search(&mut client, window(&studio)).await;
        assert!(free_at(&slots, t(WINDOW.0)).is_empty());
        assert_eq!(free_at(&slots, t(&later)).len(), CHAMBERS - 2);
    }
}

/// A booking on a replica whose kept calendar predates the other's last
/// booking: its allocations, written on the condition that the location's
/// version has not moved (`store::allocations::allocate_at`), are not written on that calendar,
/// and it picks again on the calendar read under the lock. Asked for the
/// chamber the other replica took, it is refused; asked for any, it gets
/// another; and both replicas then show both taken. From the second round
/// on, A's calendar is stale too (B booked after it was kept).
async fn a_booking_on_a_stale_calendar_books_on_the_committed_one(db: TestDb) {
    let studio = studio_with_chambers(db).await;
    let (_replica, server) = replica(&studio).await;
    let mut a = studio.client(&studio.desk).await;
    let mut b =
        BookingServiceClient::with_interceptor(server.channel().await, Bearer::new(&studio.desk));
    assert_eq!(search(&mut a, window(&studio)).await.len(), 20);
    assert_eq!(search(&mut b, window(&studio)).await.len(), 20);
    for round in 0..3 {
        let at = t(WINDOW.0).map(|mut at| {
            at.seconds += i64::from(round) * 180;
            at
        });
        let first = a
            .create_booking(pb::CreateBookingRequest {
                start_time: at,
                ..studio.booking(&format!("a-{round}"), WINDOW.0).await
            })
            .await
            .unwrap()
            .into_inner()
            .booking
            .unwrap();
        let chamber = taken(&first);
        // B kept the slot's calendar from before A's booking.
        let refused = b
            .create_booking(pb::CreateBookingRequest {
                start_time: at,
                resource_id: chamber[0].clone(),
                ..studio.booking(&format!("b-{round}"), WINDOW.0).await
            })
            .await
            .expect_err("the chamber A booked");
        assert_eq!(reason(&refused), "SLOT_UNAVAILABLE", "{refused:?}");
        let second = b
            .create_booking(pb::CreateBookingRequest {
                start_time: at,
                ..studio.booking(&format!("b-{round}"), WINDOW.0).await
            })
            .await
            .unwrap()
            .into_inner()
            .booking
            .unwrap();
        assert_ne!(taken(&second), chamber, "round {round}");
        for client in [&mut a, &mut b] {
            let free = free_at(&search(client, window(&studio)).await, at);
            assert_eq!(free.len(), CHAMBERS - 2, "round {round}: {free:?}");
            assert!(!free.contains(&chamber[0]) && !free.contains(&taken(&second)[0]));
        }
    }
}

/// Makes every booking of `client_id` fail as it commits (PostgreSQL: a
/// deferred trigger, after its allocations are written; SQLite: as it is
/// written).
async fn doom(studio: &Studio, client_id: &str) {
    let mut conn = sqlx::AnyConnection::connect(studio.db.url()).await.unwrap();
    let statements = match studio.db.engine() {
        recovery_kit::db::Engine::Postgres => vec![
            "CREATE FUNCTION doom() RETURNS trigger AS $$ BEGIN \
             RAISE EXCEPTION 'doomed'; END $$ LANGUAGE plpgsql"
                .to_owned(),
            format!(
                "CREATE CONSTRAINT TRIGGER doom AFTER INSERT ON bookings \
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW \
                 WHEN (NEW.client_id = '{client_id}') EXECUTE FUNCTION doom()"
            ),
        ],
        recovery_kit::db::Engine::Sqlite => vec![format!(
            "CREATE TRIGGER doom AFTER INSERT ON bookings \
             WHEN NEW.client_id = '{client_id}' BEGIN SELECT RAISE(ABORT, 'doomed'); END"
        )],
    };
    for statement in statements {
        sqlx::query(&statement).execute(&mut conn).await.unwrap();
    }
}

/// A booking decided on a kept calendar hands the location's turn on
/// before it commits, and the next booking on that replica picks on the
/// calendar with it (`calendars::changes`). When the first one rolls back
/// and a booking on another replica takes the version it would have left,
/// the next one must not keep what it decided on a calendar that never
/// was: it picks again on the committed one, and both replicas show the
/// other replica's chamber and its own taken, the rolled-back one's free.
async fn a_booking_after_one_rolled_back_books_on_the_committed_calendar(db: TestDb) {
    let studio = studio_with_chambers(db).await;
    let (_replica, server) = replica(&studio).await;
    let mut a = studio.client(&studio.desk).await;
    let mut b =
        BookingServiceClient::with_interceptor(server.channel().await, Bearer::new(&studio.desk));
    let chambers = free_at(&search(&mut a, window(&studio)).await, t(WINDOW.0));
    assert_eq!(chambers.len(), CHAMBERS);
    doom(&studio, &studio.person("doomed").await).await;
    let mut booked: Vec<String> = Vec::new();
    for round in 0..2 {
        // The doomed booking asks for the first chamber free, the other
        // replica's for the last: a calendar that kept the doomed one
        // would offer the other replica's chamber.
        let free: Vec<&String> = chambers.iter().filter(|c| !booked.contains(c)).collect();
        let (first, last) = (free[0].clone(), free[free.len() - 1].clone());
        a.create_booking(pb::CreateBookingRequest {
            resource_id: first,
            ..studio.booking("doomed", WINDOW.0).await
        })
        .await
        .expect_err("the doomed booking fails");
        assert_eq!(
            studio.rows("bookings").await,
            i64::try_from(booked.len()).unwrap()
        );
        let other = b
            .create_booking(pb::CreateBookingRequest {
                resource_id: last,
                ..studio.booking(&format!("other-{round}"), WINDOW.0).await
            })
            .await
            .unwrap()
            .into_inner()
            .booking
            .unwrap();
        booked.extend(taken(&other));
        let next = a
            .create_booking(studio.booking(&format!("next-{round}"), WINDOW.0).await)
            .await
            .unwrap()
            .into_inner()
            .booking
            .unwrap();
        booked.extend(taken(&next));
        for client in [&mut a, &mut b] {
            let free = free_at(&search(client, window(&studio)).await, t(WINDOW.0));
            assert_eq!(
                free.len(),
                CHAMBERS - booked.len(),
                "{free:?}, taken {booked:?}"
            );
            assert!(
                booked.iter().all(|taken| !free.contains(taken)),
                "round {round}: {free:?} offers one of {booked:?}"
            );
        }
    }
    assert_eq!(studio.rows("bookings").await, 4);
}

/// A booking decided on a kept calendar stores its answer under its request
/// id with its allocations, in one statement (`Occupancy::answer`): eight
/// desks sending one request at once make one booking and get one answer,
/// and a retry later replays that answer whole (its chamber too).
async fn a_booking_stored_with_its_allocations_replays_as_it_answered(db: TestDb) {
    let studio = studio_with_chambers(db).await;
    let mut desk = studio.client(&studio.desk).await;
    assert_eq!(search(&mut desk, window(&studio)).await.len(), 20);
    let mut booked = Vec::new();
    for (round, at) in [WINDOW.0, "2026-12-02T15:03:00Z"].into_iter().enumerate() {
        let request = pb::CreateBookingRequest {
            request_id: format!("desk-retry-{round}"),
            ..studio.booking(&format!("client-{round}"), at).await
        };
        let mut calls = Vec::new();
        for _ in 0..8 {
            let mut desk = studio.client(&studio.desk).await;
            let request = request.clone();
            calls.push(async move {
                desk.create_booking(request)
                    .await
                    .map(tonic::Response::into_inner)
            });
        }
        let answers = recovery_kit::testing::at_once(calls).await;
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "round {round}: answers differ"
        );
        let first = answers[0].booking.clone().unwrap();
        assert_eq!(taken(&first).len(), 1, "{first:?}");
        let again = desk.create_booking(request).await.unwrap().into_inner();
        assert_eq!(again, answers[0], "round {round}: the retry's answer");
        booked.push(first);
    }
    assert_eq!(studio.rows("bookings").await, 2);
    assert_eq!(studio.rows("booking_idempotency").await, 2);
    let free = free_at(&search(&mut desk, window(&studio)).await, t(WINDOW.0));
    assert!(!free.contains(&taken(&booked[0])[0]), "{free:?}");
}

/// Searches keep the treatment too, under its tenant's catalog version: a
/// change on one replica reaches the other's next search (a longer
/// turnover leaves fewer slots; archived, it is refused).
async fn a_treatment_change_on_one_replica_reaches_the_others_next_search(db: TestDb) {
    let studio = studio_with_chambers(db).await;
    let (_replica, server) = replica(&studio).await;
    let mut a = studio.client(&studio.manager).await;
    let mut b = BookingServiceClient::with_interceptor(
        server.channel().await,
        Bearer::new(&studio.manager),
    );
    assert_eq!(search(&mut b, window(&studio)).await.len(), 20);
    a.update_treatment(pb::UpdateTreatmentRequest {
        treatment: Some(pb::Treatment {
            id: studio.cryo_id.clone(),
            slot_step: Some(prost_types::Duration {
                seconds: 360,
                nanos: 0,
            }),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["slot_step".into()],
        }),
    })
    .await
    .unwrap();
    assert_eq!(
        search(&mut b, window(&studio)).await.len(),
        10,
        "a 6-minute grid"
    );
    a.archive_treatment(pb::ArchiveTreatmentRequest {
        id: studio.cryo_id.clone(),
    })
    .await
    .unwrap();
    let refused = b.search_availability(window(&studio)).await.unwrap_err();
    assert_eq!(reason(&refused), "TREATMENT_ARCHIVED", "{refused:?}");
}

/// Bookings go by the kept treatment too: a change of its policy on one
/// replica is met by the other's next booking, though that replica kept
/// the treatment from a search and a booking before the change.
async fn a_treatment_change_on_one_replica_reaches_the_others_next_booking(db: TestDb) {
    let studio = studio_with_chambers(db).await;
    let (_replica, server) = replica(&studio).await;
    let mut b =
        BookingServiceClient::with_interceptor(server.channel().await, Bearer::new(&studio.desk));
    assert_eq!(search(&mut b, window(&studio)).await.len(), 20);
    b.create_booking(studio.booking("ben", WINDOW.0).await)
        .await
        .unwrap();
    // Tomorrow at ten is 29 hours ahead: too short a notice from now on.
    studio
        .set_cryo_policy(pb::BookingPolicy {
            min_notice: Some(prost_types::Duration {
                seconds: 48 * 3600,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await;
    let bookings = studio.rows("bookings").await;
    let late = b
        .create_booking(studio.booking("ana", crate::support::TEN_AM).await)
        .await
        .unwrap_err();
    assert_eq!(reason(&late), "TOO_SHORT_NOTICE", "{late:?}");
    assert_eq!(studio.rows("bookings").await, bookings);
}

/// A write to the calendar that took no location lock (a path that forgot
/// it, an operator's script) still moves the location's calendar version:
/// the next search does not offer the chamber it took.
async fn an_allocation_written_without_the_lock_is_taken_in_the_next_search(db: TestDb) {
    let studio = studio_with_chambers(db).await;
    let mut desk = studio.client(&studio.manager).await;
    let free = free_at(&search(&mut desk, window(&studio)).await, t(WINDOW.0));
    assert!(free.contains(&studio.chamber_id), "{free:?}");
    let start = crate::support::at(WINDOW.0).as_microsecond();
    let end = start + 180_000_000;
    let mut conn = sqlx::AnyConnection::connect(studio.db.url()).await.unwrap();
    let written = sqlx::query(
        "INSERT INTO allocations (id, tenant_id, resource_id, kind, owner_id, start_us, \
         end_us, until_us) SELECT $1, tenant_id, id, kind, $2, $3, $4, $4 \
         FROM resources WHERE id = $5",
    )
    .bind(recovery_kit::ids::new_id())
    .bind(recovery_kit::ids::new_id())
    .bind(start)
    .bind(end)
    .bind(&studio.chamber_id)
    .execute(&mut conn)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(written, 1);
    let free = free_at(&search(&mut desk, window(&studio)).await, t(WINDOW.0));
    assert!(
        !free.contains(&studio.chamber_id),
        "the search offers {} at {} after it was taken",
        studio.chamber_id,
        WINDOW.0
    );
    assert_eq!(free.len(), CHAMBERS - 1);
}

recovery_kit::engine_tests!(
    a_booking_after_one_rolled_back_books_on_the_committed_calendar,
    a_booking_stored_with_its_allocations_replays_as_it_answered,
    a_booking_on_a_stale_calendar_books_on_the_committed_one,
    an_allocation_written_without_the_lock_is_taken_in_the_next_search,
    a_treatment_change_on_one_replica_reaches_the_others_next_search,
    a_treatment_change_on_one_replica_reaches_the_others_next_booking,
    a_booking_on_one_replica_is_taken_in_the_others_next_search,
    bookings_racing_searches_never_show_a_taken_slot_free,
    desks_on_two_replicas_take_each_chamber_once,
);
