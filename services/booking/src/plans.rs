//! `BookPlan`: several sessions of one client booked at once, all or none
//! (e.g. the suggested slots of a protocol's steps).
//!
//! The same path as `CreateBooking`, once for the whole plan: a replay of
//! the `request_id` answers first; the client's standing and one call to
//! the rules for every session (a refusal names nothing written); the
//! devices of every session (the saga: any failure releases all of them);
//! then one write transaction that books each session with
//! `Bookings::book_slot`, so a session that lost its slot to a race rolls
//! the others back too. Sessions are booked by location then start, and
//! the locations' lanes and turns (`gates`) are taken in that order, so two plans
//! never wait on each other in a circle; locks stay client first, then
//! location.

use std::collections::HashMap;

use recovery_kit::db::{Attempt, MAX_ATTEMPTS, retry};
use recovery_kit::idempotency::{Once, Step};
use recovery_kit::ids::new_id;
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error, metrics};
use recovery_peers::{Batch, Follows, Reserved, Session};
use recovery_proto::booking::v1 as pb;

use crate::availability::{Place, check_policy};
use crate::bookings::Fresh;
use crate::saga::Reservation;
use crate::store::Treatment;
use crate::vetting::{Vetted, about_client, refused};
use crate::wire::NewPlan;
use crate::{Bookings, IDEMPOTENCY_TABLE};

/// One session of a plan, ready to book.
struct Item {
    place: usize,
    treatment: Treatment,
    id: String,
    vetted: Vetted,
    devices: Vec<Reserved>,
}

impl Bookings {
    /// `BookPlan`.
    pub(crate) async fn book_plan(
        &self,
        caller: &Caller,
        plan: NewPlan,
    ) -> Result<pb::BookPlanResponse, Error> {
        let now = self.clock.now();
        let now_micros = to_micros(now);
        if plan.key.is_some() {
            let mut once = Once::new(IDEMPOTENCY_TABLE, plan.key.as_ref(), now_micros);
            match once.begin::<pb::BookPlanResponse>(&self.db).await? {
                Step::Replay(stored) => return Ok(stored),
                Step::Work(tx) => tx.rollback().await?,
            }
        }
        let mut places: Vec<Place> = Vec::new();
        let mut place_of: HashMap<String, usize> = HashMap::new();
        let mut items = Vec::with_capacity(plan.sessions.len());
        for (index, session) in plan.sessions.iter().enumerate() {
            let at = |e: Error| e.with_fact("session", index.to_string());
            let p = if let Some(p) = place_of.get(&session.location_id) {
                *p
            } else {
                places.push(self.place(caller, &session.location_id).await?);
                place_of.insert(session.location_id.clone(), places.len() - 1);
                places.len() - 1
            };
            let treatment = {
                let mut conn = self.db.read().await?;
                self.bookable(&mut conn, caller, &places[p], &session.slot.treatment_id)
                    .await
                    .map_err(at)?
            };
            check_policy(&treatment, session.slot.start, now, true).map_err(at)?;
            items.push(Item {
                place: p,
                treatment,
                id: new_id(),
                vetted: Vetted::default(),
                devices: Vec::new(),
            });
        }
        let tenant_id = places
            .first()
            .map(|p| p.location.tenant_id.clone())
            .unwrap_or_default();
        if places.iter().any(|p| p.location.tenant_id != tenant_id) {
            return Err(Error::invalid("sessions", "all at locations of one tenant"));
        }
        self.judge_plan(&tenant_id, &plan, &places, &mut items)
            .await?;
        let booked = self
            .reserve_plan(&tenant_id, &plan, &places, &mut items)
            .await;
        let outcome = match booked {
            Ok(()) => {
                self.commit_plan(caller, &tenant_id, &plan, &places, &items)
                    .await
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok((answer, true)) => {
                for booking in &answer.bookings {
                    tracing::info!(booking_id = %booking.id, "booking created with a plan");
                    metrics::booking_created();
                    self.publish(booking);
                }
                Ok(answer)
            }
            Ok((answer, false)) => {
                self.release_plan(&tenant_id, &items).await;
                Ok(answer)
            }
            Err(error) => {
                if let Some(reason) = error.reason() {
                    metrics::booking_refused(reason);
                }
                self.release_plan(&tenant_id, &items).await;
                Err(error)
            }
        }
    }

    /// The rules on every session, the client's standing with them, in one call:
    /// any refusal is the answer.
    async fn judge_plan(
        &self,
        tenant_id: &str,
        plan: &NewPlan,
        places: &[Place],
        items: &mut [Item],
    ) -> Result<(), Error> {
        let starts = plan.sessions.iter().map(|s| s.slot.start);
        let first = starts.clone().min().unwrap_or_else(|| self.clock.now());
        let last = starts.max().unwrap_or(first);
        let batch = Batch {
            client_id: plan.client_id.clone(),
            sessions: plan
                .sessions
                .iter()
                .zip(items.iter())
                .map(|(s, item)| Session {
                    modality: item.treatment.modality,
                    start: s.slot.start,
                    duration: item.treatment.terms.duration,
                    location_id: places[item.place].location.id.clone(),
                })
                .collect(),
            booked: self
                .booked_between(tenant_id, &plan.client_id, (first, last))
                .await?,
            follows: Follows::Nothing,
        };
        // The rules refuse an unknown or erased client themselves.
        let judged = self
            .peers
            .clients
            .evaluate_many(tenant_id, &batch)
            .await
            .map_err(|e| about_client(e, &plan.client_id))?;
        for (index, (item, verdict)) in items.iter_mut().zip(judged.verdicts).enumerate() {
            if let Some(refusal) = verdict.refusals.first() {
                tracing::info!(reason = %refusal.reason, "the rules refused a plan's session");
                return Err(
                    refused(refusal, &plan.client_id).with_fact("session", index.to_string())
                );
            }
            item.vetted = Vetted {
                warnings: verdict.warnings,
                recommended_s: verdict.recommended_duration.map(|d| d.as_secs()),
            };
        }
        Ok(())
    }

    /// Reserves every session's devices; on a failure the caller releases
    /// what was reserved.
    async fn reserve_plan(
        &self,
        tenant_id: &str,
        plan: &NewPlan,
        places: &[Place],
        items: &mut [Item],
    ) -> Result<(), Error> {
        for (session, item) in plan.sessions.iter().zip(items.iter_mut()) {
            let needs = &item.treatment.terms.device_needs;
            if needs.is_empty() {
                continue;
            }
            let start = session.slot.start;
            let end = start
                .saturating_add(item.treatment.terms.duration)
                .unwrap_or(start);
            item.devices = self
                .reserve_devices(&Reservation {
                    tenant_id,
                    booking_id: &item.id,
                    location_id: &places[item.place].location.id,
                    window: (start, end),
                    needs,
                    round: None,
                    keep: &[],
                })
                .await?;
        }
        Ok(())
    }

    /// Releases the devices of every session that has some.
    async fn release_plan(&self, tenant_id: &str, items: &[Item]) {
        for item in items {
            if !item.treatment.terms.device_needs.is_empty() {
                self.compensate(tenant_id, &item.id, &[]).await;
            }
        }
    }

    /// Books every session in one transaction (retried as `CreateBooking`
    /// is); `true` when this call booked, `false` when it replays another
    /// call's plan.
    async fn commit_plan(
        &self,
        caller: &Caller,
        tenant_id: &str,
        plan: &NewPlan,
        places: &[Place],
        items: &[Item],
    ) -> Result<(pb::BookPlanResponse, bool), Error> {
        let now_micros = to_micros(self.clock.now());
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|a, b| {
            let key = |i: usize| {
                (
                    &places[items[i].place].location.id,
                    plan.sessions[i].slot.start,
                )
            };
            key(*a).cmp(&key(*b))
        });
        let mut locations: Vec<&str> = order
            .iter()
            .map(|i| places[items[*i].place].location.id.as_str())
            .collect();
        locations.dedup();
        let (order, locations) = (&order, &locations);
        retry(MAX_ATTEMPTS, move || async move {
            let lanes = self.gates.lanes(locations).await;
            // The client's lock (from the transaction's start) before the
            // locations' turns (`gates`), for the daily limits.
            let client_lock = items
                .iter()
                .any(|i| i.treatment.terms.max_per_day > 0)
                .then(|| crate::store::bookings::client_lock(tenant_id, &plan.client_id));
            let mut once =
                Once::new(IDEMPOTENCY_TABLE, plan.key.as_ref(), now_micros).holding(client_lock);
            let mut tx = match once.begin::<pb::BookPlanResponse>(&self.db).await? {
                Step::Replay(stored) => return Ok((stored, false)),
                Step::Work(tx) => tx,
            };
            let mut turns = Vec::with_capacity(lanes.len());
            for lane in &lanes {
                turns.push(lane.enter().await);
            }
            let now = self.clock.now();
            let mut bookings: Vec<Option<pb::Booking>> = vec![None; items.len()];
            let mut changes = Vec::with_capacity(items.len());
            for &i in order {
                let item = &items[i];
                let fresh = Fresh {
                    id: &item.id,
                    treatment: &item.treatment,
                    vetted: &item.vetted,
                    devices: &item.devices,
                    lane: None,
                    record: None,
                };
                let slotted = self
                    .book_slot(
                        &mut tx,
                        caller,
                        &places[item.place],
                        &plan.sessions[i].slot,
                        now,
                        &fresh,
                    )
                    .await
                    .map_err(|e| e.with_fact("session", i.to_string()))?;
                bookings[i] = Some(slotted.booking);
                changes.push(slotted.placed);
            }
            let answer = pb::BookPlanResponse {
                bookings: bookings.into_iter().flatten().collect(),
            };
            if once.commit(tx, &answer).await? {
                for change in changes {
                    self.calendars.advance(change);
                }
                Ok((answer, true))
            } else {
                Err(Attempt::Again(Error::Unavailable("database busy".into())))
            }
        })
        .await
    }
}
