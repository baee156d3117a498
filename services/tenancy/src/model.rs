//! Domain types of tenancy and their conversion from and to the wire.
//! Handlers validate on receive, collecting every field problem at once.

use jiff::civil::Date;
use recovery_kit::{Role, Violations, time};
use recovery_proto::tenancy::v1 as pb;

/// The longest display name.
const MAX_NAME: usize = 200;

/// A display name: trimmed, 1 to 200 characters.
pub(crate) fn display_name(value: &str) -> Result<String, String> {
    let name = value.trim();
    if name.is_empty() {
        Err("required".to_owned())
    } else if name.chars().count() > MAX_NAME {
        Err(format!("at most {MAX_NAME} characters"))
    } else if name.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(name.to_owned())
    }
}

/// An IANA time zone known to the bundled tz database.
pub(crate) fn time_zone(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("required, e.g. \"Europe/Berlin\"".to_owned());
    }
    jiff::tz::db()
        .get(value)
        .map(|_| value.to_owned())
        .map_err(|_| format!("{value:?} is not an IANA time zone"))
}

/// One opening range on a weekday, in minutes after local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Hours {
    /// 1 = Monday … 7 = Sunday.
    pub(crate) day: u8,
    /// Opening minute, 0..1440.
    pub(crate) open: u16,
    /// Closing minute, after `open`, at most 1440.
    pub(crate) close: u16,
}

/// A location's weekly hours and closures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// Sorted by day, then opening.
    pub(crate) hours: Vec<Hours>,
    /// Sorted, without duplicates.
    pub(crate) closures: Vec<Date>,
}

fn minute_of(text: &str) -> Result<u16, String> {
    let bad = || format!("{text:?} is not a time \"HH:MM\"");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if (h < 24 && m < 60) || (h == 24 && m == 0) {
        Ok(h * 60 + m)
    } else {
        Err(bad())
    }
}

fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl Schedule {
    /// Validates wire hours and closure dates; problems are recorded under
    /// `prefix` (e.g. `location.`).
    pub(crate) fn from_wire(
        hours: &[pb::OpeningHours],
        closures: &[String],
        prefix: &str,
        v: &mut Violations,
    ) -> Schedule {
        let mut out: Vec<(usize, Hours)> = Vec::new();
        for (i, h) in hours.iter().enumerate() {
            let field = format!("{prefix}weekly_hours[{i}]");
            let day = match pb::Weekday::try_from(h.day) {
                Ok(pb::Weekday::Unspecified) | Err(_) => {
                    v.add(format!("{field}.day"), "required: MONDAY … SUNDAY");
                    None
                }
                Ok(day) => u8::try_from(day as i32).ok(),
            };
            let open = v.check(&format!("{field}.open"), minute_of(&h.open));
            let close = v.check(&format!("{field}.close"), minute_of(&h.close));
            if let (Some(day), Some(open), Some(close)) = (day, open, close) {
                if open >= close {
                    v.add(format!("{field}.close"), "must be after open");
                } else if open == 1440 {
                    v.add(format!("{field}.open"), "must be before 24:00");
                } else {
                    let range = Hours { day, open, close };
                    if let Some((j, _)) = out
                        .iter()
                        .find(|(_, o)| o.day == day && o.open < close && open < o.close)
                    {
                        v.add(field, format!("overlaps {prefix}weekly_hours[{j}]"));
                    } else {
                        out.push((i, range));
                    }
                }
            }
        }
        let mut dates = Vec::new();
        for (i, text) in closures.iter().enumerate() {
            match text.parse::<Date>() {
                Ok(date) if text.len() == 10 => dates.push(date),
                _ => v.add(
                    format!("{prefix}closure_dates[{i}]"),
                    format!("{text:?} is not a date \"YYYY-MM-DD\""),
                ),
            }
        }
        let mut hours: Vec<Hours> = out.into_iter().map(|(_, h)| h).collect();
        hours.sort_unstable();
        dates.sort_unstable();
        dates.dedup();
        Schedule {
            hours,
            closures: dates,
        }
    }

    /// Wire form of the hours.
    pub(crate) fn hours_to_wire(&self) -> Vec<pb::OpeningHours> {
        self.hours
            .iter()
            .map(|h| pb::OpeningHours {
                day: i32::from(h.day),
                open: hhmm(h.open),
                close: hhmm(h.close),
            })
            .collect()
    }

    /// Wire form of the closures.
    pub(crate) fn closures_to_wire(&self) -> Vec<String> {
        self.closures.iter().map(ToString::to_string).collect()
    }

    /// Storage form of the hours.
    pub(crate) fn hours_to_db(&self) -> String {
        self.hours
            .iter()
            .map(|h| format!("{} {} {}", h.day, hhmm(h.open), hhmm(h.close)))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Storage form of the closures.
    pub(crate) fn closures_to_db(&self) -> String {
        self.closures_to_wire().join(";")
    }

    /// From storage form; rows were validated when written.
    pub(crate) fn from_db(hours: &str, closures: &str) -> anyhow::Result<Schedule> {
        let mut parsed = Vec::new();
        for part in hours.split(';').filter(|p| !p.is_empty()) {
            let mut fields = part.split(' ');
            let (Some(day), Some(open), Some(close)) =
                (fields.next(), fields.next(), fields.next())
            else {
                anyhow::bail!("stored hours {part:?} are malformed");
            };
            parsed.push(Hours {
                day: day.parse()?,
                open: minute_of(open).map_err(anyhow::Error::msg)?,
                close: minute_of(close).map_err(anyhow::Error::msg)?,
            });
        }
        let closures = closures
            .split(';')
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Date>, _>>()?;
        Ok(Schedule {
            hours: parsed,
            closures,
        })
    }
}

/// The wire role of a stored role.
pub(crate) fn role_to_wire(role: Role) -> pb::Role {
    match role {
        Role::Operator => pb::Role::Operator,
        Role::Manager => pb::Role::Manager,
        Role::Staff => pb::Role::Staff,
        Role::FrontDesk => pb::Role::FrontDesk,
        Role::Device => pb::Role::Device,
    }
}

/// The role a request names.
pub(crate) fn role_from_wire(value: i32) -> Result<Role, String> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Operator) => Ok(Role::Operator),
        Ok(pb::Role::Manager) => Ok(Role::Manager),
        Ok(pb::Role::Staff) => Ok(Role::Staff),
        Ok(pb::Role::FrontDesk) => Ok(Role::FrontDesk),
        Ok(pb::Role::Device) => Ok(Role::Device),
        Ok(pb::Role::Unspecified) | Err(_) => {
            Err("required: OPERATOR, MANAGER, STAFF, FRONT_DESK or DEVICE".to_owned())
        }
    }
}

/// The fields an `UpdateLocation` changes, validated.
pub(crate) struct LocationPatch {
    pub(crate) paths: Vec<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) time_zone: Option<String>,
    pub(crate) hours: Option<Vec<Hours>>,
    pub(crate) closures: Option<Vec<Date>>,
}

impl LocationPatch {
    /// Reads the fields `mask` names from `patch`; without a mask, every
    /// field the patch fills in.
    pub(crate) fn parse(
        patch: &pb::Location,
        mask: Option<Vec<String>>,
        v: &mut Violations,
    ) -> LocationPatch {
        let paths: Vec<String> = match mask {
            Some(paths) if !paths.is_empty() => paths,
            _ => [
                (!patch.display_name.is_empty()).then_some("display_name"),
                (!patch.time_zone.is_empty()).then_some("time_zone"),
                (!patch.weekly_hours.is_empty()).then_some("weekly_hours"),
                (!patch.closure_dates.is_empty()).then_some("closure_dates"),
            ]
            .into_iter()
            .flatten()
            .map(str::to_owned)
            .collect(),
        };
        if paths.is_empty() {
            v.add("update_mask", "names no field to update");
        }
        let mut out = LocationPatch {
            paths: Vec::new(),
            display_name: None,
            time_zone: None,
            hours: None,
            closures: None,
        };
        for (i, path) in paths.iter().enumerate() {
            match path.as_str() {
                "display_name" => {
                    out.display_name =
                        v.check("location.display_name", display_name(&patch.display_name));
                }
                "time_zone" => {
                    out.time_zone = v.check("location.time_zone", time_zone(&patch.time_zone));
                }
                "weekly_hours" => {
                    out.hours =
                        Some(Schedule::from_wire(&patch.weekly_hours, &[], "location.", v).hours);
                }
                "closure_dates" => {
                    out.closures = Some(
                        Schedule::from_wire(&[], &patch.closure_dates, "location.", v).closures,
                    );
                }
                other => v.add(
                    format!("update_mask.paths[{i}]"),
                    format!(
                        "{other:?} cannot be updated; use display_name, time_zone, \
                         weekly_hours or closure_dates"
                    ),
                ),
            }
        }
        out.paths = paths;
        out
    }
}

/// Wire timestamp from storage micros (prost message fields are options).
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn ts(micros: i64) -> Option<prost_types::Timestamp> {
    Some(time::micros_to_proto(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(day: pb::Weekday, open: &str, close: &str) -> pb::OpeningHours {
        pb::OpeningHours {
            day: day as i32,
            open: open.into(),
            close: close.into(),
        }
    }

    #[test]
    fn valid_schedule_round_trips_through_storage() {
        let mut v = Violations::new();
        let s = Schedule::from_wire(
            &[
                hours(pb::Weekday::Saturday, "08:00", "18:00"),
                hours(pb::Weekday::Monday, "14:00", "24:00"),
                hours(pb::Weekday::Monday, "06:00", "14:00"),
            ],
            &[
                "2026-12-25".into(),
                "2026-12-24".into(),
                "2026-12-25".into(),
            ],
            "location.",
            &mut v,
        );
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(
            s.hours[0],
            Hours {
                day: 1,
                open: 360,
                close: 840
            }
        );
        assert_eq!(s.closures.len(), 2);
        let back = Schedule::from_db(&s.hours_to_db(), &s.closures_to_db()).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.hours_to_wire()[1].close, "24:00");
    }

    #[test]
    fn overlapping_and_malformed_hours_are_named() {
        let mut v = Violations::new();
        Schedule::from_wire(
            &[
                hours(pb::Weekday::Monday, "06:00", "12:00"),
                hours(pb::Weekday::Monday, "11:00", "13:00"),
                hours(pb::Weekday::Unspecified, "06:00", "07:00"),
                hours(pb::Weekday::Tuesday, "25:00", "7"),
                hours(pb::Weekday::Friday, "10:00", "09:00"),
            ],
            &["2026-02-30".into()],
            "location.",
            &mut v,
        );
        let Err(recovery_kit::Error::InvalidArgument(list)) = v.finish() else {
            panic!("expected violations");
        };
        let fields: Vec<_> = list.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "location.weekly_hours[1]",
                "location.weekly_hours[2].day",
                "location.weekly_hours[3].open",
                "location.weekly_hours[3].close",
                "location.weekly_hours[4].close",
                "location.closure_dates[0]",
            ]
        );
    }

    #[test]
    fn time_zones_come_from_the_bundled_database() {
        assert!(time_zone("America/New_York").is_ok());
        assert!(time_zone("Mars/Olympus_Mons").is_err());
        assert!(time_zone("").is_err());
    }
}
