//! The waitlist: join, leave and expiry; a freed slot offered to the first
//! eligible entry; decline and expiry passing it on; an accepted offer
//! booking the slot; races that never give one slot to two clients or one
//! client two offers; two booking services on one database making one
//! offer per freed slot.
//!
//! The outbox relay does not run by itself here: a test hands the freed
//! slots to the matcher with `outbox().pass()`, and lapsed offers are found
//! with `sweep_offers()` after the clock moves.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use recovery_kit::testing::TestDb;
use recovery_proto::booking::v1 as pb;
use recovery_proto::protocols::v1 as protocols_pb;
use tokio::sync::Barrier;
use tonic::{Code, Status};

use crate::support::{Studio, TEN_AM, fields, mins, reason, refused, start, t};

/// The end of the one-slot window at ten (a 3-minute cryo session).
const TEN_OH_THREE: &str = "2026-12-02T15:03:00Z";

/// The longest a stream message may take to arrive.
const WAIT: Duration = Duration::from_secs(5);

/// The slowest call of the race this test tolerates: short transactions
/// queueing on one location's lock; a debug build on a busy two-core CI
/// machine stays well under it.
const SLOWEST: Duration = Duration::from_secs(5);

fn join_request(studio: &Studio, client_id: &str, from: &str, to: &str) -> pb::JoinWaitlistRequest {
    pb::JoinWaitlistRequest {
        location_id: studio.location_id.clone(),
        treatment_id: studio.cryo_id.clone(),
        client_id: client_id.to_owned(),
        start_time: t(from),
        end_time: t(to),
        ..Default::default()
    }
}

async fn join(studio: &Studio, name: &str, from: &str, to: &str) -> pb::WaitlistEntry {
    let request = join_request(studio, &studio.person(name).await, from, to);
    studio
        .client(&studio.desk)
        .await
        .join_waitlist(request)
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap()
}

async fn entry(studio: &Studio, id: &str) -> pb::WaitlistEntry {
    studio
        .client(&studio.desk)
        .await
        .get_waitlist_entry(pb::GetWaitlistEntryRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap()
}

/// The location's entries in join order, in `state` (unspecified: all).
async fn entries(studio: &Studio, state: pb::WaitlistEntryState) -> Vec<pb::WaitlistEntry> {
    studio
        .client(&studio.desk)
        .await
        .list_waitlist_entries(pb::ListWaitlistEntriesRequest {
            location_id: studio.location_id.clone(),
            state: state as i32,
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries
}

/// The open offers of the location, as the entries show them.
async fn open_offers(studio: &Studio) -> Vec<pb::WaitlistOffer> {
    entries(studio, pb::WaitlistEntryState::Unspecified)
        .await
        .into_iter()
        .filter_map(|e| e.offer)
        .collect()
}

/// Hands every freed slot to the matcher.
async fn relay(studio: &Studio) {
    studio.bookings.outbox().pass().await.unwrap();
}

async fn cancel(studio: &Studio, booking_id: &str) {
    studio.cancel(booking_id, "cannot make it").await.unwrap();
}

async fn accept(studio: &Studio, offer_id: &str) -> Result<pb::AcceptOfferResponse, Status> {
    studio
        .client(&studio.desk)
        .await
        .accept_offer(pb::AcceptOfferRequest {
            id: offer_id.into(),
            request_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn join_leave_and_expiry(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    let ana = studio.person("ana").await;
    let evening = ("2026-12-02T22:00:00Z", "2026-12-03T01:00:00Z");
    let mut request = join_request(&studio, &ana, evening.0, evening.1);
    request.request_id = "join-ana".into();
    let joined = desk
        .join_waitlist(request.clone())
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap();
    assert_eq!(joined.state(), pb::WaitlistEntryState::Waiting);
    assert_eq!(joined.client_id, ana);
    assert_eq!(joined.start_time, t(evening.0));
    // The same request again, and an overlapping window: one entry.
    let replayed = desk.join_waitlist(request).await.unwrap().into_inner();
    assert_eq!(replayed.entry.unwrap().id, joined.id);
    let overlapping = join(
        &studio,
        "ana",
        "2026-12-02T23:00:00Z",
        "2026-12-03T02:00:00Z",
    )
    .await;
    assert_eq!(overlapping.id, joined.id);
    assert_eq!(studio.rows("waitlist_entries").await, 1);

    // Bad input: every field named, nothing written.
    let bad = desk
        .join_waitlist(pb::JoinWaitlistRequest {
            location_id: studio.location_id.clone(),
            treatment_id: "nope".into(),
            start_time: t(evening.1),
            end_time: t(evening.0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let named = fields(&bad);
    for field in ["treatment_id", "client_id", "end_time"] {
        assert!(named.contains(&field.to_owned()), "{field} in {named:?}");
    }
    // The rules refuse an unscreened client as they would refuse a booking.
    let unscreened = studio.new_client("Una").await;
    let refusal = desk
        .join_waitlist(join_request(&studio, &unscreened, evening.0, evening.1))
        .await;
    refused(refusal, "SCREENING_REQUIRED");
    assert_eq!(studio.rows("waitlist_entries").await, 1);
    // A hub's key does not run the desk's waitlist.
    let denied = studio
        .client(&studio.hub)
        .await
        .join_waitlist(join_request(&studio, &ana, evening.0, evening.1))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Leave: the entry is LEFT, and leaving twice is refused.
    let left = desk
        .leave_waitlist(pb::LeaveWaitlistRequest {
            id: joined.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap();
    assert_eq!(left.state(), pb::WaitlistEntryState::Left);
    let twice = desk
        .leave_waitlist(pb::LeaveWaitlistRequest {
            id: joined.id.clone(),
        })
        .await;
    assert_eq!(reason(&twice.unwrap_err()), "ILLEGAL_TRANSITION");

    // An entry expires at the end of its window.
    let bo = join(&studio, "bo", evening.0, evening.1).await;
    assert_eq!(
        entries(&studio, pb::WaitlistEntryState::Waiting)
            .await
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>(),
        vec![bo.id.clone()]
    );
    studio.clock.set(crate::support::at(evening.1));
    assert_eq!(
        entry(&studio, &bo.id).await.state(),
        pb::WaitlistEntryState::Expired
    );
    assert!(
        entries(&studio, pb::WaitlistEntryState::Waiting)
            .await
            .is_empty()
    );
    assert_eq!(
        entries(&studio, pb::WaitlistEntryState::Expired)
            .await
            .len(),
        1
    );
    // Another tenant's key sees nothing of it: the studio's own only.
    let missing = desk
        .get_waitlist_entry(pb::GetWaitlistEntryRequest {
            id: recovery_kit::ids::new_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

async fn a_cancellation_offers_to_the_first_eligible_entry(db: TestDb) {
    let studio = start(db).await;
    let booked = studio.book("dee", TEN_AM).await.unwrap();
    let ana = join(&studio, "ana", TEN_AM, TEN_OH_THREE).await;
    let bo = join(&studio, "bo", TEN_AM, TEN_OH_THREE).await;
    let cy = join(&studio, "cy", TEN_AM, TEN_OH_THREE).await;
    relay(&studio).await;
    assert!(open_offers(&studio).await.is_empty(), "the slot is taken");
    // Since joining, ana declared a pacemaker: the rules now refuse her.
    studio
        .screen(
            &studio.person("ana").await,
            &[protocols_pb::Condition::Pacemaker],
        )
        .await;

    let mut screen = studio
        .client(&studio.desk)
        .await
        .watch_offers(pb::WatchOffersRequest {
            location_id: studio.location_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::watch_offers_response::Event::Snapshot(snapshot)) =
        screen.message().await.unwrap().unwrap().event
    else {
        panic!("a snapshot first");
    };
    assert!(snapshot.offers.is_empty());
    let mut tablet = studio
        .watch(&studio.staff, &studio.location_id, "2026-12-02")
        .await;
    tablet.message().await.unwrap().unwrap();

    cancel(&studio, &booked.id).await;
    relay(&studio).await;
    // ana is skipped (refused), bo is first: one offer, on the slot.
    let offers = open_offers(&studio).await;
    assert_eq!(offers.len(), 1, "{offers:?}");
    let offer = &offers[0];
    assert_eq!(offer.entry_id, bo.id);
    assert_eq!(offer.client_id, studio.person("bo").await);
    assert_eq!(offer.start_time, t(TEN_AM));
    assert_eq!(offer.expire_time, t("2026-12-01T10:10:00Z"), "10 minutes");
    assert_eq!(offer.resources.len(), 1);
    assert!(entry(&studio, &ana.id).await.offer.is_none());
    assert!(entry(&studio, &cy.id).await.offer.is_none());
    // Joining again answers bo's entry, with its offer.
    let again = join(&studio, "bo", TEN_AM, TEN_OH_THREE).await;
    assert_eq!(again.id, bo.id);
    assert_eq!(again.offer.map(|o| o.id), Some(offer.id.clone()));
    // The front desk's screen hears of it, with what a notifier needs.
    let seen = tokio::time::timeout(WAIT, screen.message())
        .await
        .expect("the offer within the wait")
        .unwrap()
        .unwrap();
    let Some(pb::watch_offers_response::Event::Changed(seen)) = seen.event else {
        panic!("an offer");
    };
    assert_eq!(seen.id, offer.id);
    assert_eq!(seen.state(), pb::OfferState::Open);
    assert_eq!(seen.client_id, offer.client_id);
    // The schedule shows the slot held.
    let mut held = None;
    while held.is_none() {
        let message = tokio::time::timeout(WAIT, tablet.message())
            .await
            .expect("the held slot within the wait")
            .unwrap()
            .unwrap();
        if let Some(pb::watch_schedule_response::Event::Held(hold)) = message.event {
            held = Some(hold);
        }
    }
    assert_eq!(held.unwrap().id, offer.hold_id);
    // Nobody books the offered slot meanwhile.
    let direct = studio.book("eve", TEN_AM).await.unwrap_err();
    assert_eq!(reason(&direct), "SLOT_UNAVAILABLE");

    // Accepting books it: the hold becomes bo's booking.
    let accepted = accept(&studio, &offer.id).await.unwrap();
    let booking = accepted.booking.unwrap();
    assert_eq!(booking.client_id, studio.person("bo").await);
    assert_eq!(booking.start_time, t(TEN_AM));
    assert_eq!(booking.status(), pb::BookingStatus::Booked);
    assert_eq!(accepted.offer.unwrap().state(), pb::OfferState::Accepted);
    let bo_now = entry(&studio, &bo.id).await;
    assert_eq!(bo_now.state(), pb::WaitlistEntryState::Booked);
    assert_eq!(bo_now.booking_id, booking.id);
    let Some(pb::watch_offers_response::Event::Changed(closed)) =
        tokio::time::timeout(WAIT, screen.message())
            .await
            .expect("the acceptance within the wait")
            .unwrap()
            .unwrap()
            .event
    else {
        panic!("a change");
    };
    assert_eq!(closed.state(), pb::OfferState::Accepted);
}

async fn decline_and_expiry_pass_the_slot_on(db: TestDb) {
    let studio = start(db).await;
    let booked = studio.book("dee", TEN_AM).await.unwrap();
    let names = ["ana", "bo", "cy"];
    let mut ids = HashMap::new();
    for name in names {
        ids.insert(name, join(&studio, name, TEN_AM, TEN_OH_THREE).await.id);
    }
    cancel(&studio, &booked.id).await;
    relay(&studio).await;
    let offers = open_offers(&studio).await;
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].entry_id, ids["ana"]);

    // ana declines: bo gets the slot.
    let declined = studio
        .client(&studio.desk)
        .await
        .decline_offer(pb::DeclineOfferRequest {
            id: offers[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .offer
        .unwrap();
    assert_eq!(declined.state(), pb::OfferState::Declined);
    relay(&studio).await;
    let offers = open_offers(&studio).await;
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].entry_id, ids["bo"]);
    let bo_offer = offers[0].clone();
    // A declined offer cannot be accepted.
    let late = accept(&studio, &declined.id).await;
    assert_eq!(reason(&late.unwrap_err()), "ILLEGAL_TRANSITION");

    // bo lets it lapse: after ten minutes the sweep passes it to cy.
    studio.clock.advance(SignedDuration::from_secs(10 * 60 + 1));
    assert_eq!(studio.bookings.sweep_offers().await.unwrap(), 1);
    relay(&studio).await;
    let offers = open_offers(&studio).await;
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].entry_id, ids["cy"]);

    // Accepting after the expiry is refused, and writes nothing.
    refused(accept(&studio, &bo_offer.id).await, "OFFER_EXPIRED");
    assert!(studio.bookings_of("bo").await.is_empty());
    assert_eq!(
        entry(&studio, &ids["bo"]).await.state(),
        pb::WaitlistEntryState::Waiting
    );
    // cy accepts in time.
    let booking = accept(&studio, &offers[0].id)
        .await
        .unwrap()
        .booking
        .unwrap();
    assert_eq!(booking.client_id, studio.person("cy").await);
    assert_eq!(studio.rows("bookings").await, 2, "dee's and cy's");
}

async fn an_offer_accepted_after_expiry_is_refused(db: TestDb) {
    let studio = start(db).await;
    studio.bookings.set_offer_time(SignedDuration::from_mins(2));
    let booked = studio.book("dee", TEN_AM).await.unwrap();
    let ana = join(&studio, "ana", TEN_AM, TEN_OH_THREE).await;
    cancel(&studio, &booked.id).await;
    relay(&studio).await;
    let offer = entry(&studio, &ana.id).await.offer.expect("an offer");
    assert_eq!(offer.expire_time, t("2026-12-01T10:02:00Z"), "the set time");
    // Before any sweep ran: the clock alone decides.
    studio.clock.advance(SignedDuration::from_secs(2 * 60));
    refused(accept(&studio, &offer.id).await, "OFFER_EXPIRED");
    assert!(studio.bookings_of("ana").await.is_empty());
    assert_eq!(studio.rows("bookings").await, 1, "dee's cancelled one");
    let declined = studio
        .client(&studio.desk)
        .await
        .decline_offer(pb::DeclineOfferRequest {
            id: offer.id.clone(),
        })
        .await;
    refused(declined, "OFFER_EXPIRED");
}

/// 20 bookings fill an hour of the chamber; 10 clients each wait for both
/// halves (20 entries). The 20 cancellations and 20 joins race, with two
/// relays handing freed slots to the matcher meanwhile. Afterwards every
/// client has exactly one offer (enough slots freed for all), no slot is
/// offered twice, and the other 10 slots are free.
async fn racing_cancellations_and_joins_never_double_offer(db: TestDb) {
    const SLOTS: usize = 20;
    const CLIENTS: usize = 10;
    let studio = Arc::new(start(db).await);
    let hour = ("2026-12-02T15:00:00Z", "2026-12-02T16:00:00Z");
    let half = "2026-12-02T15:30:00Z";
    let first: jiff::Timestamp = hour.0.parse().unwrap();
    let mut bookings = Vec::new();
    for i in 0..SLOTS {
        let start = first + SignedDuration::from_mins(3 * i64::try_from(i).unwrap());
        let booking = studio
            .book(&format!("booked-{i}"), &start.to_string())
            .await
            .unwrap();
        bookings.push(booking.id);
    }
    let mut joins = Vec::new();
    for i in 0..CLIENTS {
        let client_id = studio.person(&format!("waiting-{i}")).await;
        joins.push(join_request(&studio, &client_id, hour.0, half));
        joins.push(join_request(&studio, &client_id, half, hour.1));
    }
    let gate = Arc::new(Barrier::new(SLOTS + joins.len() + 2));
    let mut calls = Vec::new();
    for id in bookings {
        let mut desk = studio.client(&studio.desk).await;
        let gate = Arc::clone(&gate);
        calls.push(tokio::spawn(async move {
            gate.wait().await;
            let started = Instant::now();
            let answer = desk
                .cancel_booking(pb::CancelBookingRequest {
                    id,
                    reason: String::new(),
                })
                .await
                .map(|_| ());
            (started.elapsed(), answer)
        }));
    }
    for request in joins {
        let mut desk = studio.client(&studio.desk).await;
        let gate = Arc::clone(&gate);
        calls.push(tokio::spawn(async move {
            gate.wait().await;
            let started = Instant::now();
            let answer = desk.join_waitlist(request).await.map(|_| ());
            (started.elapsed(), answer)
        }));
    }
    let mut relays = Vec::new();
    for _ in 0..2 {
        let studio = Arc::clone(&studio);
        let gate = Arc::clone(&gate);
        relays.push(tokio::spawn(async move {
            gate.wait().await;
            for _ in 0..5 {
                studio.bookings.outbox().pass().await.unwrap();
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut slowest = Duration::ZERO;
    for call in calls {
        let (took, answer) = call.await.unwrap();
        slowest = slowest.max(took);
        answer.expect("every cancellation and join succeeds");
    }
    for relay in relays {
        relay.await.unwrap();
    }
    assert!(slowest < SLOWEST, "the slowest call took {slowest:?}");
    relay(&studio).await;

    let offers = open_offers(&studio).await;
    let clients: HashSet<_> = offers.iter().map(|o| o.client_id.clone()).collect();
    assert_eq!(
        clients.len(),
        offers.len(),
        "one client, two offers: {offers:?}"
    );
    assert_eq!(offers.len(), CLIENTS, "every waiting client has an offer");
    let slots: HashSet<_> = offers.iter().map(|o| o.start_time).collect();
    assert_eq!(
        slots.len(),
        offers.len(),
        "one slot, two offers: {offers:?}"
    );
    // What the database holds: one open offer per client (the index), and
    // no two allocations of the chamber overlap.
    let open: i64 = {
        use sqlx::Row as _;
        sqlx::query("SELECT COUNT(*) AS n FROM waitlist_offers WHERE status = 'open'")
            .fetch_one(studio.db.db.reader())
            .await
            .unwrap()
            .try_get("n")
            .unwrap()
    };
    assert_eq!(open, i64::try_from(CLIENTS).unwrap());
    let free = studio.slots(hour.0, hour.1).await;
    assert_eq!(free.len(), SLOTS - CLIENTS, "the rest is free: {free:?}");
}

/// Two booking services on one database (as two replicas are: each its
/// own relay, matcher and gates; the location's lock, the allocation and
/// the unique index shared) deliver the same freed-slot events at once:
/// each freed slot is offered once.
async fn two_replicas_make_one_offer_per_freed_slot(db: TestDb) {
    const FREED: usize = 4;
    let studio = start(db).await;
    let replica = studio.replica().await;
    let window = ("2026-12-02T15:00:00Z", "2026-12-02T15:12:00Z");
    let first: jiff::Timestamp = window.0.parse().unwrap();
    let mut booked = Vec::new();
    for i in 0..FREED {
        let start = first + SignedDuration::from_mins(3 * i64::try_from(i).unwrap());
        booked.push(
            studio
                .book(&format!("booked-{i}"), &start.to_string())
                .await
                .unwrap()
                .id,
        );
    }
    for i in 0..FREED * 2 {
        join(&studio, &format!("waiting-{i}"), window.0, window.1).await;
    }
    // The joins' own events find nothing free.
    tokio::try_join!(studio.bookings.outbox().pass(), replica.outbox().pass()).unwrap();
    assert!(open_offers(&studio).await.is_empty());
    for (round, id) in booked.iter().enumerate() {
        cancel(&studio, id).await;
        tokio::try_join!(studio.bookings.outbox().pass(), replica.outbox().pass()).unwrap();
        let offers = open_offers(&studio).await;
        assert_eq!(
            offers.len(),
            round + 1,
            "one offer per freed slot: {offers:?}"
        );
    }
    let offers = open_offers(&studio).await;
    let order: Vec<_> = entries(&studio, pb::WaitlistEntryState::Waiting)
        .await
        .into_iter()
        .map(|e| e.id)
        .take(FREED)
        .collect();
    let offered: HashSet<_> = offers.iter().map(|o| o.entry_id.clone()).collect();
    assert_eq!(
        offered,
        order.into_iter().collect::<HashSet<_>>(),
        "the first entries in join order"
    );
    // Their sweeps race too: one expiry each, passed on once.
    studio.clock.advance(SignedDuration::from_secs(10 * 60 + 1));
    let (a, b) = tokio::try_join!(studio.bookings.sweep_offers(), replica.sweep_offers()).unwrap();
    assert_eq!(a + b, FREED, "each lapsed offer swept once");
    tokio::try_join!(studio.bookings.outbox().pass(), replica.outbox().pass()).unwrap();
    let next = open_offers(&studio).await;
    assert_eq!(next.len(), FREED, "one offer per slot passed on");
    let before: HashSet<_> = offers
        .iter()
        .map(|o| (o.entry_id.clone(), o.start_time))
        .collect();
    assert!(
        next.iter()
            .all(|o| !before.contains(&(o.entry_id.clone(), o.start_time))),
        "no entry is offered a slot it let lapse: {next:?}"
    );
    let slots: HashSet<_> = next.iter().map(|o| o.start_time).collect();
    assert_eq!(slots.len(), FREED);
}

/// A lapsed hold, a removed blackout and a new chamber free slots too;
/// each reaches the entry waiting for it.
async fn every_way_a_slot_frees_up_reaches_the_waitlist(db: TestDb) {
    let studio = start(db).await;
    let mut desk = studio.client(&studio.desk).await;
    let mut manager = studio.client(&studio.manager).await;
    let (t1, t2, t3, t4) = (
        "2026-12-02T15:03:00Z",
        "2026-12-02T15:06:00Z",
        "2026-12-02T15:09:00Z",
        "2026-12-02T15:12:00Z",
    );
    // A hold that lapses.
    desk.hold_slot(pb::HoldSlotRequest {
        ttl: mins(5),
        ..studio.hold_request(&studio.person("eve").await, t1)
    })
    .await
    .unwrap();
    let ana = join(&studio, "ana", t1, t2).await;
    // A blackout that is lifted.
    let blacked = manager
        .add_blackout(pb::AddBlackoutRequest {
            resource_id: studio.chamber_id.clone(),
            blackout: Some(pb::Blackout {
                start_time: t(t2),
                end_time: t(t3),
                reason: "defrost".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .resource
        .unwrap();
    let bo = join(&studio, "bo", t2, t3).await;
    // A slot taken until a second chamber comes.
    studio.book("fay", t3).await.unwrap();
    let cy = join(&studio, "cy", t3, t4).await;
    relay(&studio).await;
    assert!(open_offers(&studio).await.is_empty(), "nothing free yet");

    studio.clock.advance(SignedDuration::from_secs(5 * 60 + 1));
    assert_eq!(studio.bookings.sweep_offers().await.unwrap(), 1);
    relay(&studio).await;
    let offer = entry(&studio, &ana.id)
        .await
        .offer
        .expect("the lapsed hold's slot");
    assert_eq!(offer.start_time, t(t1));

    manager
        .remove_blackout(pb::RemoveBlackoutRequest {
            resource_id: studio.chamber_id.clone(),
            blackout_id: blacked.blackouts[0].id.clone(),
        })
        .await
        .unwrap();
    relay(&studio).await;
    let offer = entry(&studio, &bo.id)
        .await
        .offer
        .expect("the lifted blackout's slot");
    assert_eq!(offer.start_time, t(t2));

    let second = studio.chamber("Chamber 2").await;
    relay(&studio).await;
    let offer = entry(&studio, &cy.id)
        .await
        .offer
        .expect("the new chamber's slot");
    assert_eq!(offer.start_time, t(t3));
    assert_eq!(offer.resources[0].resource_ids, vec![second]);
    assert_eq!(open_offers(&studio).await.len(), 3, "one each");
}

/// An erased client leaves the waitlist; their open offer is withdrawn and
/// its slot passed on.
async fn an_erased_client_leaves_and_their_offer_passes_on(db: TestDb) {
    let studio = start(db).await;
    let booked = studio.book("dee", TEN_AM).await.unwrap();
    let ana = join(&studio, "ana", TEN_AM, TEN_OH_THREE).await;
    let bo = join(&studio, "bo", TEN_AM, TEN_OH_THREE).await;
    cancel(&studio, &booked.id).await;
    relay(&studio).await;
    let offer = entry(&studio, &ana.id).await.offer.expect("ana first");
    studio
        .protocols_client()
        .await
        .delete_client(protocols_pb::DeleteClientRequest {
            id: studio.person("ana").await,
        })
        .await
        .unwrap();
    studio.protocols.outbox().pass().await.unwrap();
    assert_eq!(
        entry(&studio, &ana.id).await.state(),
        pb::WaitlistEntryState::Left
    );
    refused(accept(&studio, &offer.id).await, "ILLEGAL_TRANSITION");
    relay(&studio).await;
    let passed = entry(&studio, &bo.id).await.offer.expect("then bo");
    assert_eq!(passed.start_time, t(TEN_AM));
}

/// A booking moved to another time frees its old slot for the waitlist.
async fn a_rescheduled_booking_frees_its_old_slot(db: TestDb) {
    let studio = start(db).await;
    let booked = studio.book("dee", TEN_AM).await.unwrap();
    let ana = join(&studio, "ana", TEN_AM, TEN_OH_THREE).await;
    relay(&studio).await;
    assert!(entry(&studio, &ana.id).await.offer.is_none());
    studio
        .client(&studio.desk)
        .await
        .reschedule_booking(pb::RescheduleBookingRequest {
            id: booked.id.clone(),
            start_time: t("2026-12-02T16:00:00Z"),
            ..Default::default()
        })
        .await
        .unwrap();
    relay(&studio).await;
    let offer = entry(&studio, &ana.id).await.offer.expect("the old slot");
    assert_eq!(offer.start_time, t(TEN_AM));
}

recovery_kit::engine_tests!(
    a_rescheduled_booking_frees_its_old_slot,
    an_erased_client_leaves_and_their_offer_passes_on,
    every_way_a_slot_frees_up_reaches_the_waitlist,
    join_leave_and_expiry,
    a_cancellation_offers_to_the_first_eligible_entry,
    decline_and_expiry_pass_the_slot_on,
    an_offer_accepted_after_expiry_is_refused,
    racing_cancellations_and_joins_never_double_offer,
    two_replicas_make_one_offer_per_freed_slot,
);
