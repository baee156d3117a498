use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// A kind of recovery session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modality {
    /// Whole-body cryotherapy in a chamber.
    WholeBodyCryotherapy,
    /// Cold applied to one body part.
    LocalCryotherapy,
    /// Assisted stretching with a therapist.
    StretchTherapy,
    /// Compression boots or sleeves.
    Compression,
    /// Percussion massage with a massage gun.
    PercussionMassage,
    /// Infrared sauna.
    InfraredSauna,
    /// Anything else the studio offers.
    Other,
}

impl Modality {
    /// Lowercase English name, as used in messages.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::WholeBodyCryotherapy => "whole-body cryotherapy",
            Self::LocalCryotherapy => "local cryotherapy",
            Self::StretchTherapy => "stretch therapy",
            Self::Compression => "compression",
            Self::PercussionMassage => "percussion massage",
            Self::InfraredSauna => "infrared sauna",
            Self::Other => "other",
        }
    }
}

/// The one modality table: each modality, its stored code and the number
/// the booking and protocols APIs give it (both `Modality` enums number
/// alike; 0 is unspecified).
const MODALITIES: [(Modality, &str, i32); 7] = [
    (Modality::WholeBodyCryotherapy, "whole_body_cryotherapy", 1),
    (Modality::LocalCryotherapy, "local_cryotherapy", 2),
    (Modality::StretchTherapy, "stretch_therapy", 3),
    (Modality::Compression, "compression", 4),
    (Modality::PercussionMassage, "percussion_massage", 5),
    (Modality::InfraredSauna, "infrared_sauna", 6),
    (Modality::Other, "other", 7),
];

impl Modality {
    /// Every modality.
    pub const ALL: [Modality; 7] = [
        Modality::WholeBodyCryotherapy,
        Modality::LocalCryotherapy,
        Modality::StretchTherapy,
        Modality::Compression,
        Modality::PercussionMassage,
        Modality::InfraredSauna,
        Modality::Other,
    ];

    fn row(self) -> (Modality, &'static str, i32) {
        MODALITIES
            .into_iter()
            .find(|(m, _, _)| *m == self)
            .unwrap_or((Modality::Other, "other", 7))
    }

    /// The stable code stored in databases, e.g. `whole_body_cryotherapy`.
    #[must_use]
    pub fn code(self) -> &'static str {
        self.row().1
    }

    /// The modality a stored code names.
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        MODALITIES
            .into_iter()
            .find(|(_, c, _)| *c == code)
            .map(|(m, _, _)| m)
    }

    /// The API's number for this modality.
    #[must_use]
    pub fn wire(self) -> i32 {
        self.row().2
    }

    /// The modality the API's number names; `None` for unspecified or
    /// unknown numbers.
    #[must_use]
    pub fn from_wire(value: i32) -> Option<Self> {
        MODALITIES
            .into_iter()
            .find(|(_, _, w)| *w == value)
            .map(|(m, _, _)| m)
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The session being booked.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// What kind of session.
    pub modality: Modality,
    /// When it starts.
    pub start: Timestamp,
    /// How long it is planned to last.
    pub duration: SignedDuration,
    /// The location's IANA time zone: days, birthdays and evenings are local.
    pub time_zone: TimeZone,
}

/// What the studio knows about the client. `history`, `booked` and
/// `activities` may be in any order and may hold future entries; neither
/// `history` nor `booked` may hold the proposed session itself (leave it out
/// when rescheduling).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientFacts {
    /// Date of birth, if known.
    pub date_of_birth: Option<Date>,
    /// The latest health screening; `None` means never screened.
    pub screening: Option<Screening>,
    /// The latest waiver on record, if any.
    pub waiver: Option<Waiver>,
    /// Logged training and races.
    pub activities: Vec<Activity>,
    /// Sessions taken, other than the proposed one.
    pub history: Vec<Session>,
    /// Sessions booked and not yet taken (not cancelled), other than the
    /// proposed one: they count toward the daily limit, never toward the
    /// progression (a session that has not happened is no experience).
    pub booked: Vec<Session>,
}

/// A health screening.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Screening {
    /// Conditions the client declared or staff recorded.
    pub conditions: Vec<Condition>,
    /// The latest blood pressure reading, if one was taken.
    pub blood_pressure: Option<BloodPressure>,
}

/// A medical condition relevant to recovery modalities.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Condition {
    /// Pregnancy.
    Pregnancy,
    /// Raynaud's phenomenon.
    Raynauds,
    /// Cold urticaria.
    ColdUrticaria,
    /// A cardiac pacemaker.
    Pacemaker,
    /// Uncontrolled hypertension, as diagnosed.
    UncontrolledHypertension,
    /// A cardiac stent, placed on the given date.
    CardiacStent {
        /// The date it was placed.
        placed_on: Date,
    },
    /// Deep vein thrombosis.
    DeepVeinThrombosis,
    /// Peripheral arterial disease.
    PeripheralArterialDisease,
    /// Congestive heart failure.
    CongestiveHeartFailure,
    /// Anything else, as written down; staff review it.
    Other(String),
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pregnancy => f.write_str("pregnancy"),
            Self::Raynauds => f.write_str("Raynaud's phenomenon"),
            Self::ColdUrticaria => f.write_str("cold urticaria"),
            Self::Pacemaker => f.write_str("a pacemaker"),
            Self::UncontrolledHypertension => f.write_str("uncontrolled hypertension"),
            Self::CardiacStent { placed_on } => write!(f, "a cardiac stent placed on {placed_on}"),
            Self::DeepVeinThrombosis => f.write_str("deep vein thrombosis"),
            Self::PeripheralArterialDisease => f.write_str("peripheral arterial disease"),
            Self::CongestiveHeartFailure => f.write_str("congestive heart failure"),
            Self::Other(text) => write!(f, "\"{text}\""),
        }
    }
}

/// A blood pressure reading in mmHg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BloodPressure {
    /// Systolic pressure.
    pub systolic: u16,
    /// Diastolic pressure.
    pub diastolic: u16,
    /// When it was measured.
    pub measured_at: Timestamp,
}

/// A signed waiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    /// The waiver text's version.
    pub version: String,
    /// When it was signed.
    pub signed_at: Timestamp,
    /// The first instant it no longer covers; `None` never expires.
    pub expires_at: Option<Timestamp>,
    /// The parent or guardian who signed for a minor.
    pub guardian_name: Option<String>,
}

/// What kind of activity was logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityKind {
    /// A training session.
    Training,
    /// A race.
    Race,
}

/// A logged activity (past, or a planned race).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Training or race.
    pub kind: ActivityKind,
    /// When it started.
    pub start: Timestamp,
    /// When it ended.
    pub end: Timestamp,
    /// Distance in metres, if known.
    pub distance_m: Option<u32>,
    /// Perceived effort from 1 to 10, if known.
    pub perceived_effort: Option<u8>,
}

/// A session the client took or has booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// What kind of session.
    pub modality: Modality,
    /// When it starts.
    pub start: Timestamp,
    /// How long it lasts.
    pub duration: SignedDuration,
}

#[cfg(test)]
mod tests {
    use super::Modality;

    #[test]
    fn modality_codes_and_numbers_round_trip() {
        for m in Modality::ALL {
            assert_eq!(Modality::from_code(m.code()), Some(m));
            assert_eq!(Modality::from_wire(m.wire()), Some(m));
        }
        assert_eq!(Modality::from_wire(0), None);
        assert_eq!(Modality::from_wire(99), None);
        assert_eq!(Modality::from_code("ice bath"), None);
    }
}
