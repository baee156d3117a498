use jiff::SignedDuration;
use jiff::civil::Time;

/// A tenant's thresholds. [`Config::default`] carries the studio defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Whole-body cryotherapy helps only this long after an activity ends
    /// (inclusive). Default 5 h.
    pub cryo_window: SignedDuration,
    /// Whole-body cryotherapy sessions allowed per local day. Default 1.
    pub daily_cryo_limit: u32,
    /// Recommended length of a client's first whole-body cryotherapy session.
    /// Default 1 min 30 s.
    pub progression_start: SignedDuration,
    /// Added to the recommendation for each previous whole-body cryotherapy
    /// session. Default 15 s.
    pub progression_step: SignedDuration,
    /// The recommendation never exceeds this. Default 3 min.
    pub progression_max: SignedDuration,
    /// Age in whole years from which no guardian consent is needed. Default 18.
    pub adult_age: u8,
    /// Highest systolic pressure (mmHg) accepted for whole-body cryotherapy.
    /// Default 180.
    pub max_systolic: u16,
    /// Highest diastolic pressure (mmHg) accepted for whole-body cryotherapy.
    /// Default 100.
    pub max_diastolic: u16,
    /// Whole-body cryotherapy is refused until this many months after a
    /// cardiac stent was placed. Default 6.
    pub stent_months: u32,
    /// Local clock time on the day before a race from which compression is
    /// advised against. Default 18:00.
    pub race_evening: Time,
    /// Whether a signed, current waiver is needed for any session. Default true.
    pub waiver_required: bool,
    /// When set, only a waiver of exactly this version counts as current.
    /// Default none: any version.
    pub required_waiver_version: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cryo_window: SignedDuration::from_hours(5),
            daily_cryo_limit: 1,
            progression_start: SignedDuration::from_secs(90),
            progression_step: SignedDuration::from_secs(15),
            progression_max: SignedDuration::from_mins(3),
            adult_age: 18,
            max_systolic: 180,
            max_diastolic: 100,
            stent_months: 6,
            race_evening: Time::constant(18, 0, 0, 0),
            waiver_required: true,
            required_waiver_version: None,
        }
    }
}
