use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use crate::{
    ActivityKind, ClientFacts, Condition, Config, Evaluation, Modality, Proposal, Reason, Screening,
};

/// Checks a proposed session for a client against the studio's rules.
///
/// Findings are ordered by [`Reason`] (its declaration order), refusals and
/// warnings apart. Never panics, whatever the input.
///
/// ```
/// use jiff::{SignedDuration, tz::TimeZone};
/// use recovery_rules::{ClientFacts, Config, Modality, Proposal, Reason, evaluate};
///
/// let proposal = Proposal {
///     modality: Modality::WholeBodyCryotherapy,
///     start: "2025-06-15T14:00:00Z".parse()?,
///     duration: SignedDuration::from_mins(3),
///     time_zone: TimeZone::get("Europe/Berlin")?,
/// };
/// // Never screened, no waiver, no activity logged.
/// let e = evaluate(&proposal, &ClientFacts::default(), &Config::default());
/// assert!(!e.is_allowed());
/// let codes: Vec<_> = e.reasons().map(Reason::as_str).collect();
/// assert_eq!(
///     codes,
///     ["SCREENING_REQUIRED", "WAIVER_REQUIRED", "NO_RECENT_ACTIVITY", "DURATION_ABOVE_PROGRESSION"],
/// );
/// assert_eq!(e.recommended_duration, Some(SignedDuration::from_secs(90)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn evaluate(proposal: &Proposal, client: &ClientFacts, config: &Config) -> Evaluation {
    let rules = Rules {
        proposal,
        client,
        config,
        local_date: local_date(&proposal.time_zone, proposal.start),
        eval: Evaluation::default(),
    };
    rules.run()
}

struct Rules<'a> {
    proposal: &'a Proposal,
    client: &'a ClientFacts,
    config: &'a Config,
    /// The session's date in the location's time zone.
    local_date: Date,
    eval: Evaluation,
}

impl Rules<'_> {
    fn run(mut self) -> Evaluation {
        self.screening();
        self.waiver();
        if self.proposal.modality == Modality::WholeBodyCryotherapy {
            self.daily_limit();
            self.cryo_window();
            self.progression();
        }
        if self.proposal.modality == Modality::Compression {
            self.race();
        }
        // Stable order whatever the rule order: refusals, then warnings, each
        // by reason (the sort is stable, so messages keep their input order).
        self.eval.refusals.sort_by_key(|f| f.reason);
        self.eval.warnings.sort_by_key(|f| f.reason);
        self.eval
    }

    fn push(&mut self, reason: Reason, message: String) {
        self.eval.push(reason, message);
    }

    fn screening(&mut self) {
        let modality = self.proposal.modality;
        let Some(screening) = &self.client.screening else {
            if matches!(
                modality,
                Modality::WholeBodyCryotherapy | Modality::LocalCryotherapy
            ) {
                self.push(
                    Reason::ScreeningRequired,
                    format!("The client has never been screened; {modality} needs a health screening first."),
                );
            }
            return;
        };
        for condition in &screening.conditions {
            if let Condition::Other(_) = condition {
                self.push(
                    Reason::ConditionNeedsReview,
                    format!("The screening lists {condition}; staff should confirm it does not rule out {modality}."),
                );
            } else if self.contraindicates(condition) {
                self.push(
                    Reason::Contraindicated,
                    format!(
                        "The client's screening lists {condition}, which rules out {modality}."
                    ),
                );
            }
        }
        self.blood_pressure(screening);
    }

    fn contraindicates(&self, condition: &Condition) -> bool {
        use Condition as C;
        match self.proposal.modality {
            Modality::WholeBodyCryotherapy => match condition {
                C::Pregnancy
                | C::Raynauds
                | C::ColdUrticaria
                | C::Pacemaker
                | C::UncontrolledHypertension => true,
                C::CardiacStent { placed_on } => self.stent_is_recent(*placed_on),
                _ => false,
            },
            Modality::LocalCryotherapy => matches!(condition, C::Raynauds | C::ColdUrticaria),
            Modality::Compression => matches!(
                condition,
                C::DeepVeinThrombosis | C::PeripheralArterialDisease | C::CongestiveHeartFailure
            ),
            Modality::PercussionMassage => matches!(condition, C::DeepVeinThrombosis),
            Modality::InfraredSauna => matches!(condition, C::Pregnancy),
            Modality::StretchTherapy | Modality::Other => false,
        }
    }

    /// Recent until the anniversary: placed 15 January, allowed from 15 July.
    /// A date too far out to add months to counts as recent.
    fn stent_is_recent(&self, placed_on: Date) -> bool {
        Span::new()
            .try_months(self.config.stent_months)
            .and_then(|months| placed_on.checked_add(months))
            .map_or(true, |allowed_from| self.local_date < allowed_from)
    }

    fn blood_pressure(&mut self, screening: &Screening) {
        let Some(bp) = screening.blood_pressure else {
            return;
        };
        let (max_sys, max_dia) = (self.config.max_systolic, self.config.max_diastolic);
        if self.proposal.modality == Modality::WholeBodyCryotherapy
            && (bp.systolic > max_sys || bp.diastolic > max_dia)
        {
            self.push(
                Reason::Contraindicated,
                format!(
                    "The latest blood pressure, {}/{} on {}, is over the {max_sys}/{max_dia} limit for whole-body cryotherapy.",
                    bp.systolic,
                    bp.diastolic,
                    local_date(&self.proposal.time_zone, bp.measured_at),
                ),
            );
        }
    }

    fn waiver(&mut self) {
        if !self.config.waiver_required {
            return;
        }
        let start = self.proposal.start;
        let Some(waiver) = &self.client.waiver else {
            self.push(
                Reason::WaiverRequired,
                "No signed waiver is on record; the client (or a guardian, for a minor) must sign one first.".to_owned(),
            );
            return;
        };
        let problem = if waiver.signed_at > start {
            Some("the waiver on record is signed after the session starts".to_owned())
        } else if let Some(expires_at) = waiver.expires_at.filter(|e| *e <= start) {
            Some(format!(
                "the waiver on record expired on {}",
                local_date(&self.proposal.time_zone, expires_at)
            ))
        } else {
            self.config
                .required_waiver_version
                .as_ref()
                .filter(|required| **required != waiver.version)
                .map(|required| {
                    format!(
                        "the waiver on record is version {} but version {required} is required",
                        waiver.version
                    )
                })
        };
        if let Some(problem) = problem {
            self.push(
                Reason::WaiverRequired,
                format!("No current waiver: {problem}; the client must sign a new one."),
            );
        }
        if waiver
            .guardian_name
            .as_deref()
            .is_some_and(|name| !name.trim().is_empty())
        {
            return;
        }
        match self.client.date_of_birth {
            None => self.push(
                Reason::DateOfBirthUnknown,
                "The client's date of birth is unknown and the waiver names no guardian; confirm the client is an adult.".to_owned(),
            ),
            Some(born) => {
                let age = age_on(born, self.local_date);
                let adult = i32::from(self.config.adult_age);
                if age < adult {
                    self.push(
                        Reason::GuardianConsentRequired,
                        format!("The client is {age} on the session day, under {adult}; a parent or guardian must sign the waiver."),
                    );
                }
            }
        }
    }

    fn daily_limit(&mut self) {
        let tz = &self.proposal.time_zone;
        let taken = (self.client.history.iter())
            .chain(&self.client.booked)
            .filter(|s| s.modality == Modality::WholeBodyCryotherapy)
            .filter(|s| local_date(tz, s.start) == self.local_date)
            .count();
        let limit = self.config.daily_cryo_limit;
        if taken >= usize::try_from(limit).unwrap_or(usize::MAX) {
            self.push(
                Reason::DailyLimitReached,
                format!(
                    "The client already has {} of whole-body cryotherapy on {}; the limit is {limit} a day.",
                    sessions(taken),
                    self.local_date
                ),
            );
        }
    }

    fn cryo_window(&mut self) {
        let start = self.proposal.start;
        let window = self.config.cryo_window;
        let benefit = format!(
            "whole-body cryotherapy has no benefit unless within {} after activity",
            spelled(window)
        );
        let last_end = (self.client.activities.iter())
            .map(|a| a.end)
            .filter(|end| *end <= start)
            .max();
        match last_end {
            None => self.push(
                Reason::NoRecentActivity,
                format!("No activity is logged before this session; {benefit}."),
            ),
            Some(end) => {
                let since = start.duration_since(end);
                if since > window {
                    self.push(
                        Reason::OutsideCryoWindow,
                        format!(
                            "The last activity ended {since:#} before this session; {benefit}."
                        ),
                    );
                }
            }
        }
    }

    fn progression(&mut self) {
        let start = self.proposal.start;
        let previous = (self.client.history.iter())
            .filter(|s| s.modality == Modality::WholeBodyCryotherapy && s.start < start)
            .count();
        let c = self.config;
        let steps = i32::try_from(previous).unwrap_or(i32::MAX);
        let recommended = c
            .progression_start
            .saturating_add(c.progression_step.saturating_mul(steps))
            .min(c.progression_max);
        self.eval.recommended_duration = Some(recommended);
        let proposed = self.proposal.duration;
        if proposed > recommended {
            self.push(
                Reason::DurationAboveProgression,
                format!(
                    "The proposed {proposed:#} is longer than the {recommended:#} recommended after {} of whole-body cryotherapy ({:#} first, {:#} more each time, at most {:#}).",
                    sessions(previous),
                    c.progression_start,
                    c.progression_step,
                    c.progression_max
                ),
            );
        }
    }

    fn race(&mut self) {
        let tz = &self.proposal.time_zone;
        let start = self.proposal.start;
        let end = start
            .saturating_add(self.proposal.duration)
            .unwrap_or(start)
            .max(start);
        let evening = self.config.race_evening;
        let race = self.client.activities.iter().find(|race| {
            if race.kind != ActivityKind::Race {
                return false;
            }
            let eve = local_date(tz, race.start)
                .yesterday()
                .map(|day| day.to_datetime(evening));
            let Ok(from) = eve.and_then(|eve| local_instant(tz, eve)) else {
                return false;
            };
            let until = race.end.max(race.start);
            start < until && (start >= from || end > from)
        });
        if let Some(race) = race {
            let race_start = tz.to_datetime(race.start);
            self.push(
                Reason::CompressionBeforeRace,
                format!(
                    "Compression is not advised from the evening before a race until it ends; the client races on {} at {:02}:{:02}.",
                    race_start.date(),
                    race_start.hour(),
                    race_start.minute()
                ),
            );
        }
    }
}

fn local_date(tz: &TimeZone, at: Timestamp) -> Date {
    tz.to_datetime(at).date()
}

/// The instant of a local clock time; in a gap or a fold, as RFC 5545 does.
fn local_instant(tz: &TimeZone, dt: DateTime) -> Result<Timestamp, jiff::Error> {
    tz.to_ambiguous_timestamp(dt).compatible()
}

/// Whole years; someone born on 29 February turns a year older on 1 March
/// in common years.
fn age_on(born: Date, on: Date) -> i32 {
    let years = i32::from(on.year()) - i32::from(born.year());
    if (on.month(), on.day()) < (born.month(), born.day()) {
        years - 1
    } else {
        years
    }
}

/// "five hours" for whole hours up to twelve, else jiff's friendly form.
fn spelled(d: SignedDuration) -> String {
    const WORDS: [&str; 13] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    let hours = d.as_hours();
    match usize::try_from(hours).ok().and_then(|h| WORDS.get(h)) {
        Some(word) if SignedDuration::from_hours(hours) == d => {
            format!("{word} hour{}", if hours == 1 { "" } else { "s" })
        }
        _ => format!("{d:#}"),
    }
}

fn sessions(n: usize) -> String {
    format!("{n} session{}", if n == 1 { "" } else { "s" })
}
