//! Tenancy at the gRPC edge: requests validated into domain values (every
//! field problem collected into one `BadRequest`), domain values back to
//! the wire. The schedule of a location (weekly hours, closures) lives here
//! with its wire and storage forms.

use jiff::civil::Date;
use recovery_kit::idempotency::{Key, without_request_id};
use recovery_kit::ids::parse_id;
use recovery_kit::wire::{stored_timestamp, text, update_paths};
use recovery_kit::{Caller, Error, Role, Violations};
use recovery_proto::tenancy::v1 as pb;

use crate::Tenancy;
use crate::api_keys::NewApiKey;
use crate::locations::{LocationPatch, NewLocation};
use crate::store::keys::ApiKey;
use crate::store::locations::Location;
use crate::store::tenants::Tenant;
use crate::tenants::NewTenant;

/// The longest display name.
const MAX_NAME: usize = 200;

/// A display name: trimmed, 1 to 200 characters, one line.
fn display_name(value: &str) -> Result<String, String> {
    text(value, MAX_NAME)
}

/// An id the request names in `field`.
pub(crate) fn id(value: &str, field: &str) -> Result<String, Error> {
    parse_id(value).map_err(|e| Error::invalid(field, e))
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
        Role::Service => pb::Role::Service,
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
        Ok(pb::Role::Service) => Ok(Role::Service),
        Ok(pb::Role::Unspecified) | Err(_) => {
            Err("required: OPERATOR, MANAGER, STAFF, FRONT_DESK, DEVICE or SERVICE".to_owned())
        }
    }
}

/// Appends the violations of `other` to `v`, after those `v` has.
fn append(v: &mut Violations, other: Violations) {
    if let Err(Error::InvalidArgument(list)) = other.finish() {
        for violation in list {
            v.add(violation.field, violation.description);
        }
    }
}

impl NewTenant {
    /// A `CreateTenant` request, validated.
    pub(crate) fn parse(req: &pb::CreateTenantRequest) -> Result<Self, Error> {
        let mut v = Violations::new();
        let name = v.check(
            "tenant.display_name",
            display_name(req.tenant.as_ref().map_or("", |t| t.display_name.as_str())),
        );
        let fingerprint = without_request_id(req, |r| r.request_id.clear());
        let key = Key::new("CreateTenant", "", &req.request_id, &fingerprint, &mut v);
        Ok(NewTenant {
            display_name: v.finish_with(name)?,
            key,
        })
    }
}

impl NewLocation {
    /// A `CreateLocation` request of `caller`, validated; a tenant key
    /// names its own tenant or none.
    pub(crate) fn parse(req: &pb::CreateLocationRequest, caller: &Caller) -> Result<Self, Error> {
        let tenant_id = caller.tenant_scope(&req.tenant_id, "tenant_id")?;
        let mut v = Violations::new();
        let location = req.location.clone().unwrap_or_default();
        let name = v.check(
            "location.display_name",
            display_name(&location.display_name),
        );
        let zone = v.check("location.time_zone", time_zone(&location.time_zone));
        let schedule = Schedule::from_wire(
            &location.weekly_hours,
            &location.closure_dates,
            "location.",
            &mut v,
        );
        let fingerprint = without_request_id(req, |r| r.request_id.clear());
        let key = Key::new(
            "CreateLocation",
            &tenant_id,
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let (display_name, time_zone) = v.finish_with(name.zip(zone))?;
        Ok(NewLocation {
            tenant_id,
            display_name,
            time_zone,
            schedule,
            key,
        })
    }
}

impl LocationPatch {
    /// An `UpdateLocation` request, validated: the fields the mask names,
    /// or without a mask every field the patch fills in (AIP-134).
    pub(crate) fn parse(req: &pb::UpdateLocationRequest) -> Result<Self, Error> {
        let empty = pb::Location::default();
        let patch = req.location.as_ref().unwrap_or(&empty);
        let mut v = Violations::new();
        let id = v.check("location.id", parse_id(&patch.id));
        // Mask problems are named after the fields' own, as they always were.
        let mut mask = Violations::new();
        let fields = [
            ("display_name", !patch.display_name.is_empty()),
            ("time_zone", !patch.time_zone.is_empty()),
            ("weekly_hours", !patch.weekly_hours.is_empty()),
            ("closure_dates", !patch.closure_dates.is_empty()),
        ];
        let paths = update_paths(req.update_mask.as_ref(), &fields, &mut mask);
        let mut out = LocationPatch {
            id: String::new(),
            paths,
            display_name: None,
            time_zone: None,
            hours: None,
            closures: None,
        };
        // In the order of the fields, so that problems are named alike
        // whatever order the mask lists them in.
        for (path, _) in fields {
            if !out.paths.contains(&path) {
                continue;
            }
            match path {
                "display_name" => {
                    out.display_name =
                        v.check("location.display_name", display_name(&patch.display_name));
                }
                "time_zone" => {
                    out.time_zone = v.check("location.time_zone", time_zone(&patch.time_zone));
                }
                "weekly_hours" => {
                    out.hours = Some(
                        Schedule::from_wire(&patch.weekly_hours, &[], "location.", &mut v).hours,
                    );
                }
                // update_paths names only the fields above.
                _ => {
                    out.closures = Some(
                        Schedule::from_wire(&[], &patch.closure_dates, "location.", &mut v)
                            .closures,
                    );
                }
            }
        }
        append(&mut v, mask);
        out.id = v.finish_with(id)?;
        Ok(out)
    }
}

impl NewApiKey {
    /// A `CreateApiKey` request of `caller`, validated.
    pub(crate) fn parse(req: &pb::CreateApiKeyRequest, caller: &Caller) -> Result<Self, Error> {
        let mut v = Violations::new();
        let role = v.check("role", role_from_wire(req.role));
        let name = v.check("display_name", display_name(&req.display_name));
        let tenant_id = Tenancy::key_owner(caller, role, &req.tenant_id, &mut v)?;
        let fingerprint = without_request_id(req, |r| r.request_id.clear());
        let key = Key::new(
            "CreateApiKey",
            tenant_id.as_deref().unwrap_or(""),
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let (role, display_name) = v.finish_with(role.zip(name))?;
        Ok(NewApiKey {
            tenant_id,
            role,
            display_name,
            key,
        })
    }
}

impl From<Tenant> for pb::Tenant {
    fn from(t: Tenant) -> Self {
        pb::Tenant {
            id: t.id,
            display_name: t.display_name,
            create_time: stored_timestamp(t.create_time),
            update_time: stored_timestamp(t.update_time),
        }
    }
}

impl From<Location> for pb::Location {
    fn from(l: Location) -> Self {
        pb::Location {
            id: l.id,
            tenant_id: l.tenant_id,
            display_name: l.display_name,
            time_zone: l.time_zone,
            weekly_hours: l.schedule.hours_to_wire(),
            closure_dates: l.schedule.closures_to_wire(),
            create_time: stored_timestamp(l.create_time),
            update_time: stored_timestamp(l.update_time),
        }
    }
}

impl From<ApiKey> for pb::ApiKey {
    fn from(k: ApiKey) -> Self {
        pb::ApiKey {
            id: k.id,
            tenant_id: k.tenant_id.unwrap_or_default(),
            role: role_to_wire(k.role) as i32,
            display_name: k.display_name,
            prefix: k.prefix,
            create_time: stored_timestamp(k.create_time),
            revoke_time: k.revoke_time.and_then(stored_timestamp),
        }
    }
}

/// Who the caller is, on the wire.
pub(crate) fn caller(caller: &Caller) -> pb::GetCallerResponse {
    pb::GetCallerResponse {
        tenant_id: caller.tenant_id.clone().unwrap_or_default(),
        role: role_to_wire(caller.role) as i32,
        api_key_id: caller.key_id.clone(),
    }
}

/// Wire forms of a list of domain values.
pub(crate) fn all<T, W: From<T>>(items: Vec<T>) -> Vec<W> {
    items.into_iter().map(W::from).collect()
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
