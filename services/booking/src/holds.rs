//! Holds: a slot kept for a client for a few minutes while they decide.

use recovery_kit::db::{MAX_ATTEMPTS, retry};
use recovery_kit::ids::new_id;
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error};
use recovery_proto::booking::v1 as pb;

use crate::Bookings;
use crate::availability::{Occupancy, check_policy};
use crate::store::{self, Hold};
use crate::vetting::Candidate;
use crate::wire::NewHold;

impl Bookings {
    pub(crate) async fn hold_slot(&self, caller: &Caller, new: NewHold) -> Result<pb::Hold, Error> {
        let place = self.place(caller, &new.location_id).await?;
        let slot = &new.slot;
        let treatment = {
            let mut conn = self.db.reader().acquire().await?;
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
            let _turn = self.gates.enter(&place.location.id).await;
            let now = self.clock.now();
            let mut tx = self.db.begin().await?;
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
            };
            self.occupy(&mut tx, place, &treatment, &session, now)
                .await?;
            store::workflow::set_findings(&mut tx, &hold.id, &hold.tenant_id, &vetted.warnings)
                .await?;
            let details = store::details(&mut tx, &hold.id).await?;
            tx.commit().await?;
            Ok((hold, details))
        })
        .await?;
        tracing::info!(hold_id = %hold.id, "slot held");
        Ok(hold.to_wire(&details))
    }
}
