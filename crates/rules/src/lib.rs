//! Recovery rules: a proposed session plus what the studio knows about the
//! client, in; refusals and warnings with stable reason codes, out.
//!
//! Pure: no I/O, no clock, no async. The caller hands in the instant, the
//! location's time zone and the client's facts; [`evaluate`] never panics.
//!
//! # Rules
//!
//! | code | kind | fires when |
//! |---|---|---|
//! | `SCREENING_REQUIRED` | refusal | whole-body or local cryotherapy for a client never screened |
//! | `CONTRAINDICATED` | refusal | a screened condition (or blood pressure) rules the modality out, see below |
//! | `WAIVER_REQUIRED` | refusal | no waiver, signed after the start, expired at or before the start, or not the required version |
//! | `GUARDIAN_CONSENT_REQUIRED` | refusal | a minor on the session's local date whose waiver names no guardian |
//! | `DAILY_LIMIT_REACHED` | refusal | whole-body cryotherapy when the client already has the daily limit on that local day |
//! | `OUTSIDE_CRYO_WINDOW` | warning | whole-body cryotherapy more than the window (5 h) after the end of the last activity |
//! | `NO_RECENT_ACTIVITY` | warning | whole-body cryotherapy with no activity ended before the start |
//! | `COMPRESSION_BEFORE_RACE` | warning | compression overlapping the evening before a race through the race's end |
//! | `DURATION_ABOVE_PROGRESSION` | warning | whole-body cryotherapy longer than the progression recommends |
//! | `CONDITION_NEEDS_REVIEW` | warning | the screening lists a free-text condition the rules cannot judge |
//! | `DATE_OF_BIRTH_UNKNOWN` | warning | the waiver names no guardian and the age cannot be computed |
//!
//! Contraindications by modality:
//!
//! * whole-body cryotherapy: pregnancy, Raynaud's, cold urticaria, pacemaker,
//!   uncontrolled hypertension, a cardiac stent placed less than
//!   [`Config::stent_months`] ago (allowed again on the anniversary date), the
//!   latest blood pressure above [`Config::max_systolic`] or
//!   [`Config::max_diastolic`] (either number over; exactly at the limit is fine);
//! * local cryotherapy: Raynaud's and cold urticaria (the local cold reactions;
//!   the others are systemic responses to whole-body cold);
//! * compression: deep vein thrombosis, peripheral arterial disease, congestive
//!   heart failure;
//! * percussion massage: deep vein thrombosis;
//! * infrared sauna: pregnancy;
//! * stretch therapy and other: none.
//!
//! Days, birthdays, stent anniversaries and race evenings are all taken in the
//! location's time zone ([`Proposal::time_zone`]), so they follow daylight
//! saving changes.
//!
//! # Decisions where the studio's rules are silent
//!
//! * Screening is required for local cryotherapy too: Raynaud's and cold
//!   urticaria can only be ruled out by asking. Other modalities need none.
//! * The cryo window counts activities of any kind whose end is at or before
//!   the session start; the latest such end is "the last activity". Exactly
//!   the window after it is inside. With no such activity the warning is
//!   `NO_RECENT_ACTIVITY` (log the activity) rather than `OUTSIDE_CRYO_WINDOW`
//!   (too late); both sentences say there is "no benefit unless within five
//!   hours after activity". Window and progression apply to whole-body
//!   cryotherapy only.
//! * Compression warns when the session overlaps the span from
//!   [`Config::race_evening`] on the local day before the race's start to the
//!   race's end. After the race has ended, even on race day, compression is
//!   fine: it is good right after a long run. One warning names the first race.
//! * The daily limit counts whole-body cryotherapy only (local cryotherapy is a
//!   spot treatment that may be repeated), booked or taken, before or after
//!   the proposal on its local day.
//! * Progression counts whole-body cryotherapy sessions taken (`history`;
//!   never `booked`: a session that has not happened is no experience) before
//!   the proposal; a longer proposal is a warning, never a refusal.
//! * A waiver is current when signed at or before the start and expiring after
//!   it (`expires_at` is the first instant it no longer covers). With
//!   [`Config::waiver_required`] off, neither waiver nor guardian is checked.
//! * Guardian consent is checked against the waiver on record. Age is in
//!   whole years on the session's local date (adult on the birthday; a
//!   29 February birthday falls on 1 March in common years). An unknown date
//!   of birth without a guardian is the warning `DATE_OF_BIRTH_UNKNOWN`.
//! * A free-text [`Condition::Other`] never refuses; it warns
//!   `CONDITION_NEEDS_REVIEW` for every modality.
//! * A stent date too far out to add months to counts as recent (refuse).

mod config;
mod facts;
mod outcome;
mod rank;
mod rules;

pub use config::Config;
pub use facts::{
    Activity, ActivityKind, BloodPressure, ClientFacts, Condition, Modality, Proposal, Screening,
    Session, Waiver,
};
pub use outcome::{Evaluation, Finding, Reason};
pub use rank::{Candidate, Fit, rank};
pub use rules::evaluate;
