//! Ranking open slots for a client once the rules judged each: what
//! `SuggestSlots` answers "when should she come in?" with.

use jiff::Timestamp;

use crate::Reason;

/// How well a slot fits the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fit {
    /// No timing warning: inside the benefit window, or none applies.
    Best,
    /// It would carry a timing warning ([`Reason::is_timing`]).
    Alternative,
}

impl Fit {
    /// The fit of a slot whose warnings are `warnings`.
    pub fn of(warnings: impl IntoIterator<Item = Reason>) -> Self {
        if warnings.into_iter().any(Reason::is_timing) {
            Self::Alternative
        } else {
            Self::Best
        }
    }
}

/// An open slot as the ranking sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// When it starts.
    pub start: Timestamp,
    /// Its fit; `None` when the rules refuse it.
    pub fit: Option<Fit>,
    /// Where, as the caller orders its places (ties at one start go to the
    /// lower).
    pub place: usize,
}

/// The candidates worth suggesting, best first, at most `max`, as indices
/// into `candidates`: refused ones never; best fits before alternatives;
/// within a fit the earliest first; at one start, by place, then by index.
///
/// Alternatives come after every best fit, earliest first: for whole-body
/// cryotherapy after an activity they are the slots nearest after the
/// window, for compression the slots nearest the race evening's edges
/// come in time order too.
#[must_use]
pub fn rank(candidates: &[Candidate], max: usize) -> Vec<usize> {
    let mut order: Vec<(Fit, Timestamp, usize, usize)> = candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((c.fit?, c.start, c.place, i)))
        .collect();
    order.sort_unstable();
    order.into_iter().take(max).map(|(.., i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn c(start: &str, fit: Option<Fit>, place: usize) -> Candidate {
        Candidate {
            start: at(start),
            fit,
            place,
        }
    }

    #[test]
    fn best_fits_first_then_alternatives_each_earliest_first() {
        let list = [
            c("2026-12-02T20:00:00Z", Some(Fit::Alternative), 0),
            c("2026-12-02T18:00:00Z", Some(Fit::Best), 1),
            c("2026-12-02T16:00:00Z", None, 0),
            c("2026-12-02T19:00:00Z", Some(Fit::Alternative), 0),
            c("2026-12-02T18:00:00Z", Some(Fit::Best), 0),
            c("2026-12-02T17:00:00Z", Some(Fit::Best), 1),
        ];
        assert_eq!(rank(&list, 10), vec![5, 4, 1, 3, 0]);
        assert_eq!(rank(&list, 2), vec![5, 4]);
        assert_eq!(rank(&list, 0), Vec::<usize>::new());
    }

    #[test]
    fn only_timing_warnings_make_an_alternative() {
        assert_eq!(Fit::of([]), Fit::Best);
        assert_eq!(
            Fit::of([
                Reason::DurationAboveProgression,
                Reason::ConditionNeedsReview
            ]),
            Fit::Best
        );
        for timing in [
            Reason::OutsideCryoWindow,
            Reason::NoRecentActivity,
            Reason::CompressionBeforeRace,
        ] {
            assert_eq!(
                Fit::of([Reason::DurationAboveProgression, timing]),
                Fit::Alternative
            );
        }
    }

    #[test]
    fn refused_everywhere_is_nothing() {
        let list = [c("2026-12-02T18:00:00Z", None, 0)];
        assert!(rank(&list, 10).is_empty());
    }
}
