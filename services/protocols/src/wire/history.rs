//! A client's history: activities, recovery sessions, the timeline and the
//! summary, validated on receive.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use recovery_kit::idempotency::Key;
use recovery_kit::ids::parse_id;
use recovery_kit::page::{Binding, Keyset};
use recovery_kit::wire::{instant, timestamp};
use recovery_kit::{Error, Scope, Violations};
use recovery_proto::protocols::v1 as pb;
use recovery_rules::{ActivityKind, Modality};

use super::{
    Create, free_text, modality, name, optional_id, optional_name, period, session_duration,
};

/// The longest activity.
const MAX_ACTIVITY: SignedDuration = SignedDuration::from_hours(24 * 7);

/// The activity kind a request names.
fn activity_kind(value: i32) -> Result<ActivityKind, String> {
    match pb::ActivityKind::try_from(value) {
        Ok(pb::ActivityKind::Training) => Ok(ActivityKind::Training),
        Ok(pb::ActivityKind::Race) => Ok(ActivityKind::Race),
        Ok(pb::ActivityKind::Unspecified) => {
            Err("required: ACTIVITY_KIND_TRAINING or ACTIVITY_KIND_RACE".to_owned())
        }
        Err(_) => Err(format!("unknown activity kind {value}")),
    }
}

/// Wire form of an activity kind.
pub(crate) fn activity_kind_to_wire(kind: ActivityKind) -> pb::ActivityKind {
    match kind {
        ActivityKind::Training => pb::ActivityKind::Training,
        ActivityKind::Race => pb::ActivityKind::Race,
    }
}

/// The maximum activity length.
fn activity_span(start: Timestamp, end: Timestamp) -> Result<(), String> {
    if end <= start {
        Err("must be after start_time".to_owned())
    } else if end.duration_since(start) > MAX_ACTIVITY {
        Err("at most 7 days after start_time".to_owned())
    } else {
        Ok(())
    }
}

/// A validated `LogActivity`.
pub(crate) struct NewActivity {
    pub(crate) client_id: String,
    pub(crate) kind: ActivityKind,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    /// Metres; 0 unknown.
    pub(crate) distance_meters: i32,
    /// 1 to 10; 0 unknown.
    pub(crate) perceived_effort: i32,
    pub(crate) notes: String,
    pub(crate) key: Option<Key>,
}

impl NewActivity {
    pub(crate) fn parse(req: &pb::LogActivityRequest, scope: &Scope) -> Result<Self, Error> {
        let a = req.activity.clone().unwrap_or_default();
        let mut v = Violations::new();
        let client_id = v.check("activity.client_id", parse_id(&a.client_id));
        let kind = v.check("activity.kind", activity_kind(a.kind));
        let start = v.check("activity.start_time", instant(a.start_time.as_ref()));
        let end = v.check("activity.end_time", instant(a.end_time.as_ref()));
        if let (Some(start), Some(end)) = (start, end) {
            v.check("activity.end_time", activity_span(start, end));
        }
        if !(0..=1_000_000).contains(&a.distance_meters) {
            v.add("activity.distance_meters", "must be 0 (unknown) to 1000 km");
        }
        if !(0..=10).contains(&a.perceived_effort) {
            v.add("activity.perceived_effort", "must be 1 to 10 (0: unknown)");
        }
        let notes = v.check("activity.notes", free_text(&a.notes));
        let key = req.key(scope, &mut v);
        let (client_id, (kind, (start, (end, notes)))) =
            v.finish_with(client_id.zip(kind.zip(start.zip(end.zip(notes)))))?;
        Ok(Self {
            client_id,
            kind,
            start,
            end,
            distance_meters: a.distance_meters,
            perceived_effort: a.perceived_effort,
            notes,
            key,
        })
    }

    /// The activity as logged: its `id`, at `now` by `actor`.
    pub(crate) fn to_wire(&self, id: String, now: Timestamp, actor: &str) -> pb::Activity {
        pb::Activity {
            id,
            client_id: self.client_id.clone(),
            kind: activity_kind_to_wire(self.kind) as i32,
            start_time: timestamp(self.start),
            end_time: timestamp(self.end),
            distance_meters: self.distance_meters,
            perceived_effort: self.perceived_effort,
            notes: self.notes.clone(),
            create_time: timestamp(now),
            created_by: actor.to_owned(),
        }
    }
}

/// A soreness reading, 0 to 10, or none.
fn soreness(value: Option<i32>) -> Result<Option<i64>, String> {
    match value {
        None => Ok(None),
        Some(n @ 0..=10) => Ok(Some(i64::from(n))),
        Some(n) => Err(format!("{n} is outside 0 to 10")),
    }
}

/// Validates device settings: at most 20, keys 1 to 64 characters, values
/// at most 200.
fn settings(map: &BTreeMap<String, String>, v: &mut Violations) -> BTreeMap<String, String> {
    if map.len() > 20 {
        v.add("session.device_settings", "at most 20 settings");
    }
    let mut out = BTreeMap::new();
    for (k, value) in map {
        let field = format!("session.device_settings[{k:?}]");
        match (name(k), optional_name(value)) {
            (Ok(key), Ok(value)) if key.chars().count() <= 64 => {
                out.insert(key, value);
            }
            (Ok(_), Ok(_)) => v.add(field, "keys are at most 64 characters"),
            (Err(e), _) | (_, Err(e)) => v.add(field, e),
        }
    }
    out
}

/// A validated `RecordSession`: a session taken already.
pub(crate) struct NewSession {
    pub(crate) client_id: String,
    pub(crate) modality: Modality,
    pub(crate) start: Timestamp,
    pub(crate) duration: SignedDuration,
    pub(crate) device_id: Option<String>,
    pub(crate) settings: BTreeMap<String, String>,
    pub(crate) soreness_before: Option<i64>,
    pub(crate) soreness_after: Option<i64>,
    pub(crate) notes: String,
    pub(crate) location_id: Option<String>,
    /// The booking it was, when it came from one: recorded once per
    /// booking.
    pub(crate) booking_id: Option<String>,
    pub(crate) key: Option<Key>,
}

impl NewSession {
    pub(crate) fn parse(
        req: &pb::RecordSessionRequest,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let s = req.session.clone().unwrap_or_default();
        let mut v = Violations::new();
        let client_id = v.check("session.client_id", parse_id(&s.client_id));
        let modality = v.check("session.modality", modality(s.modality));
        let start = v.check(
            "session.start_time",
            instant(s.start_time.as_ref()).and_then(|t| {
                if t > now {
                    Err("a completed session must have started already".to_owned())
                } else {
                    Ok(t)
                }
            }),
        );
        let duration = v.check("session.duration", session_duration(s.duration.as_ref()));
        let before = v.check("session.soreness_before", soreness(s.soreness_before));
        let after = v.check("session.soreness_after", soreness(s.soreness_after));
        let device_id = v.check("session.device_id", optional_id(&s.device_id));
        let location_id = v.check("session.location_id", optional_id(&s.location_id));
        let booking_id = v.check("session.booking_id", optional_id(&s.booking_id));
        let settings = settings(&s.device_settings, &mut v);
        let notes = v.check("session.notes", free_text(&s.notes));
        let key = req.key(scope, &mut v);
        let (
            client_id,
            (modality, (start, (duration, (before, (after, (device_id, (location_id, notes))))))),
        ) = v.finish_with(client_id.zip(modality.zip(
            start.zip(duration.zip(before.zip(after.zip(device_id.zip(location_id.zip(notes)))))),
        )))?;
        Ok(Self {
            client_id,
            modality,
            start,
            duration,
            device_id,
            settings,
            soreness_before: before,
            soreness_after: after,
            notes,
            location_id,
            booking_id: booking_id.flatten(),
            key,
        })
    }
}

/// A validated `ListActivities`.
pub(crate) struct ActivityList {
    pub(crate) client_id: String,
    pub(crate) page: Keyset,
}

impl ActivityList {
    pub(crate) fn parse(req: &pb::ListActivitiesRequest, binding: &Binding) -> Result<Self, Error> {
        let mut v = Violations::new();
        let client_id = v.check("client_id", parse_id(&req.client_id));
        let page = Keyset::parse(req.page_size, &req.page_token, binding, &mut v);
        let client_id = v.finish_with(client_id)?;
        Ok(Self { client_id, page })
    }
}

/// A validated `ListTimeline`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TimelineQuery {
    pub(crate) client_id: String,
    pub(crate) from: Option<Timestamp>,
    pub(crate) to: Option<Timestamp>,
    /// Only sessions of these modalities (and no activities); empty: all.
    pub(crate) modalities: Vec<Modality>,
    pub(crate) page: Keyset,
}

impl TimelineQuery {
    pub(crate) fn parse(req: &pb::ListTimelineRequest, binding: &Binding) -> Result<Self, Error> {
        let mut v = Violations::new();
        let client_id = v.check("client_id", parse_id(&req.client_id));
        let (from, to) = period(req.start_time.as_ref(), req.end_time.as_ref(), &mut v);
        let modalities = req
            .modalities
            .iter()
            .enumerate()
            .filter_map(|(i, m)| v.check(&format!("modalities[{i}]"), modality(*m)))
            .collect();
        let page = Keyset::parse(req.page_size, &req.page_token, binding, &mut v);
        let client_id = v.finish_with(client_id)?;
        Ok(Self {
            client_id,
            from,
            to,
            modalities,
            page,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soreness_is_zero_to_ten() {
        assert_eq!(soreness(Some(10)).unwrap(), Some(10));
        assert!(soreness(Some(11)).is_err());
        assert!(soreness(Some(-1)).is_err());
    }
}
