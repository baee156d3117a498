//! Field validation and conversions at the gRPC edge that every service
//! shares: texts, instants, durations, field masks. Each check returns
//! `Err(description)` for [`crate::Violations::check`]; none panics on any
//! input.

use jiff::{SignedDuration, Timestamp};

use crate::page::{Binding, Page};
use crate::{Error, Violations, ids::parse_id, time};

/// A required id from a request: INVALID_ARGUMENT on `field` when malformed.
pub fn id(value: &str, field: &str) -> Result<String, Error> {
    parse_id(value).map_err(|e| Error::invalid(field, e))
}

/// An optional id: empty is `None`; a malformed one is recorded in `v`.
pub fn optional_id(value: &str, field: &str, v: &mut Violations) -> Option<String> {
    if value.is_empty() {
        None
    } else {
        v.check(field, parse_id(value))
    }
}

/// A list request's page (its token bound to `binding`), or
/// INVALID_ARGUMENT.
pub fn page(page_size: i32, page_token: &str, binding: &Binding) -> Result<Page, Error> {
    let mut v = Violations::new();
    let page = Page::parse(page_size, page_token, binding, &mut v);
    v.finish()?;
    Ok(page)
}

/// A list request's page from its size, its token and `unpaged`, the
/// request without the two (`recovery_proto::Paged::paging`): the token
/// bound by `db`'s key to the caller's tenant and `unpaged`;
/// INVALID_ARGUMENT for a token of another list, tenant or filter.
pub fn list_page<M: prost::Message>(
    db: &crate::Db,
    caller: &crate::Caller,
    (page_size, page_token, unpaged): (i32, &str, M),
) -> Result<Page, Error> {
    page(page_size, page_token, &db.pages(caller, &unpaged)?)
}

/// A value stored by name and sent by number: a status, a kind, a role. One
/// table per type says all three; nothing else spells the names.
pub trait Named: Copy + PartialEq + Sized + 'static {
    /// Each value, its stored name and its wire number.
    const TABLE: &'static [(Self, &'static str, i32)];

    /// The stored name.
    fn as_str(self) -> &'static str {
        Self::TABLE
            .iter()
            .find(|(value, _, _)| *value == self)
            .map_or("", |(_, name, _)| name)
    }

    /// The value of a stored name.
    fn parse(name: &str) -> Option<Self> {
        Self::TABLE
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(value, _, _)| *value)
    }

    /// The value of a wire number; `None` for unspecified or unknown.
    fn from_wire(number: i32) -> Option<Self> {
        Self::TABLE
            .iter()
            .find(|(_, _, n)| *n == number)
            .map(|(value, _, _)| *value)
    }

    /// The wire number.
    fn wire(self) -> i32 {
        Self::TABLE
            .iter()
            .find(|(value, _, _)| *value == self)
            .map_or(0, |(_, _, number)| *number)
    }
}

/// A stored name read back: a name the table does not know is a decode
/// error (the database holds only names this code wrote).
pub fn stored<T: Named>(name: &str) -> Result<T, sqlx::Error> {
    T::parse(name).ok_or_else(|| unknown_name(name))
}

/// The decode error of a stored name no table knows.
pub fn unknown_name(name: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown stored name {name:?}").into())
}

/// How many characters of a caller's value an error message repeats.
pub const ECHO: usize = 64;

/// `value` cut to [`ECHO`] characters (with "…"), for messages that name
/// what the caller sent without echoing a megabyte back.
pub fn echo(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(ECHO).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// A required one-line text: trimmed, 1 to `max` characters, no control
/// characters.
pub fn text(value: &str, max: usize) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        Err("required".to_owned())
    } else {
        optional_text(value, max)
    }
}

/// An optional one-line text: trimmed, at most `max` characters, no control
/// characters; empty is allowed.
pub fn optional_text(value: &str, max: usize) -> Result<String, String> {
    let value = value.trim();
    if value.chars().count() > max {
        Err(format!("at most {max} characters"))
    } else if value.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// Free text (notes, reasons): at most `max` characters; line breaks and
/// tabs are allowed, other control characters are not.
pub fn notes(value: &str, max: usize) -> Result<String, String> {
    let value = value.trim();
    if value.chars().count() > max {
        Err(format!("at most {max} characters"))
    } else if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// A required instant.
pub fn instant(value: Option<&prost_types::Timestamp>) -> Result<Timestamp, String> {
    value.map_or_else(|| Err("required".to_owned()), time::from_proto)
}

/// An optional instant.
pub fn optional_instant(
    value: Option<&prost_types::Timestamp>,
) -> Result<Option<Timestamp>, String> {
    value.map(time::from_proto).transpose()
}

/// Wire form of an instant (prost message fields are options).
#[allow(clippy::unnecessary_wraps)]
pub fn timestamp(t: Timestamp) -> Option<prost_types::Timestamp> {
    Some(time::to_proto(t))
}

/// Wire form of a stored instant (microseconds since the epoch).
#[allow(clippy::unnecessary_wraps)]
pub fn stored_timestamp(micros: i64) -> Option<prost_types::Timestamp> {
    Some(time::micros_to_proto(micros))
}

/// The longest duration any field takes: a year.
pub const MAX_DURATION: SignedDuration = SignedDuration::from_hours(366 * 24);

/// A signed duration from the wire: seconds and nanos of one sign, nanos
/// within a second, at most [`MAX_DURATION`] either way.
pub fn signed_duration(value: &prost_types::Duration) -> Result<SignedDuration, String> {
    let prost_types::Duration { seconds, nanos } = *value;
    if !(-999_999_999..=999_999_999).contains(&nanos) {
        return Err("nanos must be within one second".to_owned());
    }
    if (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0) {
        return Err("seconds and nanos must have the same sign".to_owned());
    }
    if seconds.unsigned_abs() > MAX_DURATION.as_secs().unsigned_abs() {
        return Err("at most a year".to_owned());
    }
    // In range: SignedDuration::new cannot overflow here.
    Ok(SignedDuration::new(seconds, nanos))
}

/// A non-negative duration in whole seconds from `0` to `max`; `default`
/// when unset.
pub fn duration(
    value: Option<&prost_types::Duration>,
    default: SignedDuration,
    max: SignedDuration,
) -> Result<SignedDuration, String> {
    let Some(value) = value else {
        return Ok(default);
    };
    let d = signed_duration(value)?;
    if d.is_negative() {
        Err("must not be negative".to_owned())
    } else if d.subsec_nanos() != 0 {
        Err("whole seconds only".to_owned())
    } else if d > max {
        Err(format!("at most {}", describe(max)))
    } else {
        Ok(d)
    }
}

/// "8 hours", "90 seconds": a duration for messages.
pub fn describe(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs % 3600 == 0 {
        format!("{} hours", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{} minutes", secs / 60)
    } else {
        format!("{secs} seconds")
    }
}

/// Wire form of a duration.
pub fn duration_to_wire(d: SignedDuration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs(),
        nanos: d.subsec_nanos(),
    }
}

/// The fields an update changes, by AIP-134: the mask's paths when it names
/// any (each must be one of `fields`; `*` means all of them), otherwise
/// every field the patch populates. `fields` lists each updatable path with
/// whether the patch populates it. An update that changes nothing is a
/// violation of `update_mask`.
pub fn update_paths(
    mask: Option<&prost_types::FieldMask>,
    fields: &[(&'static str, bool)],
    v: &mut Violations,
) -> Vec<&'static str> {
    let known = || {
        fields
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut paths = Vec::new();
    match mask.map(|m| m.paths.as_slice()) {
        Some(named) if !named.is_empty() => {
            for (i, path) in named.iter().enumerate() {
                if path == "*" {
                    paths.extend(fields.iter().map(|(name, _)| *name));
                } else if let Some((name, _)) = fields.iter().find(|(name, _)| name == path) {
                    paths.push(*name);
                } else {
                    v.add(
                        format!("update_mask.paths[{i}]"),
                        format!("{:?} cannot be updated; use {}", echo(path), known()),
                    );
                }
            }
        }
        _ => paths.extend(fields.iter().filter(|(_, set)| *set).map(|(name, _)| *name)),
    }
    paths.sort_unstable();
    paths.dedup();
    if paths.is_empty() && v.is_empty() {
        v.add(
            "update_mask",
            format!("names no field to update; use {}", known()),
        );
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(paths: &[&str]) -> prost_types::FieldMask {
        prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn an_omitted_mask_means_every_populated_field() {
        let mut v = Violations::new();
        let fields = [("display_name", true), ("model", false), ("spec", true)];
        assert_eq!(
            update_paths(None, &fields, &mut v),
            ["display_name", "spec"]
        );
        assert!(v.is_empty());
        assert_eq!(
            update_paths(Some(&mask(&["model"])), &fields, &mut v),
            ["model"]
        );
        assert_eq!(
            update_paths(Some(&mask(&["*"])), &fields, &mut v),
            ["display_name", "model", "spec"]
        );
        assert!(v.is_empty());
    }

    #[test]
    fn unknown_paths_and_empty_updates_are_refused() {
        let mut v = Violations::new();
        let fields = [("display_name", false)];
        update_paths(Some(&mask(&["tenant_id"])), &fields, &mut v);
        let Err(crate::Error::InvalidArgument(violations)) = v.finish() else {
            panic!("expected a violation");
        };
        assert_eq!(violations[0].field, "update_mask.paths[0]");
        let mut v = Violations::new();
        update_paths(None, &fields, &mut v);
        let Err(crate::Error::InvalidArgument(violations)) = v.finish() else {
            panic!("expected a violation");
        };
        assert_eq!(violations[0].field, "update_mask");
    }

    #[test]
    fn durations_never_panic() {
        for (seconds, nanos) in [
            (i64::MAX, 999_999_999),
            (i64::MIN, -999_999_999),
            (i64::MAX, 1_000_000_000),
            (1, -1),
            (0, i32::MIN),
        ] {
            assert!(signed_duration(&prost_types::Duration { seconds, nanos }).is_err());
        }
        let d = prost_types::Duration {
            seconds: -90,
            nanos: -5,
        };
        assert_eq!(signed_duration(&d).unwrap(), SignedDuration::new(-90, -5));
        assert_eq!(
            duration(
                Some(&prost_types::Duration {
                    seconds: 30,
                    nanos: 0
                }),
                SignedDuration::ZERO,
                SignedDuration::from_mins(1)
            )
            .unwrap(),
            SignedDuration::from_secs(30)
        );
    }

    #[test]
    fn echo_cuts_long_values() {
        assert_eq!(echo("short"), "short");
        let long = "x".repeat(1000);
        assert_eq!(echo(&long).chars().count(), ECHO + 1);
    }

    #[test]
    fn texts() {
        assert_eq!(text("  Ana ", 10).unwrap(), "Ana");
        assert!(text("", 10).is_err());
        assert!(text("a\u{7}", 10).is_err());
        assert!(text(&"x".repeat(11), 10).is_err());
        assert_eq!(optional_text("", 10).unwrap(), "");
        assert_eq!(notes("a\nb", 10).unwrap(), "a\nb");
    }
}
