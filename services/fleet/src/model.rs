//! Domain types of the fleet and their conversion from and to the wire.
//! Handlers validate on receive, collecting every field problem at once.

use jiff::{SignedDuration, Timestamp};
use recovery_kit::Violations;
use recovery_kit::time::from_proto;
use recovery_proto::fleet::v1 as pb;

/// The longest display name, model or firmware version.
const MAX_NAME: usize = 200;
/// The longest serial number.
const MAX_SERIAL: usize = 100;
/// The longest reservation window.
pub(crate) const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(12);

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Percussion,
    Compression,
    Chamber,
    Other,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Percussion => "percussion_massager",
            Kind::Compression => "compression_system",
            Kind::Chamber => "cryo_chamber",
            Kind::Other => "other",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Kind> {
        [
            Kind::Percussion,
            Kind::Compression,
            Kind::Chamber,
            Kind::Other,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    pub(crate) fn to_wire(self) -> pb::DeviceKind {
        match self {
            Kind::Percussion => pb::DeviceKind::PercussionMassager,
            Kind::Compression => pb::DeviceKind::CompressionSystem,
            Kind::Chamber => pb::DeviceKind::CryoChamber,
            Kind::Other => pb::DeviceKind::Other,
        }
    }

    /// `None` for unspecified.
    pub(crate) fn from_wire(value: i32) -> Result<Option<Kind>, String> {
        match pb::DeviceKind::try_from(value) {
            Ok(pb::DeviceKind::Unspecified) => Ok(None),
            Ok(pb::DeviceKind::PercussionMassager) => Ok(Some(Kind::Percussion)),
            Ok(pb::DeviceKind::CompressionSystem) => Ok(Some(Kind::Compression)),
            Ok(pb::DeviceKind::CryoChamber) => Ok(Some(Kind::Chamber)),
            Ok(pb::DeviceKind::Other) => Ok(Some(Kind::Other)),
            Err(_) => Err(format!("{value} is not a device kind")),
        }
    }

    /// Battery drain while in use, in percent per minute; 0 for devices on
    /// mains power.
    pub(crate) fn drain_per_minute(self) -> f64 {
        match self {
            // About three hours on a full charge.
            Kind::Percussion => 0.6,
            Kind::Compression => 0.5,
            Kind::Chamber | Kind::Other => 0.0,
        }
    }

    /// Battery charge (percent) needed for a window of `window`.
    pub(crate) fn battery_needed(self, window: SignedDuration) -> u32 {
        #[allow(clippy::cast_precision_loss)]
        let minutes = window.as_secs() as f64 / 60.0;
        let needed = (self.drain_per_minute() * minutes).ceil().clamp(0.0, 100.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let needed = needed as u32;
        needed
    }

    /// Whether the device runs on a battery.
    pub(crate) fn has_battery(self) -> bool {
        self.drain_per_minute() > 0.0
    }
}

/// Attachment heads and garments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Attachment {
    Ball,
    Fork,
    Flat,
    Bullet,
    Cushion,
    Legs,
    Arms,
    Hips,
}

const GUN_HEADS: [Attachment; 5] = [
    Attachment::Ball,
    Attachment::Fork,
    Attachment::Flat,
    Attachment::Bullet,
    Attachment::Cushion,
];
const GARMENTS: [Attachment; 3] = [Attachment::Legs, Attachment::Arms, Attachment::Hips];

impl Attachment {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Attachment::Ball => "ball",
            Attachment::Fork => "fork",
            Attachment::Flat => "flat",
            Attachment::Bullet => "bullet",
            Attachment::Cushion => "cushion",
            Attachment::Legs => "legs",
            Attachment::Arms => "arms",
            Attachment::Hips => "hips",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Attachment> {
        GUN_HEADS
            .into_iter()
            .chain(GARMENTS)
            .find(|a| a.as_str() == name)
    }

    pub(crate) fn to_wire(self) -> pb::Attachment {
        match self {
            Attachment::Ball => pb::Attachment::Ball,
            Attachment::Fork => pb::Attachment::Fork,
            Attachment::Flat => pb::Attachment::Flat,
            Attachment::Bullet => pb::Attachment::Bullet,
            Attachment::Cushion => pb::Attachment::Cushion,
            Attachment::Legs => pb::Attachment::Legs,
            Attachment::Arms => pb::Attachment::Arms,
            Attachment::Hips => pb::Attachment::Hips,
        }
    }

    /// `None` for unspecified.
    pub(crate) fn from_wire(value: i32) -> Result<Option<Attachment>, String> {
        match pb::Attachment::try_from(value) {
            Ok(pb::Attachment::Unspecified) => Ok(None),
            Ok(pb::Attachment::Ball) => Ok(Some(Attachment::Ball)),
            Ok(pb::Attachment::Fork) => Ok(Some(Attachment::Fork)),
            Ok(pb::Attachment::Flat) => Ok(Some(Attachment::Flat)),
            Ok(pb::Attachment::Bullet) => Ok(Some(Attachment::Bullet)),
            Ok(pb::Attachment::Cushion) => Ok(Some(Attachment::Cushion)),
            Ok(pb::Attachment::Legs) => Ok(Some(Attachment::Legs)),
            Ok(pb::Attachment::Arms) => Ok(Some(Attachment::Arms)),
            Ok(pb::Attachment::Hips) => Ok(Some(Attachment::Hips)),
            Err(_) => Err(format!("{value} is not an attachment")),
        }
    }

    /// Whether a device of `kind` can carry this attachment.
    pub(crate) fn fits(self, kind: Kind) -> bool {
        match kind {
            Kind::Percussion => GUN_HEADS.contains(&self),
            Kind::Compression => GARMENTS.contains(&self),
            Kind::Chamber | Kind::Other => false,
        }
    }
}

/// Attachments in storage form.
pub(crate) fn attachments_to_db(list: &[Attachment]) -> String {
    list.iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Attachments from storage form (unknown names are skipped).
pub(crate) fn attachments_from_db(text: &str) -> Vec<Attachment> {
    text.split(',').filter_map(Attachment::parse).collect()
}

/// What a device can do, by kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Spec {
    pub(crate) speed_levels: Option<u32>,
    pub(crate) attachments: Vec<Attachment>,
    pub(crate) pressure_levels: Option<u32>,
    pub(crate) zones: Option<u32>,
    pub(crate) target_temp_c: Option<f64>,
    pub(crate) ready_threshold_c: Option<f64>,
}

fn attachments_of(list: &[i32], kind: Kind, field: &str, v: &mut Violations) -> Vec<Attachment> {
    let mut out = Vec::new();
    for (i, value) in list.iter().enumerate() {
        match Attachment::from_wire(*value) {
            Ok(Some(a)) if a.fits(kind) => {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            Ok(Some(a)) => v.add(
                format!("{field}[{i}]"),
                format!("{} is not an attachment of a {}", a.as_str(), kind.as_str()),
            ),
            Ok(None) => v.add(format!("{field}[{i}]"), "required"),
            Err(e) => v.add(format!("{field}[{i}]"), e),
        }
    }
    out.sort_unstable();
    out
}

fn level(value: u32, max: u32, field: &str, v: &mut Violations) -> Option<u32> {
    if (1..=max).contains(&value) {
        Some(value)
    } else {
        v.add(field, format!("must be 1 to {max}"));
        None
    }
}

impl Spec {
    /// Validates the spec of a device of `kind`; problems are recorded
    /// under `device.`.
    pub(crate) fn from_wire(
        kind: Kind,
        spec: Option<&pb::device::Spec>,
        v: &mut Violations,
    ) -> Spec {
        use pb::device::Spec as S;
        let mut out = Spec::default();
        match (kind, spec) {
            (Kind::Percussion, Some(S::Percussion(p))) => {
                out.speed_levels = level(p.speed_levels, 10, "device.percussion.speed_levels", v);
                out.attachments =
                    attachments_of(&p.attachments, kind, "device.percussion.attachments", v);
            }
            (Kind::Compression, Some(S::Compression(c))) => {
                out.attachments =
                    attachments_of(&c.attachments, kind, "device.compression.attachments", v);
                if out.attachments.is_empty() && c.attachments.is_empty() {
                    v.add("device.compression.attachments", "at least one garment");
                }
                out.pressure_levels = level(
                    c.pressure_levels,
                    20,
                    "device.compression.pressure_levels",
                    v,
                );
                out.zones = level(c.zones, 12, "device.compression.zones", v);
            }
            (Kind::Chamber, Some(S::CryoChamber(c))) => {
                let t = c.target_temperature_celsius;
                let r = c.ready_threshold_celsius;
                let plausible = |x: f64| x.is_finite() && (-200.0..=0.0).contains(&x);
                if !plausible(t) {
                    v.add(
                        "device.cryo_chamber.target_temperature_celsius",
                        "must be -200 to 0",
                    );
                }
                if !plausible(r) {
                    v.add(
                        "device.cryo_chamber.ready_threshold_celsius",
                        "must be -200 to 0",
                    );
                } else if plausible(t) && r < t {
                    v.add(
                        "device.cryo_chamber.ready_threshold_celsius",
                        "must not be colder than the target temperature",
                    );
                }
                out.target_temp_c = Some(t);
                out.ready_threshold_c = Some(r);
            }
            (Kind::Other, None) => {}
            (Kind::Percussion, _) => {
                v.add("device.percussion", "required for a percussion massager");
            }
            (Kind::Compression, _) => {
                v.add("device.compression", "required for a compression system");
            }
            (Kind::Chamber, _) => v.add("device.cryo_chamber", "required for a cryo chamber"),
            (Kind::Other, Some(_)) => v.add("device.spec", "other devices take no spec"),
        }
        out
    }

    /// Wire form for a device of `kind`.
    pub(crate) fn to_wire(&self, kind: Kind) -> Option<pb::device::Spec> {
        use pb::device::Spec as S;
        let attachments = || {
            self.attachments
                .iter()
                .map(|a| a.to_wire() as i32)
                .collect()
        };
        match kind {
            Kind::Percussion => Some(S::Percussion(pb::PercussionSpec {
                speed_levels: self.speed_levels.unwrap_or_default(),
                attachments: attachments(),
            })),
            Kind::Compression => Some(S::Compression(pb::CompressionSpec {
                attachments: attachments(),
                pressure_levels: self.pressure_levels.unwrap_or_default(),
                zones: self.zones.unwrap_or_default(),
            })),
            Kind::Chamber => Some(S::CryoChamber(pb::CryoChamberSpec {
                target_temperature_celsius: self.target_temp_c.unwrap_or_default(),
                ready_threshold_celsius: self.ready_threshold_c.unwrap_or_default(),
            })),
            Kind::Other => None,
        }
    }
}

/// A display name, model or firmware: trimmed, no control characters;
/// `required` says whether it may be empty.
pub(crate) fn text(value: &str, required: bool) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() && required {
        Err("required".to_owned())
    } else if value.chars().count() > MAX_NAME {
        Err(format!("at most {MAX_NAME} characters"))
    } else if value.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// A serial number: 1 to 100 printable characters without spaces.
pub(crate) fn serial(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        Err("required".to_owned())
    } else if value.len() > MAX_SERIAL {
        Err(format!("at most {MAX_SERIAL} characters"))
    } else if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Err("must not contain spaces or control characters".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// A purchase date "YYYY-MM-DD", or empty.
pub(crate) fn purchase_date(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    match value.parse::<jiff::civil::Date>() {
        Ok(date) if value.len() == 10 => Ok(date.to_string()),
        _ => Err(format!("{value:?} is not a date \"YYYY-MM-DD\"")),
    }
}

/// Free text such as notes: at most `max` characters.
pub(crate) fn notes(value: &str, max: usize) -> Result<String, String> {
    if value.chars().count() > max {
        Err(format!("at most {max} characters"))
    } else {
        Ok(value.trim().to_owned())
    }
}

/// A device to register, validated.
#[derive(Debug, Clone)]
pub(crate) struct NewDevice {
    pub(crate) location_id: String,
    pub(crate) kind: Kind,
    pub(crate) display_name: String,
    pub(crate) serial_number: String,
    pub(crate) model: String,
    pub(crate) firmware_version: String,
    pub(crate) purchase_date: String,
    pub(crate) spec: Spec,
}

impl NewDevice {
    pub(crate) fn from_wire(device: &pb::Device, v: &mut Violations) -> Option<NewDevice> {
        if device.location_id.is_empty() {
            v.add("device.location_id", "required");
        }
        let kind = match Kind::from_wire(device.kind) {
            Ok(Some(kind)) => Some(kind),
            Ok(None) => {
                v.add(
                    "device.kind",
                    "required: PERCUSSION_MASSAGER, COMPRESSION_SYSTEM, CRYO_CHAMBER or OTHER",
                );
                None
            }
            Err(e) => {
                v.add("device.kind", e);
                None
            }
        };
        let display_name = v.check("device.display_name", text(&device.display_name, true));
        let serial_number = v.check("device.serial_number", serial(&device.serial_number));
        let model = v.check("device.model", text(&device.model, false));
        let firmware = v.check(
            "device.firmware_version",
            text(&device.firmware_version, false),
        );
        let date = v.check("device.purchase_date", purchase_date(&device.purchase_date));
        let spec = kind.map(|k| Spec::from_wire(k, device.spec.as_ref(), v));
        Some(NewDevice {
            location_id: device.location_id.clone(),
            kind: kind?,
            display_name: display_name?,
            serial_number: serial_number?,
            model: model?,
            firmware_version: firmware?,
            purchase_date: date?,
            spec: spec?,
        })
    }
}

/// A reservation window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
}

impl Window {
    pub(crate) fn length(self) -> SignedDuration {
        self.end.duration_since(self.start)
    }

    /// From a request: a start (default `now`) and an end or a duration.
    pub(crate) fn from_wire(
        start: Option<&prost_types::Timestamp>,
        end: Option<&prost_types::Timestamp>,
        duration: Option<&prost_types::Duration>,
        now: Timestamp,
        v: &mut Violations,
    ) -> Option<Window> {
        let start = match start {
            None => Some(now),
            Some(t) => v.check("start_time", from_proto(t)),
        };
        let end = match (end, duration) {
            (Some(_), Some(_)) => {
                v.add("duration", "give end_time or duration, not both");
                None
            }
            (None, None) => {
                v.add("end_time", "required (or give duration)");
                None
            }
            (Some(t), None) => v.check("end_time", from_proto(t)),
            (None, Some(d)) => {
                let length = SignedDuration::new(d.seconds, d.nanos);
                if length.is_positive() && length <= MAX_WINDOW {
                    start.and_then(|s| s.checked_add(length).ok())
                } else {
                    v.add("duration", "must be positive and at most 12 hours");
                    None
                }
            }
        };
        let (start, end) = (start?, end?);
        if end <= start {
            v.add("end_time", "must be after start_time");
            return None;
        }
        if end.duration_since(start) > MAX_WINDOW {
            v.add("end_time", "a window is at most 12 hours");
            return None;
        }
        if end <= now {
            v.add("end_time", "must be in the future");
            return None;
        }
        Some(Window { start, end })
    }
}

/// Settings recorded at check-in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) speed_level: Option<u32>,
    pub(crate) attachment: Option<Attachment>,
    pub(crate) pressure_level: Option<u32>,
}

impl Settings {
    /// Validates `settings` against what the device can do.
    pub(crate) fn from_wire(
        settings: Option<&pb::UsageSettings>,
        kind: Kind,
        spec: &Spec,
        v: &mut Violations,
    ) -> Settings {
        let Some(s) = settings else {
            return Settings::default();
        };
        let mut out = Settings::default();
        if s.speed_level != 0 {
            match spec.speed_levels {
                Some(max) if s.speed_level <= max => out.speed_level = Some(s.speed_level),
                Some(max) => v.add(
                    "settings.speed_level",
                    format!("this device has speed levels 1 to {max}"),
                ),
                None => v.add("settings.speed_level", "this device has no speed levels"),
            }
        }
        match Attachment::from_wire(s.attachment) {
            Ok(None) => {}
            Ok(Some(a)) if a.fits(kind) && spec.attachments.contains(&a) => {
                out.attachment = Some(a);
            }
            Ok(Some(a)) => v.add(
                "settings.attachment",
                format!("this device has no {} attachment", a.as_str()),
            ),
            Err(e) => v.add("settings.attachment", e),
        }
        if s.pressure_level != 0 {
            match spec.pressure_levels {
                Some(max) if s.pressure_level <= max => {
                    out.pressure_level = Some(s.pressure_level);
                }
                Some(max) => v.add(
                    "settings.pressure_level",
                    format!("this device has pressure levels 1 to {max}"),
                ),
                None => v.add(
                    "settings.pressure_level",
                    "this device has no pressure levels",
                ),
            }
        }
        out
    }
}

/// A hub's reading, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    pub(crate) device_id: String,
    pub(crate) battery_percent: Option<u32>,
    pub(crate) charging: bool,
    pub(crate) temperature_c: Option<f64>,
    pub(crate) firmware_version: String,
    pub(crate) time: Timestamp,
}

impl Reading {
    /// Validates the `index`-th reading of a stream, received at `now`.
    pub(crate) fn from_wire(
        reading: Option<&pb::TelemetryReading>,
        index: usize,
        now: Timestamp,
        v: &mut Violations,
    ) -> Option<Reading> {
        let field = format!("readings[{index}]");
        let Some(r) = reading else {
            v.add(format!("{field}.reading"), "required");
            return None;
        };
        let device_id = v.check(
            &format!("{field}.device_id"),
            recovery_kit::ids::parse_id(&r.device_id),
        );
        let battery = match r.battery_percent {
            Some(b) if b > 100 => {
                v.add(format!("{field}.battery_percent"), "must be 0 to 100");
                None
            }
            other => Some(other),
        };
        let temperature = match r.temperature_celsius {
            Some(t) if !t.is_finite() || !(-273.0..=200.0).contains(&t) => {
                v.add(
                    format!("{field}.temperature_celsius"),
                    "must be -273 to 200",
                );
                None
            }
            other => Some(other),
        };
        let firmware = v.check(
            &format!("{field}.firmware_version"),
            text(&r.firmware_version, false),
        );
        let time = match &r.reading_time {
            None => Some(now),
            Some(t) => match from_proto(t) {
                Ok(t) if t <= now + SignedDuration::from_mins(5) => Some(t),
                Ok(_) => {
                    v.add(format!("{field}.reading_time"), "must not be in the future");
                    None
                }
                Err(e) => {
                    v.add(format!("{field}.reading_time"), e);
                    None
                }
            },
        };
        Some(Reading {
            device_id: device_id?,
            battery_percent: battery?,
            charging: r.charging,
            temperature_c: temperature?,
            firmware_version: firmware?,
            time: time?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn battery_needed_grows_with_the_window() {
        assert_eq!(
            Kind::Percussion.battery_needed(SignedDuration::from_mins(30)),
            18
        );
        assert_eq!(
            Kind::Chamber.battery_needed(SignedDuration::from_hours(3)),
            0
        );
        assert_eq!(
            Kind::Percussion.battery_needed(SignedDuration::from_hours(12)),
            100
        );
    }

    #[test]
    fn attachments_belong_to_kinds() {
        assert!(Attachment::Fork.fits(Kind::Percussion));
        assert!(!Attachment::Fork.fits(Kind::Compression));
        assert!(Attachment::Legs.fits(Kind::Compression));
        assert!(!Attachment::Ball.fits(Kind::Chamber));
        let all = [Attachment::Ball, Attachment::Hips];
        assert_eq!(attachments_from_db(&attachments_to_db(&all)), all);
        assert!(attachments_from_db("").is_empty());
    }

    #[test]
    fn bad_readings_name_every_field() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut v = Violations::new();
        let r = Reading::from_wire(
            Some(&pb::TelemetryReading {
                device_id: "nope".into(),
                battery_percent: Some(140),
                temperature_celsius: Some(f64::NAN),
                ..Default::default()
            }),
            3,
            now,
            &mut v,
        );
        assert!(r.is_none());
        let Err(recovery_kit::Error::InvalidArgument(list)) = v.finish() else {
            panic!("expected violations");
        };
        let fields: Vec<_> = list.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "readings[3].device_id",
                "readings[3].battery_percent",
                "readings[3].temperature_celsius"
            ]
        );
    }
}
