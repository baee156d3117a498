//! Protocols: templates of steps (a session or a habit, in a window around
//! an anchor), assigned to a client on an activity or an instant, and the
//! recommendations they yield: what to do next and when, each session step
//! evaluated by the rules with the tenant's thresholds.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use recovery_kit::ids::new_id;
use recovery_kit::time::to_micros;
use recovery_kit::wire::{stored_timestamp, timestamp};
use recovery_kit::{Caller, Error, Lock, Scope};
use recovery_proto::protocols::v1 as pb;
use recovery_rules::{ClientFacts, Modality};

use crate::audit::Action;
use crate::store::history::Span;
use crate::store::plans::{Assigned, NewAssignmentRow};
use crate::wire::plans::{Anchor, NewAssignment, NewTemplate, RecommendationsQuery, offsets};
use crate::wire::rules::evaluation_to_wire;
use crate::wire::session_duration;
use crate::{Listed, Protocols, clients, rules, store};

impl Protocols {
    /// `CreateProtocolTemplate`: once per `request_id`.
    pub(crate) async fn add_template(
        &self,
        caller: &Caller,
        scope: &Scope,
        new: NewTemplate,
    ) -> Result<pb::ProtocolTemplate, Error> {
        let change = self.change(caller, scope);
        let key = new.key.as_ref();
        let (template, fresh) = self
            .create_once(change, key, &new.template, |tx, (change, template)| {
                Box::pin(async move {
                    let id = new_id();
                    store::plans::insert_template(tx, change, &id, template).await?;
                    Ok(pb::ProtocolTemplate {
                        id,
                        create_time: timestamp(change.now),
                        created_by: change.actor.to_owned(),
                        ..(*template).clone()
                    })
                })
            })
            .await?;
        if fresh {
            tracing::info!(template_id = %template.id, "protocol template created");
        }
        Ok(template)
    }

    /// `ListProtocolTemplates`: by id.
    pub(crate) async fn templates(
        &self,
        scope: &Scope,
        page: recovery_kit::page::Page,
    ) -> Result<Listed<pb::ProtocolTemplate>, Error> {
        let mut conn = store::reader(&self.db).await?;
        let mut templates = store::plans::templates(&mut conn, scope, &page).await?;
        let next_page_token = page.finish(&mut templates, |t| &t.id);
        Ok(Listed {
            items: templates,
            next_page_token,
        })
    }

    /// `AssignProtocol`: once per `request_id`, a template of the tenant to
    /// a client not erased, anchored on one of the client's activities or
    /// on an instant.
    pub(crate) async fn assign(
        &self,
        caller: &Caller,
        scope: &Scope,
        new: NewAssignment,
    ) -> Result<pb::ProtocolAssignment, Error> {
        let change = self.change(caller, scope);
        let key = new.key.as_ref();
        let (assignment, fresh) = self
            .create_once(change, key, &new, |tx, (change, new)| {
                Box::pin(async move {
                    let scope = change.scope;
                    let (client_id, template_id) =
                        (new.client_id.as_str(), new.template_id.as_str());
                    clients::live(tx, scope, client_id, Lock::ForUpdate).await?;
                    if !store::plans::template_exists(tx, scope, template_id).await? {
                        return Err(Error::not_found("protocol template", template_id));
                    }
                    let (anchor, anchor_activity_id) = match &new.anchor {
                        Anchor::Time(t) => (Span { start: *t, end: *t }, None),
                        Anchor::Activity(id) => {
                            let span = store::history::activity_span(tx, scope, client_id, id)
                                .await?
                                .ok_or_else(|| Error::not_found("activity of client", id))?;
                            (span, Some(id.as_str()))
                        }
                    };
                    let id = new_id();
                    let row = NewAssignmentRow {
                        id: &id,
                        client_id,
                        template_id,
                        anchor_activity_id,
                        anchor,
                    };
                    store::plans::insert_assignment(tx, change, &row).await?;
                    let detail = format!("template {template_id}");
                    change
                        .audit(tx, Some(client_id), Action::ProtocolAssigned, detail)
                        .await?;
                    Ok(pb::ProtocolAssignment {
                        id,
                        client_id: client_id.to_owned(),
                        template_id: template_id.to_owned(),
                        anchor_activity_id: anchor_activity_id.unwrap_or_default().to_owned(),
                        anchor_time: anchor_activity_id
                            .is_none()
                            .then(|| stored_timestamp(to_micros(anchor.start)))
                            .flatten(),
                        assign_time: timestamp(change.now),
                        assigned_by: change.actor.to_owned(),
                    })
                })
            })
            .await?;
        if fresh {
            tracing::info!(client_id = %new.client_id, assignment_id = %assignment.id, "protocol assigned");
        }
        Ok(assignment)
    }

    /// `GetRecommendations`: the steps of the client's assignments whose
    /// windows (in the location's days) have not passed and that the
    /// client has not done yet, by window start; each session step with its
    /// evaluation at the earliest start from now.
    pub(crate) async fn recommendations(
        &self,
        caller: &Caller,
        scope: &Scope,
        query: RecommendationsQuery,
    ) -> Result<Vec<pb::Recommendation>, Error> {
        let tz = self.time_zone(caller, &query.location_id).await?;
        let mut conn = store::reader(&self.db).await?;
        let (client, config) =
            clients::live_with_config(&mut conn, scope, &query.client_id).await?;
        let now = self.clock.now();
        let assigned = store::plans::assignments(&mut conn, scope, &client.id).await?;
        let facts = rules::facts(&mut conn, scope, &client, now).await?;
        let mut out = Vec::new();
        // Session steps the rules allow: (index in `out`, modality, window).
        let mut bookable = Vec::new();
        for assignment in &assigned {
            for (i, step) in assignment.steps.iter().enumerate() {
                let Some((from, to)) = window(step, assignment.anchor, &tz) else {
                    continue;
                };
                let modality = Modality::from_wire(step.modality);
                if to <= now || modality.is_some_and(|m| done(&facts, m, from, to)) {
                    continue;
                }
                let suggested = from.max(now);
                let duration = step
                    .session_duration
                    .as_ref()
                    .and_then(|d| session_duration(Some(d)).ok());
                let evaluation = match modality {
                    Some(m) => {
                        let later = if suggested == now {
                            None
                        } else {
                            Some(rules::facts(&mut conn, scope, &client, suggested).await?)
                        };
                        let facts = later.as_ref().unwrap_or(&facts);
                        Some(rules::evaluate_step(
                            &config, m, suggested, duration, &tz, facts,
                        ))
                    }
                    None => None,
                };
                if let Some(m) = modality
                    && evaluation
                        .as_ref()
                        .is_some_and(recovery_rules::Evaluation::is_allowed)
                {
                    bookable.push((out.len(), m, (suggested, to)));
                }
                out.push(recommendation(
                    assignment,
                    i,
                    step,
                    (from, to),
                    now,
                    evaluation.as_ref(),
                    modality.and(timestamp(suggested)),
                ));
            }
        }
        // Booking is asked with no connection held here: its answer needs
        // connections of its own (in one process, from this same pool).
        drop(conn);
        for (at, modality, window) in bookable {
            let slots = self
                .open_slots(scope, &client.id, modality, &query.location_id, window)
                .await;
            if let Some(recommended) = out.get_mut(at) {
                recommended.suggested_slots = slots;
            }
        }
        out.sort_by(|a, b| {
            let key = |r: &pb::Recommendation| {
                r.window_start_time
                    .as_ref()
                    .map(|t| (t.seconds, t.nanos))
                    .unwrap_or_default()
            };
            key(a)
                .cmp(&key(b))
                .then_with(|| a.assignment_id.cmp(&b.assignment_id))
                .then(a.step_index.cmp(&b.step_index))
        });
        Ok(out)
    }
}

/// The most open slots a recommended step carries.
const SLOTS_PER_STEP: u32 = 3;

impl Protocols {
    /// Booking's best open slots for a session step in `window`; none when
    /// booking is not known, the rules refuse or booking fails (the
    /// recommendation stands without them).
    async fn open_slots(
        &self,
        scope: &Scope,
        client_id: &str,
        modality: Modality,
        location_id: &str,
        window: (Timestamp, Timestamp),
    ) -> Vec<pb::SuggestedSlot> {
        let (Some(slots), Some(tenant_id)) = (self.slots.get(), scope.tenant()) else {
            return Vec::new();
        };
        let query = recovery_peers::SlotQuery {
            client_id: client_id.to_owned(),
            modality,
            location_id: location_id.to_owned(),
            window,
            max: SLOTS_PER_STEP,
        };
        match slots.suggest(tenant_id, &query).await {
            Ok(found) => found.into_iter().map(suggested_slot).collect(),
            Err(error) => {
                tracing::warn!(%error, "no open slots for a recommended step");
                Vec::new()
            }
        }
    }
}

fn suggested_slot(s: recovery_peers::SuggestedSlot) -> pb::SuggestedSlot {
    pb::SuggestedSlot {
        location_id: s.location_id,
        treatment_id: s.treatment_id,
        start_time: timestamp(s.start),
        end_time: timestamp(s.end),
        warnings: s
            .warnings
            .into_iter()
            .map(|f| pb::Finding {
                reason: f.reason,
                message: f.message,
            })
            .collect(),
        recommended_duration: s
            .recommended_duration
            .map(recovery_kit::wire::duration_to_wire),
    }
}

/// Whether the client had a session of `modality` in `[from, to)`.
fn done(facts: &ClientFacts, modality: Modality, from: Timestamp, to: Timestamp) -> bool {
    facts
        .history
        .iter()
        .any(|s| s.modality == modality && s.start >= from && s.start < to)
}

fn recommendation(
    assignment: &Assigned,
    index: usize,
    step: &pb::ProtocolStep,
    (from, to): (Timestamp, Timestamp),
    now: Timestamp,
    evaluation: Option<&recovery_rules::Evaluation>,
    suggested_start_time: Option<prost_types::Timestamp>,
) -> pb::Recommendation {
    pb::Recommendation {
        assignment_id: assignment.id.clone(),
        template_id: assignment.template_id.clone(),
        step_index: i32::try_from(index).unwrap_or(i32::MAX),
        step: Some(step.clone()),
        window_start_time: timestamp(from),
        window_end_time: timestamp(to),
        status: if from <= now {
            pb::RecommendationStatus::Due
        } else {
            pb::RecommendationStatus::Upcoming
        } as i32,
        evaluation: evaluation.map(evaluation_to_wire),
        suggested_start_time,
        suggested_slots: Vec::new(),
    }
}

/// The window `[start, end)` of a validated step anchored on an event
/// spanning `anchor`, with days in `tz`.
fn window(step: &pb::ProtocolStep, anchor: Span, tz: &TimeZone) -> Option<(Timestamp, Timestamp)> {
    let point = match pb::AnchorPoint::try_from(step.anchor_point) {
        Ok(pb::AnchorPoint::Start) => anchor.start,
        _ => anchor.end,
    };
    match step.timing.as_ref()? {
        pb::protocol_step::Timing::Window(w) => {
            let (from, to) = offsets(w);
            let (from, to): (SignedDuration, SignedDuration) = (from.ok()?, to.ok()?);
            Some((point.checked_add(from).ok()?, point.checked_add(to).ok()?))
        }
        pb::protocol_step::Timing::DayOffset(days) => {
            let date = tz
                .to_datetime(point)
                .date()
                // A stored offset is never trusted to be in range: `try_days`
                // instead of `days`, which panics past jiff's limits.
                .checked_add(jiff::Span::new().try_days(i64::from(*days)).ok()?)
                .ok()?;
            let midnight = |d: jiff::civil::Date| {
                tz.to_ambiguous_timestamp(jiff::civil::DateTime::from(d))
                    .compatible()
                    .ok()
            };
            Some((midnight(date)?, midnight(date.tomorrow().ok()?)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(timing: pb::protocol_step::Timing, point: pb::AnchorPoint) -> pb::ProtocolStep {
        pb::ProtocolStep {
            modality: pb::Modality::Compression as i32,
            anchor_point: point as i32,
            timing: Some(timing),
            ..Default::default()
        }
    }

    #[test]
    fn windows_follow_the_anchor_and_local_days() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let anchor = Span {
            start: "2026-03-08T12:00:00Z".parse().unwrap(),
            end: "2026-03-08T15:00:00Z".parse().unwrap(),
        };
        let five_hours = pb::protocol_step::Timing::Window(pb::OffsetWindow {
            start_offset: None,
            end_offset: Some(prost_types::Duration {
                seconds: 5 * 3600,
                nanos: 0,
            }),
        });
        let (a, b) = window(&step(five_hours, pb::AnchorPoint::End), anchor, &tz).unwrap();
        assert_eq!(
            (a, b),
            (anchor.end, "2026-03-08T20:00:00Z".parse().unwrap())
        );
        // The day before a race on the DST change day: 7 March local, 24 h.
        let day_before = pb::protocol_step::Timing::DayOffset(-1);
        let (a, b) = window(&step(day_before, pb::AnchorPoint::Start), anchor, &tz).unwrap();
        assert_eq!(a, "2026-03-07T05:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(b, "2026-03-08T05:00:00Z".parse::<Timestamp>().unwrap());
        // The race day itself is 23 hours long.
        let (a, b) = window(
            &step(
                pb::protocol_step::Timing::DayOffset(0),
                pb::AnchorPoint::Start,
            ),
            anchor,
            &tz,
        )
        .unwrap();
        assert_eq!(b.duration_since(a), SignedDuration::from_hours(23));
    }

    #[test]
    fn an_offset_of_i64_min_seconds_is_no_window() {
        let tz = TimeZone::UTC;
        let now: Timestamp = "2026-03-08T12:00:00Z".parse().unwrap();
        let broken = pb::protocol_step::Timing::Window(pb::OffsetWindow {
            start_offset: Some(prost_types::Duration {
                seconds: i64::MIN,
                nanos: 0,
            }),
            end_offset: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
        });
        let anchor = Span {
            start: now,
            end: now,
        };
        assert!(window(&step(broken, pb::AnchorPoint::End), anchor, &tz).is_none());
    }
}
