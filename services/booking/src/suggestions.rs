//! Slot suggestions (`SuggestSlots`): "I ran 30 km this morning, when
//! should I come in?". The calendar and the rules joined:
//!
//! 1. the places (one location, or every location of the tenant with
//!    resources) and the treatments (one, or every bookable one of the
//!    modality);
//! 2. per place, one read of its resources and what occupies them, and
//!    per treatment one search of open slots: the search
//!    `SearchAvailability` runs (`Openings`), with the treatment's policy;
//! 3. one call to protocols (`Clients::evaluate_many`) judges every
//!    candidate with the client's facts read once, and names the activity
//!    followed and the studio's cryo window;
//! 4. the pure ranking (`recovery_rules::rank`): refused slots never, slots
//!    without a timing warning first, earliest first, then the
//!    alternatives; at most `max`. When the rules refuse every slot the
//!    refusal is the answer.
//!
//! Nothing is written. Work is bounded: at most `MAX_PLACES` places and
//! `MAX_TREATMENTS` treatments, a range of at most 7 days, and at most
//! `recovery_peers::MAX_BATCH` candidates (the earliest) judged.

use jiff::Timestamp;
use recovery_kit::auth::BoxFuture;
use recovery_kit::wire::{duration_to_wire, timestamp};
use recovery_kit::{Caller, Error, Role, Scope};
use recovery_peers::{Batch, Finding, MAX_BATCH, Session, SlotQuery, Slots, SuggestedSlot};
use recovery_proto::booking::v1 as pb;
use recovery_rules::{Fit, Modality, Reason};

use crate::Bookings;
use crate::availability::{Openings, Place};
use crate::store::{self, Treatment};
use crate::vetting::{about_client, refused};
use crate::wire::{self, Named, Offer, SuggestQuery};

/// The most locations one call searches.
const MAX_PLACES: i64 = 20;
/// The most treatments of one modality one call searches.
const MAX_TREATMENTS: usize = 20;

/// An open slot before the rules judged it.
struct Open {
    place: usize,
    treatment: usize,
    start: Timestamp,
    end: Timestamp,
}

impl Bookings {
    /// `SuggestSlots`.
    pub(crate) async fn suggest_slots(
        &self,
        caller: &Caller,
        query: SuggestQuery,
    ) -> Result<pb::SuggestSlotsResponse, Error> {
        let now = self.clock.now();
        let places = self.places(caller, query.location_id.as_deref()).await?;
        let Some(first) = places.first() else {
            return Ok(pb::SuggestSlotsResponse::default());
        };
        let tenant_id = first.location.tenant_id.clone();
        let treatments = self
            .offered(caller, &first.scope(), first, &query.offer)
            .await?;
        let start = query.start.unwrap_or(now).max(now);
        let (opens, openings, last) = self
            .open_candidates(&places, &treatments, (start, query.end), now)
            .await?;
        if opens.is_empty() {
            // Still the client's standing: a desk must hear of an unknown
            // or erased client even on a full day.
            self.check_standing(&tenant_id, &query.client_id).await?;
            return Ok(pb::SuggestSlotsResponse::default());
        }
        let batch = Batch {
            client_id: query.client_id.clone(),
            sessions: opens
                .iter()
                .map(|o| {
                    let treatment = &treatments[o.treatment];
                    Session {
                        modality: treatment.modality,
                        start: o.start,
                        duration: treatment.terms.duration,
                        location_id: places[o.place].location.id.clone(),
                    }
                })
                .collect(),
            booked: self
                .booked_between(&tenant_id, &query.client_id, (start, last))
                .await?,
            follows: query.follows.clone(),
        };
        // The rules refuse an unknown or erased client themselves.
        let judged = self
            .peers
            .clients
            .evaluate_many(&tenant_id, &batch)
            .await
            .map_err(|e| about_client(e, &query.client_id))?;
        let after = judged.activity.map(|(_, end)| end);
        let candidates: Vec<recovery_rules::Candidate> = opens
            .iter()
            .zip(&judged.verdicts)
            .map(|(o, verdict)| recovery_rules::Candidate {
                start: o.start,
                fit: (verdict.refusals.is_empty() && after.is_none_or(|end| o.start >= end))
                    .then(|| Fit::of(reasons(&verdict.warnings))),
                place: o.place,
            })
            .collect();
        let ranked = recovery_rules::rank(&candidates, query.max);
        if ranked.is_empty()
            && let Some(refusal) = judged.verdicts.iter().find_map(|v| v.refusals.first())
        {
            tracing::info!(reason = %refusal.reason, "the rules refused every suggested slot");
            return Err(refused(refusal, &query.client_id));
        }
        let suggestions = ranked
            .into_iter()
            .filter_map(|i| {
                let (o, verdict) = (opens.get(i)?, judged.verdicts.get(i)?);
                let (place, treatment) = (&places[o.place], &treatments[o.treatment]);
                let found = openings.get(o.place)?.as_ref()?;
                Some(suggestion(
                    place,
                    treatment,
                    found,
                    o,
                    verdict,
                    candidates.get(i)?.fit?,
                ))
            })
            .collect();
        let cryo = treatments
            .iter()
            .any(|t| t.modality == Modality::WholeBodyCryotherapy);
        let window = judged.activity.filter(|_| cryo).map(|(_, end)| {
            let until = end.saturating_add(judged.cryo_window).unwrap_or(end);
            (end, until)
        });
        Ok(pb::SuggestSlotsResponse {
            suggestions,
            window_start_time: window.and_then(|w| timestamp(w.0)),
            window_end_time: window.and_then(|w| timestamp(w.1)),
        })
    }

    /// Every open slot of every treatment at every place from `start` to
    /// `end` (default: the end of the place's local day), earliest first,
    /// at most `MAX_BATCH`; each place's calendar read once (`None` when
    /// nothing was searched there); and the last instant searched.
    async fn open_candidates(
        &self,
        places: &[Place],
        treatments: &[Treatment],
        (start, end): (Timestamp, Option<Timestamp>),
        now: Timestamp,
    ) -> Result<(Vec<Open>, Vec<Option<Openings>>, Timestamp), Error> {
        let mut opens = Vec::new();
        let mut openings = Vec::with_capacity(places.len());
        let mut last = start;
        for (p, place) in places.iter().enumerate() {
            let end = match end {
                Some(end) => end,
                None => end_of_day(place, start)?,
            };
            last = last.max(end);
            let Some(any) = treatments.first().filter(|_| end > start) else {
                openings.push(None);
                continue;
            };
            let found = self.openings(place, any, (start, end), now).await?;
            for (t, treatment) in treatments.iter().enumerate() {
                for slot in found.slots(place, treatment, (start, end), None, now)? {
                    opens.push(Open {
                        place: p,
                        treatment: t,
                        start: slot.start,
                        end: slot.end,
                    });
                }
            }
            openings.push(Some(found));
        }
        opens.sort_by_key(|o| (o.start, o.place, o.treatment));
        opens.truncate(MAX_BATCH);
        Ok((opens, openings, last))
    }

    /// The location asked for, or every location of the caller's tenant
    /// that has resources.
    async fn places(
        &self,
        caller: &Caller,
        location_id: Option<&str>,
    ) -> Result<Vec<Place>, Error> {
        if let Some(id) = location_id {
            return Ok(vec![self.place(caller, id).await?]);
        }
        let scope = caller.scope()?;
        if scope == Scope::All {
            return Err(Error::invalid(
                "location_id",
                "required for a key of no tenant: name the location",
            ));
        }
        let ids = {
            let mut conn = self.db.read().await?;
            store::resources::locations(&mut conn, &scope, MAX_PLACES).await?
        };
        let mut places = Vec::with_capacity(ids.len());
        for id in ids {
            places.push(self.place(caller, &id).await?);
        }
        Ok(places)
    }

    /// The treatment asked for, or the tenant's bookable treatments of the
    /// modality (at most `MAX_TREATMENTS`, oldest first).
    async fn offered(
        &self,
        caller: &Caller,
        scope: &Scope,
        place: &Place,
        offer: &Offer,
    ) -> Result<Vec<Treatment>, Error> {
        let mut conn = self.db.read().await?;
        match offer {
            Offer::Treatment(id) => Ok(vec![self.bookable(&mut conn, caller, place, id).await?]),
            Offer::Modality(modality) => {
                let all = store::treatments::list(&mut conn, scope, None, false, 500).await?;
                Ok(all
                    .into_iter()
                    .filter(|t| t.modality == *modality)
                    .take(MAX_TREATMENTS)
                    .collect())
            }
        }
    }
}

/// Where the local day of `at` ends at `place`.
fn end_of_day(place: &Place, at: Timestamp) -> Result<Timestamp, Error> {
    let day = place.tz.to_datetime(at).date();
    let (_, end) = wire::day_bounds(day, &place.tz).map_err(Error::Internal)?;
    Ok(end)
}

/// The rules' reasons among `findings` (unknown codes are no reason).
fn reasons(findings: &[Finding]) -> impl Iterator<Item = Reason> + '_ {
    findings.iter().filter_map(|f| Reason::from_code(&f.reason))
}

fn suggestion(
    place: &Place,
    treatment: &Treatment,
    found: &Openings,
    open: &Open,
    verdict: &recovery_peers::Verdict,
    fit: Fit,
) -> pb::Suggestion {
    let picked = found.pick(place, treatment, open.start);
    let resources = crate::wire::by_kind(picked.iter().map(|a| {
        let kind = crate::resources::ResourceKind::parse(a.kind).map_or(0, Named::wire);
        (kind, a.resource_id.to_owned())
    }));
    pb::Suggestion {
        treatment_id: treatment.id.clone(),
        modality: treatment.modality.wire(),
        start_time: timestamp(open.start),
        end_time: timestamp(open.end),
        location_id: place.location.id.clone(),
        resources,
        devices: treatment.to_wire().device_needs,
        warnings: verdict
            .warnings
            .iter()
            .map(|f| pb::Finding {
                reason: f.reason.clone(),
                message: f.message.clone(),
            })
            .collect(),
        recommended_duration: verdict.recommended_duration.map(duration_to_wire),
        fit: match fit {
            Fit::Best => pb::SuggestionFit::Best,
            Fit::Alternative => pb::SuggestionFit::Alternative,
        } as i32,
    }
}

/// Booking as protocols' peer for recommendations: the same `SuggestSlots`,
/// acting for the tenant as the service. It asks protocols only for
/// `evaluate_many`, never for recommendations: no cycle.
impl Slots for Bookings {
    fn suggest<'a>(
        &'a self,
        tenant_id: &'a str,
        query: &'a SlotQuery,
    ) -> BoxFuture<'a, Result<Vec<SuggestedSlot>, Error>> {
        Box::pin(async move {
            if tenant_id.is_empty() {
                return Err(Error::PermissionDenied(
                    "a service must act for a tenant".to_owned(),
                ));
            }
            let caller = Caller {
                tenant_id: Some(tenant_id.to_owned()),
                role: Role::Service,
                key_id: "recoveryd".to_owned(),
            };
            let mut request = recovery_peers::slot_request(query);
            // A step's window may be longer than one search: its first week.
            let (from, to) = query.window;
            let cap = from.saturating_add(wire::MAX_SUGGEST_RANGE).unwrap_or(from);
            request.end_time = Some(recovery_kit::time::to_proto(to.min(cap)));
            let parsed = SuggestQuery::parse(&request)?;
            let answer = self.suggest_slots(&caller, parsed).await?;
            Ok(answer
                .suggestions
                .into_iter()
                .filter_map(recovery_peers::suggested_slot)
                .collect())
        })
    }
}
