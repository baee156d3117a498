//! Validation errors.

/// Why a search or pick was refused. Every variant but
/// [`Error::SlotUnavailable`] is bad input; [`Error::field`] names the
/// offending field for a field violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The window ends at or before its start.
    #[error("window.end must be after window.start")]
    WindowEnd,
    /// The window is longer than [`crate::MAX_WINDOW_DAYS`] days.
    #[error("window must not be longer than {} days", crate::MAX_WINDOW_DAYS)]
    WindowTooLong,
    /// The treatment's duration is zero or negative.
    #[error("treatment.duration must be positive")]
    Duration,
    /// The slot step (which defaults to the duration) is under
    /// [`crate::MIN_STEP`].
    #[error("treatment.step (defaults to the duration) must be at least one minute")]
    Step,
    /// The treatment's turnover is negative.
    #[error("treatment.turnover must not be negative")]
    TreatmentTurnover,
    /// The treatment needs nothing.
    #[error("treatment.needs must not be empty")]
    NoNeeds,
    /// A need's kind is empty or repeated.
    #[error("treatment.needs[{index}].kind must be non-empty and unique")]
    NeedKind {
        /// Position in `treatment.needs`.
        index: usize,
    },
    /// A need's count is zero.
    #[error("treatment.needs[{index}].count must be at least 1")]
    NeedCount {
        /// Position in `treatment.needs`.
        index: usize,
    },
    /// An opening range does not close after it opens, or overlaps another
    /// range of the same weekday.
    #[error(
        "location.weekly_hours[{index}] must close after it opens and not overlap another range of its weekday"
    )]
    OpeningHours {
        /// Position in `location.weekly_hours`.
        index: usize,
    },
    /// A resource id is empty or repeated.
    #[error("resources[{index}].id must be non-empty and unique")]
    ResourceId {
        /// Position in `resources`.
        index: usize,
    },
    /// A resource kind is empty.
    #[error("resources[{index}].kind must not be empty")]
    ResourceKind {
        /// Position in `resources`.
        index: usize,
    },
    /// A resource's turnover is negative.
    #[error("resources[{index}].turnover must not be negative")]
    ResourceTurnover {
        /// Position in `resources`.
        index: usize,
    },
    /// A resource's precool has a negative `after` or `duration`.
    #[error("resources[{index}].precool must not have negative durations")]
    Precool {
        /// Position in `resources`.
        index: usize,
    },
    /// A shift does not end after it starts, or overlaps another shift of
    /// the same weekday.
    #[error(
        "resources[{resource}].shifts[{index}] must close after it opens and not overlap another shift of its weekday"
    )]
    Shift {
        /// Position in `resources`.
        resource: usize,
        /// Position in the resource's `shifts`.
        index: usize,
    },
    /// A blackout does not end after it starts.
    #[error("resources[{resource}].blackouts[{index}].end must be after its start")]
    Blackout {
        /// Position in `resources`.
        resource: usize,
        /// Position in the resource's `blackouts`.
        index: usize,
    },
    /// A busy interval does not end after it starts.
    #[error("busy[{index}].interval.end must be after its start")]
    Busy {
        /// Position in `busy`.
        index: usize,
    },
    /// The preferred resource is unknown or of a kind the treatment does not
    /// need.
    #[error("preference must be the id of a resource of a kind the treatment needs")]
    Preference,
    /// The slot asked for is not (or no longer) open.
    #[error("the slot is not available")]
    SlotUnavailable,
}

impl Error {
    /// The offending field as a path (`treatment.needs[1].count`), or `None`
    /// when the input was valid but the slot is taken.
    #[must_use]
    pub fn field(&self) -> Option<String> {
        let path = match self {
            Self::WindowEnd => "window.end".to_owned(),
            Self::WindowTooLong => "window".to_owned(),
            Self::Duration => "treatment.duration".to_owned(),
            Self::Step => "treatment.step".to_owned(),
            Self::TreatmentTurnover => "treatment.turnover".to_owned(),
            Self::NoNeeds => "treatment.needs".to_owned(),
            Self::NeedKind { index } => format!("treatment.needs[{index}].kind"),
            Self::NeedCount { index } => format!("treatment.needs[{index}].count"),
            Self::OpeningHours { index } => format!("location.weekly_hours[{index}]"),
            Self::ResourceId { index } => format!("resources[{index}].id"),
            Self::ResourceKind { index } => format!("resources[{index}].kind"),
            Self::ResourceTurnover { index } => format!("resources[{index}].turnover"),
            Self::Precool { index } => format!("resources[{index}].precool"),
            Self::Shift { resource, index } => format!("resources[{resource}].shifts[{index}]"),
            Self::Blackout { resource, index } => {
                format!("resources[{resource}].blackouts[{index}].end")
            }
            Self::Busy { index } => format!("busy[{index}].interval.end"),
            Self::Preference => "preference".to_owned(),
            Self::SlotUnavailable => return None,
        };
        Some(path)
    }
}
