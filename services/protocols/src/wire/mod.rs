//! Wire <-> domain: each request is validated on receive into a domain
//! value, collecting every field problem into one `BadRequest`; domain
//! values and stored rows become messages here. The rules crate's types are
//! the domain where it has them. One submodule per area; the checks they
//! share are below.

pub(crate) mod audit;
pub(crate) mod clients;
pub(crate) mod history;
pub(crate) mod plans;
pub(crate) mod rules;
pub(crate) mod screening;
pub(crate) mod waivers;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use recovery_kit::idempotency::Key;
use recovery_kit::ids::parse_id;
use recovery_kit::time::from_proto;
use recovery_kit::wire::{notes, optional_instant, optional_text, signed_duration, text};
use recovery_kit::{Error, Scope, Violations};
use recovery_proto::protocols::v1 as pb;
use recovery_rules::Modality;

/// The longest name.
pub(crate) const MAX_NAME: usize = 200;
/// The longest free text (notes, details, instructions).
const MAX_TEXT: usize = 2000;
/// The longest session.
const MAX_SESSION: SignedDuration = SignedDuration::from_hours(4);

/// A required one-line name of up to 200 characters.
pub(crate) fn name(value: &str) -> Result<String, String> {
    text(value, MAX_NAME)
}

/// An optional one-line name of up to 200 characters.
pub(crate) fn optional_name(value: &str) -> Result<String, String> {
    optional_text(value, MAX_NAME)
}

/// Optional free text of up to 2000 characters, line breaks allowed.
pub(crate) fn free_text(value: &str) -> Result<String, String> {
    notes(value, MAX_TEXT)
}

/// A required id, refused on its own as `field`.
pub(crate) fn id(field: &str, value: &str) -> Result<String, Error> {
    parse_id(value).map_err(|e| Error::invalid(field, e))
}

/// An optional id: `None` when empty.
pub(crate) fn optional_id(value: &str) -> Result<Option<String>, String> {
    if value.is_empty() {
        Ok(None)
    } else {
        parse_id(value).map(Some)
    }
}

/// A calendar date `YYYY-MM-DD`.
pub(crate) fn date(value: &str) -> Result<Date, String> {
    match value.parse::<Date>() {
        Ok(date) if value.len() == 10 => Ok(date),
        _ => Err(format!("{value:?} is not a date \"YYYY-MM-DD\"")),
    }
}

/// The UTC date of `now`.
pub(crate) fn today(now: Timestamp) -> Date {
    TimeZone::UTC.to_datetime(now).date()
}

/// An optional instant that has passed by `now`; `now` when unset.
pub(crate) fn past_instant(
    value: Option<&prost_types::Timestamp>,
    now: Timestamp,
) -> Result<Timestamp, String> {
    match value.map(from_proto).transpose()? {
        None => Ok(now),
        Some(t) if t <= now => Ok(t),
        Some(_) => Err("must not be in the future".to_owned()),
    }
}

/// An optional window `[start_time, end_time)` of a list request, each end
/// open when unset.
pub(crate) fn period(
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
    v: &mut Violations,
) -> (Option<Timestamp>, Option<Timestamp>) {
    let from = v.check("start_time", optional_instant(start)).flatten();
    let to = v.check("end_time", optional_instant(end)).flatten();
    if let (Some(from), Some(to)) = (from, to)
        && to <= from
    {
        v.add("end_time", "must be after start_time");
    }
    (from, to)
}

/// The modality a request names.
pub(crate) fn modality(value: i32) -> Result<Modality, String> {
    match Modality::from_wire(value) {
        Some(m) => Ok(m),
        None if value == 0 => Err("required: e.g. MODALITY_WHOLE_BODY_CRYOTHERAPY".to_owned()),
        None => Err(format!("unknown modality {value}")),
    }
}

/// A session length: more than zero, at most four hours.
pub(crate) fn session_duration(
    value: Option<&prost_types::Duration>,
) -> Result<SignedDuration, String> {
    let d = signed_duration(value.ok_or_else(|| "required".to_owned())?)?;
    if d <= SignedDuration::ZERO {
        Err("must be more than 0".to_owned())
    } else if d > MAX_SESSION {
        Err("at most 4 hours".to_owned())
    } else {
        Ok(d)
    }
}

/// A create request: idempotent by its `request_id`.
pub(crate) trait Create: prost::Message + Clone {
    /// The RPC, which names the key's scope.
    const METHOD: &'static str;

    /// The request's `request_id` field.
    fn request_id(&mut self) -> &mut String;

    /// The idempotency key in `scope` (none without a `request_id`): the
    /// request without its `request_id` is what a replay must match.
    fn key(&self, scope: &Scope, v: &mut Violations) -> Option<Key> {
        let mut fingerprint = self.clone();
        let request_id = std::mem::take(fingerprint.request_id());
        Key::new(
            Self::METHOD,
            scope.tenant().unwrap_or_default(),
            &request_id,
            &fingerprint,
            v,
        )
    }
}

macro_rules! creates {
    ($($request:ident: $method:literal),* $(,)?) => {$(
        impl Create for pb::$request {
            const METHOD: &'static str = $method;

            fn request_id(&mut self) -> &mut String {
                &mut self.request_id
            }
        }
    )*};
}

creates! {
    CreateClientRequest: "CreateClient",
    RecordScreeningRequest: "RecordScreening",
    SignWaiverRequest: "SignWaiver",
    LogActivityRequest: "LogActivity",
    RecordSessionRequest: "RecordSession",
    CreateProtocolTemplateRequest: "CreateProtocolTemplate",
    AssignProtocolRequest: "AssignProtocol",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modalities_by_number() {
        for m in Modality::ALL {
            assert_eq!(modality(m.wire()).unwrap(), m);
        }
        assert!(modality(0).unwrap_err().starts_with("required"));
        assert!(modality(99).unwrap_err().starts_with("unknown"));
    }

    #[test]
    fn session_durations_never_panic() {
        let d = |seconds, nanos| prost_types::Duration { seconds, nanos };
        assert!(session_duration(Some(&d(i64::MIN, 0))).is_err());
        assert!(session_duration(Some(&d(i64::MIN, -999_999_999))).is_err());
        assert!(session_duration(Some(&d(0, 0))).is_err());
        assert!(session_duration(Some(&d(5 * 3600, 0))).is_err());
        assert_eq!(
            session_duration(Some(&d(180, 0))).unwrap(),
            SignedDuration::from_mins(3)
        );
    }
}
