use std::fmt;

use jiff::SignedDuration;

/// A stable reason code. [`Reason::as_str`] is the wire form (an `ErrorInfo`
/// reason); it never changes once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Refusal: cryotherapy for a client with no screening on record.
    ScreeningRequired,
    /// Refusal: a condition or reading rules the modality out.
    Contraindicated,
    /// Refusal: no signed waiver current at the session start.
    WaiverRequired,
    /// Refusal: a minor whose waiver names no guardian.
    GuardianConsentRequired,
    /// Refusal: the local day's whole-body cryotherapy limit is reached.
    DailyLimitReached,
    /// Warning: whole-body cryotherapy too long after the last activity.
    OutsideCryoWindow,
    /// Warning: whole-body cryotherapy with no activity logged before it.
    NoRecentActivity,
    /// Warning: compression from the evening before a race to its end.
    CompressionBeforeRace,
    /// Warning: longer than the cryotherapy progression recommends.
    DurationAboveProgression,
    /// Warning: a free-text condition that staff should review.
    ConditionNeedsReview,
    /// Warning: no guardian named and the age is unknown.
    DateOfBirthUnknown,
}

impl Reason {
    /// Every reason, refusals first.
    pub const ALL: [Self; 11] = [
        Self::ScreeningRequired,
        Self::Contraindicated,
        Self::WaiverRequired,
        Self::GuardianConsentRequired,
        Self::DailyLimitReached,
        Self::OutsideCryoWindow,
        Self::NoRecentActivity,
        Self::CompressionBeforeRace,
        Self::DurationAboveProgression,
        Self::ConditionNeedsReview,
        Self::DateOfBirthUnknown,
    ];

    /// The stable `UPPER_SNAKE_CASE` code.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ScreeningRequired => "SCREENING_REQUIRED",
            Self::Contraindicated => "CONTRAINDICATED",
            Self::WaiverRequired => "WAIVER_REQUIRED",
            Self::GuardianConsentRequired => "GUARDIAN_CONSENT_REQUIRED",
            Self::DailyLimitReached => "DAILY_LIMIT_REACHED",
            Self::OutsideCryoWindow => "OUTSIDE_CRYO_WINDOW",
            Self::NoRecentActivity => "NO_RECENT_ACTIVITY",
            Self::CompressionBeforeRace => "COMPRESSION_BEFORE_RACE",
            Self::DurationAboveProgression => "DURATION_ABOVE_PROGRESSION",
            Self::ConditionNeedsReview => "CONDITION_NEEDS_REVIEW",
            Self::DateOfBirthUnknown => "DATE_OF_BIRTH_UNKNOWN",
        }
    }

    /// Whether this reason blocks the booking (a refusal) rather than warns.
    #[must_use]
    pub const fn is_refusal(self) -> bool {
        matches!(
            self,
            Self::ScreeningRequired
                | Self::Contraindicated
                | Self::WaiverRequired
                | Self::GuardianConsentRequired
                | Self::DailyLimitReached
        )
    }

    /// Whether this warning depends on when the session is (the cryo
    /// window, the race evening): another time may not carry it. Slot
    /// suggestions rank a slot with one as an alternative.
    #[must_use]
    pub const fn is_timing(self) -> bool {
        matches!(
            self,
            Self::OutsideCryoWindow | Self::NoRecentActivity | Self::CompressionBeforeRace
        )
    }

    /// The reason whose code is `code`, if any.
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One refusal or warning: a code for machines, a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The stable code.
    pub reason: Reason,
    /// A plain English sentence for the front desk.
    pub message: String,
}

/// The outcome of [`evaluate`](crate::evaluate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Reasons the session must not be booked; empty when it may be.
    pub refusals: Vec<Finding>,
    /// Things staff should know; they do not block the booking.
    pub warnings: Vec<Finding>,
    /// The duration a rule recommends (whole-body cryotherapy progression).
    pub recommended_duration: Option<SignedDuration>,
}

impl Evaluation {
    /// True when nothing refuses the session.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        self.refusals.is_empty()
    }

    /// Every reason, refusals first, in rule order.
    pub fn reasons(&self) -> impl Iterator<Item = Reason> + '_ {
        self.refusals.iter().chain(&self.warnings).map(|f| f.reason)
    }

    pub(crate) fn push(&mut self, reason: Reason, message: String) {
        let finding = Finding { reason, message };
        if reason.is_refusal() {
            self.refusals.push(finding);
        } else {
            self.warnings.push(finding);
        }
    }
}
