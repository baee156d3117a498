//! Waitlist offers: when a slot frees up (a cancellation, a no-show, a
//! hold or offer that lapsed, a declined offer, a blackout removed, a
//! resource added), the transaction that frees it writes a "slot freed"
//! event into the outbox; the matcher (an outbox consumer) looks at the
//! entries waiting for that window in join order, runs the rules for the
//! first one with a free slot (never inside a transaction), and takes the
//! offer's hold in its own short transaction under the location's lock.
//! The allocation decides who gets a slot (one hold per slot, never while a
//! booking takes it) and the unique index `waitlist_offers_one_open_per_client`
//! keeps a client at one open offer, so two replicas delivering the same
//! event make one offer. A periodic sweep frees holds and offers whose time
//! ran out, which passes their slots on the same way.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use recovery_kit::auth::BoxFuture;
use recovery_kit::db::{Attempt, MAX_ATTEMPTS, Tx, is_unique_violation, retry};
use recovery_kit::events::Event;
use recovery_kit::ids::new_id;
use recovery_kit::outbox::{self, Consumer};
use recovery_kit::server::{Shutdown, spawn_every};
use recovery_kit::time::{from_micros, from_proto, to_micros, to_proto};
use recovery_kit::{Caller, Error, Lock, Role, Scope, reason};
use recovery_proto::booking::v1 as pb;
use recovery_scheduling as sched;
use sqlx::AnyConnection;

use crate::availability::{Occupancy, Place, check_policy};
use crate::calendars::Placed;
use crate::relay::is_final;
use crate::store::waitlist::{EntryState, Offer, OfferStatus};
use crate::store::{self, Hold, Resource, Treatment};
use crate::vetting::{Candidate, Vetted};
use crate::wire::{Acceptance, BookingSource, NewBooking};
use crate::{Bookings, OFFER_TOPIC, OUTBOX_TABLE, SLOT_FREED_TOPIC};

/// How long an offer holds its slot unless configured.
pub const DEFAULT_OFFER_TIME: SignedDuration = SignedDuration::from_mins(10);
/// How often the sweep looks for lapsed holds and offers.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Rows a sweep or a match looks at once.
const BATCH: i64 = 200;

/// The waitlist's settings, shared by every handle on the service.
#[derive(Debug)]
pub(crate) struct Settings {
    offer_secs: AtomicI64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            offer_secs: AtomicI64::new(DEFAULT_OFFER_TIME.as_secs()),
        }
    }
}

/// How the waitlist behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitlistConfig {
    /// Minutes a waitlist offer holds its slot for the client before it
    /// passes to the next entry.
    #[arg(
        long = "offer-minutes",
        env = "RECOVERY_OFFER_MINUTES",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1440)
    )]
    pub offer_minutes: u32,
}

/// The acting caller of the matcher and the sweep: the service itself, for
/// one tenant.
fn agent(tenant_id: &str) -> Caller {
    Caller {
        tenant_id: Some(tenant_id.to_owned()),
        role: Role::Service,
        key_id: "waitlist".into(),
    }
}

/// Writes "the window `[start, end)` of a location freed up" into the
/// outbox, in the transaction that freed it.
pub(crate) async fn record_freed(
    tx: &mut Tx,
    (tenant_id, location_id): (&str, &str),
    (start, end): (i64, i64),
    now: i64,
) -> Result<(), sqlx::Error> {
    let freed = pb::SearchAvailabilityRequest {
        location_id: location_id.to_owned(),
        start_time: Some(to_proto(from_micros(start))),
        end_time: Some(to_proto(from_micros(end))),
        ..Default::default()
    };
    let event = Event::new(
        SLOT_FREED_TOPIC,
        tenant_id,
        location_id,
        prost::Message::encode_to_vec(&freed),
    );
    outbox::record(tx, OUTBOX_TABLE, &event, now).await
}

/// Closes a lapsed open offer as expired and, when its hold still held the
/// slot, frees it and passes it on. False when it was closed already.
async fn lapse(tx: &mut Tx, offer: &Offer, now: i64) -> Result<bool, sqlx::Error> {
    if !store::waitlist::close_offer(tx, &offer.id, OfferStatus::Expired, now).await? {
        return Ok(false);
    }
    if store::waitlist::drop_lapsed_allocations(tx, &offer.hold_id, now).await? > 0 {
        let place = (offer.tenant_id.as_str(), offer.location_id.as_str());
        record_freed(tx, place, (offer.start, offer.end), now).await?;
    }
    Ok(true)
}

/// A location's resources and what occupied them when a matching pass
/// began, plus the holds the pass made.
struct Calendar {
    resources: Vec<sched::Resource>,
    busy: Vec<sched::Busy>,
}

/// What the matcher found for an entry: a slot and the treatment.
struct Found {
    treatment: Treatment,
    start: Timestamp,
}

impl Bookings {
    /// Sets how long offers hold their slots (at least a minute).
    pub fn set_offer_time(&self, time: SignedDuration) {
        let secs = time.as_secs().max(60);
        self.waitlist.offer_secs.store(secs, Ordering::Relaxed);
    }

    /// Applies the waitlist flags.
    pub fn configure_waitlist(&self, config: &WaitlistConfig) {
        self.set_offer_time(SignedDuration::from_mins(i64::from(config.offer_minutes)));
    }

    fn offer_time(&self) -> SignedDuration {
        SignedDuration::from_secs(self.waitlist.offer_secs.load(Ordering::Relaxed))
    }

    /// Publishes an offer's change for `WatchOffers` and `WatchSchedule`.
    pub(crate) fn publish_offer(&self, tenant_id: &str, offer: &pb::WaitlistOffer) {
        self.bus.publish(Event::new(
            OFFER_TOPIC,
            tenant_id,
            offer.location_id.clone(),
            prost::Message::encode_to_vec(offer),
        ));
    }

    /// The offer `id` in wire form, with the resources its hold keeps.
    pub(crate) async fn load_offer(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<Option<(String, pb::WaitlistOffer)>, Error> {
        let mut conn = self.db.read().await?;
        let Some(offer) = store::waitlist::offer(&mut conn, scope, id, Lock::Read).await? else {
            return Ok(None);
        };
        let held = store::allocations::held(&mut conn, &offer.hold_id).await?;
        Ok(Some((
            offer.tenant_id.clone(),
            offer.to_wire(&held, self.clock.now()),
        )))
    }

    pub(crate) async fn publish_offer_id(&self, id: &str) {
        match self.load_offer(&Scope::All, id).await {
            Ok(Some((tenant_id, offer))) => self.publish_offer(&tenant_id, &offer),
            Ok(None) => {}
            Err(error) => tracing::warn!(offer_id = id, %error, "offer change not published"),
        }
    }

    /// Offers the slots freed in `window` at a location to the entries
    /// waiting for them, in join order; how many offers were made. A
    /// refusal of the rules skips an entry; a peer that does not answer is
    /// the error (the event is delivered again).
    pub(crate) async fn match_freed(
        &self,
        tenant_id: &str,
        location_id: &str,
        window: (Timestamp, Timestamp),
    ) -> Result<usize, Error> {
        let caller = agent(tenant_id);
        let place = match self.place(&caller, location_id).await {
            Ok(place) => place,
            Err(Error::NotFound { .. }) => return Ok(0),
            Err(error) => return Err(error),
        };
        let now = self.clock.now();
        // The window as it is now, once for the whole pass: a slot freed
        // while the pass runs is left to its own event's pass, which starts
        // again from the first entry, so join order holds.
        let (entries, mut calendar) = {
            let mut conn = self.db.read().await?;
            let micros = (to_micros(window.0), to_micros(window.1));
            let entries = store::waitlist::waiting(
                &mut conn,
                tenant_id,
                location_id,
                micros,
                to_micros(now),
                BATCH,
            )
            .await?;
            let (resources, busy) = self
                .calendar(&mut conn, &place, window.0, window.1, now)
                .await?;
            let resources = resources.iter().map(Resource::to_sched).collect();
            (entries, Calendar { resources, busy })
        };
        let mut offered = 0;
        for entry in &entries {
            match self
                .offer_to(&caller, &place, entry, window, &calendar)
                .await
            {
                Ok(Some(taken)) => {
                    offered += 1;
                    calendar.busy.extend(taken);
                }
                Ok(None) => {}
                Err(error) if is_final(&error) => {
                    tracing::info!(
                        entry_id = %entry.id,
                        reason = error.reason().unwrap_or(""),
                        "waitlist entry skipped"
                    );
                }
                Err(error) => return Err(error),
            }
        }
        Ok(offered)
    }

    /// The first slot in `window` the entry may be offered: free, inside
    /// its window, allowed by the treatment's policy, not offered to it
    /// before.
    async fn find_slot(
        &self,
        caller: &Caller,
        place: &Place,
        entry: &store::waitlist::Entry,
        window: (Timestamp, Timestamp),
        calendar: &Calendar,
    ) -> Result<Option<Found>, Error> {
        let now = self.clock.now();
        let mut conn = self.db.read().await?;
        if let Some(open) =
            store::waitlist::open_offer_of_client(&mut conn, &entry.tenant_id, &entry.client_id)
                .await?
            && open.is_open(now)
        {
            return Ok(None);
        }
        let treatment = self
            .bookable(&mut conn, caller, place, &entry.treatment_id)
            .await?;
        if treatment.archive_time.is_some() {
            return Ok(None);
        }
        let from = window.0.max(from_micros(entry.from));
        let to = window.1.min(from_micros(entry.to));
        if from >= to {
            return Ok(None);
        }
        let offered = store::waitlist::offered_starts(&mut conn, &entry.id).await?;
        drop(conn);
        let Ok(slots) = sched::search(
            &place.schedule,
            &calendar.resources,
            &treatment.to_sched(),
            &calendar.busy,
            sched::Interval::new(from, to),
            entry.resource_id.as_deref(),
        ) else {
            // The preferred resource went: nothing to offer on it.
            return Ok(None);
        };
        let entry_end = from_micros(entry.to);
        let start = slots
            .iter()
            .filter(|s| s.end <= entry_end)
            .filter(|s| !offered.contains(&to_micros(s.start)))
            .find(|s| check_policy(&treatment, s.start, now, true).is_ok())
            .map(|s| s.start);
        Ok(start.map(|start| Found { treatment, start }))
    }

    /// Offers the entry a slot freed in `window` (as `calendar` saw it), if
    /// one fits and the rules let its client have it; what the offer's hold
    /// occupies when one was made.
    async fn offer_to(
        &self,
        caller: &Caller,
        place: &Place,
        entry: &store::waitlist::Entry,
        window: (Timestamp, Timestamp),
        calendar: &Calendar,
    ) -> Result<Option<Vec<sched::Busy>>, Error> {
        let Some(found) = self
            .find_slot(caller, place, entry, window, calendar)
            .await?
        else {
            return Ok(None);
        };
        // The rules run again now, outside any transaction.
        let vetted = self
            .vet(&Candidate {
                tenant_id: &entry.tenant_id,
                client_id: &entry.client_id,
                treatment: &found.treatment,
                location_id: &entry.location_id,
                start: found.start,
                moving: None,
            })
            .await?;
        let (found, vetted) = (&found, &vetted);
        let made = retry(MAX_ATTEMPTS, move || async move {
            let lane = self.gates.lane(&place.location.id).await;
            let now = self.clock.now();
            let now_us = to_micros(now);
            let client_lock = store::bookings::client_lock(&entry.tenant_id, &entry.client_id);
            let mut tx = self.db.begin_holding(Some(&client_lock)).await?;
            let _turn = lane.enter().await;
            let Some(current) =
                store::waitlist::entry(&mut tx, &Scope::All, &entry.id, Lock::ForUpdate).await?
            else {
                return Ok(None);
            };
            if current.state(now) != EntryState::Waiting {
                return Ok(None);
            }
            let mut lapsed = false;
            if let Some(open) =
                store::waitlist::open_offer_of_client(&mut tx, &entry.tenant_id, &entry.client_id)
                    .await?
            {
                if open.is_open(now) {
                    return Ok(None);
                }
                // Lapsed but not swept yet: closed here, its slot passed on.
                lapsed = lapse(&mut tx, &open, now_us).await?;
            }
            let Some((offer, placed)) = self
                .hold_for(&mut tx, place, entry, (found, vetted), now)
                .await?
            else {
                return Ok(None);
            };
            tx.commit().await?;
            self.calendars.advance(placed);
            Ok(Some((offer, lapsed)))
        })
        .await;
        match made {
            Ok(Some((offer, lapsed))) => {
                if lapsed {
                    self.outbox.wake();
                }
                tracing::info!(offer_id = %offer.id, entry_id = %offer.entry_id, "waitlist offer made");
                self.publish_offer_id(&offer.id).await;
                // What the hold occupies, for the rest of the pass.
                let held = {
                    let mut conn = self.db.read().await?;
                    store::allocations::held(&mut conn, &offer.hold_id).await?
                };
                let start = from_micros(offer.start);
                let end = from_micros(offer.end);
                let occupied = end
                    .saturating_add(found.treatment.terms.turnover)
                    .unwrap_or(end);
                Ok(Some(
                    held.into_iter()
                        .map(|h| sched::Busy::new(h.resource_id, start, occupied))
                        .collect(),
                ))
            }
            Ok(None) => Ok(None),
            Err(error) if error.reason() == Some(reason::SLOT_UNAVAILABLE) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Takes the offer's hold on the found slot and stores the offer, in
    /// the matcher's transaction; `None` when the client got an offer
    /// meanwhile (the unique index).
    async fn hold_for(
        &self,
        tx: &mut AnyConnection,
        place: &Place,
        entry: &store::waitlist::Entry,
        (found, vetted): (&Found, &Vetted),
        now: Timestamp,
    ) -> Result<Option<(Offer, Placed)>, Attempt> {
        let now_us = to_micros(now);
        let treatment = &found.treatment;
        check_policy(treatment, found.start, now, true)?;
        let expire = now
            .saturating_add(self.offer_time())
            .unwrap_or(now)
            .min(found.start);
        let end = found
            .start
            .saturating_add(treatment.terms.duration)
            .unwrap_or(found.start);
        let hold = Hold {
            id: new_id(),
            tenant_id: entry.tenant_id.clone(),
            location_id: entry.location_id.clone(),
            treatment_id: treatment.id.clone(),
            client_id: entry.client_id.clone(),
            start: to_micros(found.start),
            end: to_micros(end),
            expire: to_micros(expire),
            booking_id: None,
            recommended_s: vetted.recommended_s,
        };
        store::allocations::insert_hold(tx, &hold, now, "waitlist").await?;
        let session = Occupancy {
            start: found.start,
            preference: entry.resource_id.as_deref(),
            owner_id: &hold.id,
            expire: Some(expire),
            answer: None,
        };
        let placed = self
            .occupy(tx, place, treatment, &session, now)
            .await?
            .placed;
        store::workflow::set_findings(tx, &hold.id, &hold.tenant_id, &vetted.warnings).await?;
        let offer = Offer {
            id: new_id(),
            tenant_id: entry.tenant_id.clone(),
            location_id: entry.location_id.clone(),
            entry_id: entry.id.clone(),
            treatment_id: treatment.id.clone(),
            client_id: entry.client_id.clone(),
            hold_id: hold.id.clone(),
            start: hold.start,
            end: hold.end,
            expire: hold.expire,
            status: OfferStatus::Open,
            booking_id: None,
            create_time: now_us,
        };
        if let Err(error) = store::waitlist::insert_offer(tx, &offer).await {
            // The index's wall: the client got an offer meanwhile.
            if is_unique_violation(&error) {
                return Ok(None);
            }
            return Err(Attempt::from(error));
        }
        Ok(Some((offer, placed)))
    }

    /// Books an offer for its client through the hold it keeps (the rules,
    /// the devices, the booking's transaction, as `CreateBooking` from a
    /// hold); the offer is accepted and its entry booked in the booking's
    /// own transaction.
    pub(crate) async fn accept_offer(
        &self,
        caller: &Caller,
        acceptance: Acceptance,
    ) -> Result<pb::AcceptOfferResponse, Error> {
        let scope = caller.scope()?;
        let now = self.clock.now();
        let replayed = self.replayed(acceptance.key.as_ref()).await?;
        let fresh = replayed.is_none();
        let booking = if let Some(booking) = replayed {
            booking
        } else {
            let offer = {
                let mut conn = self.db.read().await?;
                store::waitlist::offer(&mut conn, &scope, &acceptance.id, Lock::Read)
                    .await?
                    .ok_or_else(|| Error::not_found("offer", &acceptance.id))?
            };
            check_open(&offer, now)?;
            let new = NewBooking {
                key: acceptance.key,
                from: BookingSource::Hold(offer.hold_id.clone()),
            };
            match self.create_booking(caller, new).await {
                Ok(booking) => booking,
                Err(error) if error.reason() == Some("HOLD_EXPIRED") => {
                    return Err(offer_expired());
                }
                Err(error) => return Err(error),
            }
        };
        let (tenant_id, offer) = self
            .load_offer(&scope, &acceptance.id)
            .await?
            .ok_or_else(|| Error::not_found("offer", &acceptance.id))?;
        if fresh {
            tracing::info!(offer_id = %offer.id, booking_id = %booking.id, "waitlist offer accepted");
            self.publish_offer(&tenant_id, &offer);
        }
        Ok(pb::AcceptOfferResponse {
            booking: Some(booking),
            offer: Some(offer),
        })
    }

    /// Declines an open offer: its slot is freed and passed to the next
    /// entry waiting for it (the client's entry keeps waiting for other
    /// slots).
    pub(crate) async fn decline_offer(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::WaitlistOffer, Error> {
        let scope = caller.scope()?;
        let now = self.clock.now();
        let now_us = to_micros(now);
        let mut tx = self.db.begin().await?;
        let offer = store::waitlist::offer(&mut tx, &scope, id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| Error::not_found("offer", id))?;
        check_open(&offer, now)?;
        store::waitlist::close_offer(&mut tx, id, OfferStatus::Declined, now_us).await?;
        self.withdraw_hold(&mut tx, &offer, now_us).await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(offer_id = %id, "waitlist offer declined");
        let (tenant_id, offer) = self
            .load_offer(&scope, id)
            .await?
            .ok_or_else(|| Error::not_found("offer", id))?;
        self.publish_offer(&tenant_id, &offer);
        Ok(offer)
    }

    /// Frees the slot an offer's hold keeps and passes it on.
    pub(crate) async fn withdraw_hold(
        &self,
        tx: &mut Tx,
        offer: &Offer,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        store::allocations::release(tx, &offer.hold_id).await?;
        let place = (offer.tenant_id.as_str(), offer.location_id.as_str());
        record_freed(tx, place, (offer.start, offer.end), now).await
    }

    /// Frees the holds and offers whose time ran out and passes their slots
    /// on; returns how many it closed. Runs every few seconds (by the
    /// injected clock); tests call it.
    pub async fn sweep_offers(&self) -> Result<usize, Error> {
        let now = to_micros(self.clock.now());
        let lapsed = {
            let mut conn = self.db.read().await?;
            store::waitlist::lapsed(&mut conn, now, BATCH).await?
        };
        let mut closed = Vec::new();
        let mut freed = 0;
        for hold in lapsed {
            let mut tx = self.db.begin().await?;
            if store::waitlist::drop_lapsed_allocations(&mut tx, &hold.hold_id, now).await? == 0 {
                // Another replica or an allocation in the way freed it.
                continue;
            }
            if let Some(offer) = store::waitlist::offer_of_hold(&mut tx, &hold.hold_id).await?
                && store::waitlist::close_offer(&mut tx, &offer.id, OfferStatus::Expired, now)
                    .await?
            {
                closed.push(offer.id);
            }
            let place = (hold.tenant_id.as_str(), hold.location_id.as_str());
            record_freed(&mut tx, place, (hold.start, hold.end), now).await?;
            tx.commit().await?;
            freed += 1;
        }
        // Offers whose slot went otherwise (taken once it lapsed).
        let stale = {
            let mut conn = self.db.read().await?;
            store::waitlist::stale_offers(&mut conn, now, BATCH).await?
        };
        for offer in stale {
            let mut tx = self.db.begin().await?;
            if lapse(&mut tx, &offer, now).await? {
                closed.push(offer.id);
            }
            tx.commit().await?;
        }
        if freed > 0 || !closed.is_empty() {
            self.outbox.wake();
        }
        for id in &closed {
            tracing::info!(offer_id = %id, "waitlist offer expired");
            self.publish_offer_id(id).await;
        }
        Ok(freed.max(closed.len()))
    }

    /// Sweeps lapsed holds and offers every `every`, until `shutdown`.
    pub(crate) fn spawn_offer_sweeper(self: &Arc<Self>, every: Duration, shutdown: Shutdown) {
        spawn_every(every, shutdown, Arc::clone(self), |this| async move {
            if let Err(error) = this.sweep_offers().await {
                tracing::warn!(error = %error, "offer sweep failed");
            }
        });
    }
}

/// Refuses an offer that no longer holds its slot: `OFFER_EXPIRED` once its
/// time ran out, an illegal transition once it was closed otherwise.
fn check_open(offer: &Offer, now: Timestamp) -> Result<(), Error> {
    use crate::wire::Named as _;
    match offer.status {
        OfferStatus::Open if offer.is_open(now) => Ok(()),
        OfferStatus::Open | OfferStatus::Expired => Err(offer_expired()),
        other => Err(Error::illegal_transition(
            "the offer",
            other.as_str(),
            "accepted or declined",
        )),
    }
}

fn offer_expired() -> Error {
    Error::precondition(
        reason::OFFER_EXPIRED,
        "the offer has expired and its slot passed on",
    )
}

/// The matcher: takes "slot freed" events off booking's outbox.
pub(crate) struct Matcher(pub(crate) Weak<Bookings>);

impl Consumer for Matcher {
    fn name(&self) -> &'static str {
        "booking.waitlist"
    }

    fn wants(&self, topic: &str) -> bool {
        topic == SLOT_FREED_TOPIC
    }

    fn consume<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(this) = self.0.upgrade() else {
                return Ok(());
            };
            let Ok(freed) =
                <pb::SearchAvailabilityRequest as prost::Message>::decode(event.payload.as_slice())
            else {
                tracing::warn!(event_id = %event.id, "unreadable slot-freed event dropped");
                return Ok(());
            };
            let window = freed
                .start_time
                .as_ref()
                .and_then(|t| from_proto(t).ok())
                .zip(freed.end_time.as_ref().and_then(|t| from_proto(t).ok()));
            let Some(window) = window else {
                tracing::warn!(event_id = %event.id, "slot-freed event without a window dropped");
                return Ok(());
            };
            match this
                .match_freed(&event.tenant_id, &freed.location_id, window)
                .await
            {
                Ok(offered) => {
                    tracing::debug!(event_id = %event.id, offered, "freed slots matched");
                    Ok(())
                }
                // A refusal (the location went, say) will not change on a
                // retry, which would hold up every event behind this one.
                Err(error) if is_final(&error) => {
                    tracing::warn!(event_id = %event.id, error = %error, "freed slot not matched; dropped");
                    Ok(())
                }
                Err(error) => Err(error),
            }
        })
    }
}
