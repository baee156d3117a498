//! Holds: a slot kept for a client for a few minutes while they decide.

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use recovery_kit::Scope;
use recovery_kit::db::{MAX_ATTEMPTS, retry};
use recovery_kit::ids::new_id;
use recovery_kit::server::{Shutdown, spawn_every};
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error};
use recovery_proto::booking::v1 as pb;

use crate::Bookings;
use crate::availability::{Occupancy, check_policy};
use crate::store::{self, Hold};
use crate::vetting::Candidate;
use crate::wire::NewHold;

/// How often expired holds are pruned.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// How long an expired hold that was never booked is kept, so that booking
/// it answers `HOLD_EXPIRED` rather than `NOT_FOUND`: a day, as long as
/// the `request_id` that made it is remembered.
const KEEP_EXPIRED: SignedDuration = SignedDuration::from_hours(24);

/// How long a lapsed hold's allocations are left to the offer sweep (every
/// few seconds), which frees them and hands their slot to the waitlist:
/// the pruner only clears what that sweep left behind, so it never frees a
/// slot the waitlist did not hear of.
const LEAVE_TO_SWEEP: SignedDuration = SignedDuration::from_mins(10);

impl Bookings {
    /// Prunes expired holds of every tenant: their allocations ten minutes
    /// after they lapsed (the offer sweep frees them first, telling the
    /// waitlist), the holds themselves a day after they expired (by the
    /// injected clock). Returns the rows deleted. Runs every few minutes; tests call
    /// it.
    pub async fn prune_holds(&self) -> Result<u64, Error> {
        let now = self.clock.now();
        let forget_before = now.saturating_sub(KEEP_EXPIRED).unwrap_or(now);
        let lapsed_before = now.saturating_sub(LEAVE_TO_SWEEP).unwrap_or(now);
        let mut tx = self.db.begin().await?;
        let pruned = store::allocations::prune_expired_holds(
            &mut tx,
            &Scope::All,
            to_micros(lapsed_before),
            to_micros(forget_before),
        )
        .await?;
        tx.commit().await?;
        Ok(pruned)
    }

    /// Prunes expired holds every `every`, until `shutdown`.
    pub(crate) fn spawn_hold_pruner(self: &Arc<Self>, every: Duration, shutdown: Shutdown) {
        spawn_every(every, shutdown, Arc::clone(self), |this| async move {
            match this.prune_holds().await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "expired holds pruned"),
                Err(error) => tracing::warn!(error = %error, "pruning holds failed"),
            }
        });
    }

    pub(crate) async fn hold_slot(&self, caller: &Caller, new: NewHold) -> Result<pb::Hold, Error> {
        let place = self.place(caller, &new.location_id).await?;
        let slot = &new.slot;
        let treatment = {
            let mut conn = self.db.read().await?;
            self.bookable(&mut conn, caller, &place, &slot.treatment_id)
                .await?
        };
        check_policy(&treatment, slot.start, self.clock.now(), true)?;
        let vetted = self
            .vet(&Candidate {
                tenant_id: &place.location.tenant_id,
                client_id: &slot.client_id,
                treatment: &treatment,
                location_id: &place.location.id,
                start: slot.start,
                moving: None,
            })
            .await?;
        let (new, place, vetted) = (&new, &place, &vetted);
        let (hold, details) = retry(MAX_ATTEMPTS, move || async move {
            let lane = self.gates.lane(&place.location.id).await;
            let now = self.clock.now();
            let mut tx = self.db.begin().await?;
            let turn = lane.enter().await;
            let treatment = self
                .bookable(&mut tx, caller, place, &slot.treatment_id)
                .await?;
            check_policy(&treatment, slot.start, now, true)?;
            let expire = now.saturating_add(new.ttl).unwrap_or(now);
            let end = slot
                .start
                .saturating_add(treatment.terms.duration)
                .unwrap_or(slot.start);
            let hold = Hold {
                id: new_id(),
                tenant_id: place.location.tenant_id.clone(),
                location_id: place.location.id.clone(),
                treatment_id: treatment.id.clone(),
                client_id: slot.client_id.clone(),
                start: to_micros(slot.start),
                end: to_micros(end),
                expire: to_micros(expire),
                booking_id: None,
                recommended_s: vetted.recommended_s,
            };
            store::allocations::insert_hold(&mut tx, &hold, now, &caller.key_id).await?;
            let session = Occupancy {
                start: slot.start,
                preference: slot.preference.as_deref(),
                owner_id: &hold.id,
                expire: Some(expire),
                answer: None,
            };
            let taken = self
                .occupy(&mut tx, place, &treatment, &session, now)
                .await?;
            // As a booking's: a change pending in the kept calendars needs
            // the turn no more, and what follows writes and reads the
            // hold's own rows only (`gates`).
            let _turn = (!taken.placed.pending()).then_some(turn);
            store::workflow::set_findings(&mut tx, &hold.id, &hold.tenant_id, &vetted.warnings)
                .await?;
            let details = store::details(&mut tx, &hold.id).await?;
            tx.commit().await?;
            self.calendars.advance(taken.placed);
            Ok((hold, details))
        })
        .await?;
        tracing::info!(hold_id = %hold.id, "slot held");
        Ok(hold.to_wire(&details))
    }
}
