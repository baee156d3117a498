//! The waitlist: a client waiting for a slot of a treatment at a location
//! in a window. Join, get, list and leave; offers are in `offers.rs`.

use jiff::Timestamp;
use recovery_kit::idempotency;
use recovery_kit::ids::new_id;
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error, Lock, Scope};
use recovery_proto::booking::v1 as pb;
use sqlx::AnyConnection;

use crate::availability::treatment_archived;
use crate::offers::record_freed;
use crate::store::waitlist::{Entry, EntryFilter, EntryState, EntryStatus, OfferStatus};
use crate::store::{self};
use crate::vetting::Candidate;
use crate::wire::{EntriesQuery, NewEntry};
use crate::{Bookings, IDEMPOTENCY_TABLE};

/// An entry in wire form with its open offer.
async fn with_offer(
    conn: &mut AnyConnection,
    entry: &Entry,
    now: Timestamp,
) -> Result<pb::WaitlistEntry, sqlx::Error> {
    let offer = match store::waitlist::open_offer_of_entry(conn, &entry.id).await? {
        Some(offer) => {
            let held = store::allocations::held(conn, &offer.hold_id).await?;
            Some(offer.to_wire(&held, now))
        }
        None => None,
    };
    Ok(entry.to_wire(offer, now))
}

impl Bookings {
    /// Puts a client on the waitlist. The rules run first as for a booking
    /// at the window's start (a refusal writes nothing); a client already
    /// waiting for the location and treatment in an overlapping window gets
    /// that entry back.
    pub(crate) async fn join_waitlist(
        &self,
        caller: &Caller,
        new: NewEntry,
    ) -> Result<pb::WaitlistEntry, Error> {
        let now = self.clock.now();
        let place = self.place(caller, &new.location_id).await?;
        let scope = caller.scope()?;
        let treatment = {
            let mut conn = self.db.read().await?;
            let treatment = self
                .bookable(&mut conn, caller, &place, &new.treatment_id)
                .await?;
            if let Some(resource_id) = &new.preference {
                let resource =
                    store::resources::get(&mut conn, &scope, resource_id, now, Lock::Read).await?;
                if resource.is_none_or(|r| r.location_id != place.location.id) {
                    return Err(Error::invalid(
                        "resource_id",
                        "not a resource of this location",
                    ));
                }
            }
            treatment
        };
        if treatment.archive_time.is_some() {
            return Err(treatment_archived());
        }
        self.vet(&Candidate {
            tenant_id: &place.location.tenant_id,
            client_id: &new.client_id,
            treatment: &treatment,
            location_id: &place.location.id,
            start: new.from.max(now),
            moving: None,
        })
        .await?;
        let now_us = to_micros(now);
        let entry = Entry {
            id: new_id(),
            tenant_id: place.location.tenant_id.clone(),
            location_id: place.location.id.clone(),
            treatment_id: treatment.id.clone(),
            client_id: new.client_id.clone(),
            resource_id: new.preference.clone(),
            from: to_micros(new.from),
            to: to_micros(new.to),
            status: EntryStatus::Waiting,
            booking_id: None,
            create_time: now_us,
            update_time: now_us,
        };
        let input = (&entry, caller.key_id.as_str(), now);
        let (joined, fresh) = idempotency::create(
            &self.db,
            IDEMPOTENCY_TABLE,
            new.key.as_ref(),
            now_us,
            &input,
            |tx, (entry, key_id, now)| {
                Box::pin(async move {
                    // One client's joins one at a time (PostgreSQL; SQLite
                    // has one writer), so duplicates stay one entry.
                    store::bookings::lock_client(tx, &entry.tenant_id, &entry.client_id).await?;
                    let now_us = to_micros(*now);
                    if let Some(existing) = store::waitlist::overlapping(tx, entry, now_us).await? {
                        return Ok(with_offer(tx, &existing, *now).await?);
                    }
                    store::waitlist::insert_entry(tx, entry, key_id).await?;
                    // A slot free in the window now (one freed a moment
                    // before the join) is offered as a freed one would be.
                    let place = (entry.tenant_id.as_str(), entry.location_id.as_str());
                    record_freed(tx, place, (entry.from, entry.to), now_us).await?;
                    Ok(entry.to_wire(None, *now))
                })
            },
        )
        .await?;
        if fresh && joined.id == entry.id {
            self.outbox.wake();
            tracing::info!(entry_id = %joined.id, "client joined the waitlist");
        }
        Ok(joined)
    }

    pub(crate) async fn get_waitlist_entry(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::WaitlistEntry, Error> {
        let mut conn = self.db.read().await?;
        let entry = store::waitlist::entry(&mut conn, &caller.scope()?, id, Lock::Read)
            .await?
            .ok_or_else(|| Error::not_found("waitlist entry", id))?;
        Ok(with_offer(&mut conn, &entry, self.clock.now()).await?)
    }

    pub(crate) async fn list_waitlist_entries(
        &self,
        caller: &Caller,
        query: EntriesQuery,
    ) -> Result<pb::ListWaitlistEntriesResponse, Error> {
        let scope = caller.scope()?;
        let place = self.place(caller, &query.location_id).await?;
        let now = self.clock.now();
        let page = query.page;
        let filter = EntryFilter {
            location_id: &place.location.id,
            client_id: query.client_id.as_deref(),
            state: query.state,
        };
        let mut conn = self.db.read().await?;
        let mut rows = store::waitlist::entries(
            &mut conn,
            &scope,
            &filter,
            to_micros(now),
            page.after.as_deref(),
            page.fetch(),
        )
        .await?;
        let next_page_token = page.finish(&mut rows, |e| &e.id);
        let mut entries = Vec::with_capacity(rows.len());
        for entry in &rows {
            entries.push(with_offer(&mut conn, entry, now).await?);
        }
        Ok(pb::ListWaitlistEntriesResponse {
            entries,
            next_page_token,
        })
    }

    /// Takes an entry off the waitlist; its open offer is withdrawn and the
    /// slot passed on.
    pub(crate) async fn leave_waitlist(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::WaitlistEntry, Error> {
        use crate::wire::Named as _;
        let scope = caller.scope()?;
        let now = self.clock.now();
        let now_us = to_micros(now);
        let mut tx = self.db.begin().await?;
        let entry = store::waitlist::entry(&mut tx, &scope, id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| Error::not_found("waitlist entry", id))?;
        match entry.state(now) {
            EntryState::Waiting => {}
            EntryState::Expired => {
                return Err(Error::illegal_transition("the entry", "expired", "left"));
            }
            EntryState::Booked | EntryState::Left => {
                return Err(Error::illegal_transition(
                    "the entry",
                    entry.status.as_str(),
                    "left",
                ));
            }
        }
        store::waitlist::set_entry_status(&mut tx, id, EntryStatus::Left, None, now_us).await?;
        let open = store::waitlist::open_offer_of_entry(&mut tx, id).await?;
        let mut withdrawn = None;
        if let Some(offer) = open
            && store::waitlist::close_offer(&mut tx, &offer.id, OfferStatus::Withdrawn, now_us)
                .await?
        {
            self.withdraw_hold(&mut tx, &offer, now_us).await?;
            withdrawn = Some(offer.id);
        }
        let left = store::waitlist::entry(&mut tx, &Scope::All, id, Lock::Read)
            .await?
            .ok_or_else(|| Error::not_found("waitlist entry", id))?;
        let answer = with_offer(&mut tx, &left, now).await?;
        tx.commit().await?;
        tracing::info!(entry_id = %id, "client left the waitlist");
        if let Some(offer_id) = withdrawn {
            self.outbox.wake();
            if let Some((tenant_id, offer)) = self.load_offer(&Scope::All, &offer_id).await? {
                self.publish_offer(&tenant_id, &offer);
            }
        }
        Ok(answer)
    }
}
