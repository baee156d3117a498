//! Before a hold or booking exists: the client must be a real, unerased
//! client of protocols, and the studio's rules must not refuse the session.
//! Warnings and the progression's recommended length are kept. In the
//! booking's transaction, under the client's lock: the treatment's daily
//! limit.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use recovery_kit::db::Attempt;
use recovery_kit::error::DOMAIN;
use recovery_kit::time::from_micros;
use recovery_kit::{Caller, Error, reason};
use recovery_peers::{Booked, Finding, Proposal, Standing};
use sqlx::AnyConnection;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::Bookings;
use crate::availability::{Place, check_policy};
use crate::store::{self, Treatment};
use crate::{bookings, wire};

/// Refusals the rules give, by their stable reason; another reason is
/// answered as `RULES_REFUSED` with the rule's own code in `rule`.
const RULES_REFUSED: &str = "RULES_REFUSED";

/// How far around a session the client's other bookings matter to the
/// rules (the daily limit looks at the local day).
const NEARBY: SignedDuration = SignedDuration::from_hours(24);

/// The window around a session starting at `start` whose bookings of the
/// client the rules count.
pub(crate) fn nearby(start: Timestamp) -> (Timestamp, Timestamp) {
    (
        start.saturating_sub(NEARBY).unwrap_or(start),
        start.saturating_add(NEARBY).unwrap_or(start),
    )
}

/// A session to vet: for whom, what, where and when.
pub(crate) struct Candidate<'a> {
    pub(crate) tenant_id: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) treatment: &'a Treatment,
    pub(crate) location_id: &'a str,
    pub(crate) start: Timestamp,
    /// The booking being moved: not counted against itself.
    pub(crate) moving: Option<&'a str>,
}

/// What the rules said and did not refuse.
#[derive(Debug, Default)]
pub(crate) struct Vetted {
    pub(crate) warnings: Vec<Finding>,
    /// Seconds.
    pub(crate) recommended_s: Option<i64>,
}

/// NOT_FOUND for a client protocols does not know, naming the field.
fn unknown_client(client_id: &str) -> Error {
    Error::Upstream(tonic::Status::with_error_details(
        Code::NotFound,
        format!("client {client_id} not found"),
        ErrorDetails::with_error_info(
            "NOT_FOUND",
            DOMAIN,
            HashMap::from([
                ("kind".to_owned(), "client".to_owned()),
                ("id".to_owned(), client_id.to_owned()),
                ("field".to_owned(), "client_id".to_owned()),
            ]),
        ),
    ))
}

/// The refusal of a rule, with its reason and sentence.
pub(crate) fn refused(finding: &Finding, client_id: &str) -> Error {
    let known = recovery_rules::Reason::ALL
        .iter()
        .find(|r| r.is_refusal() && r.as_str() == finding.reason)
        .map(|r| r.as_str());
    match known {
        Some(reason) => Error::refuse(reason, &finding.message, &[("client_id", client_id)]),
        None => Error::refuse(
            RULES_REFUSED,
            &finding.message,
            &[("client_id", client_id), ("rule", &finding.reason)],
        ),
    }
}

impl Bookings {
    /// Refuses a booking over the treatment's per-client daily limit;
    /// `except` is the booking being moved or made (written already). When
    /// the treatment has a limit, the caller holds the client's lock
    /// (`store::bookings::lock_client`), taken before any location's turn
    /// and decided by this same treatment, so that two desks cannot both
    /// take the client's last session of the day.
    pub(crate) async fn check_daily_limit(
        &self,
        tx: &mut AnyConnection,
        booked: &bookings::Booked<'_>,
        except: Option<&str>,
    ) -> Result<(), Attempt> {
        let Some(limit) = DailyLimit::of(booked)? else {
            return Ok(());
        };
        let count = store::bookings::count_active(
            tx,
            &booked.place.location.tenant_id,
            booked.client_id,
            booked.treatment.modality,
            limit.bounds,
            except,
        )
        .await?;
        Ok(limit.check(count)?)
    }

    /// Checks the client with protocols and asks the rules; a refusal (or an
    /// unknown or erased client) is the answer, and nothing was written.
    ///
    /// The rules refuse an unknown or erased client themselves, so the
    /// client is read once, by the evaluation.
    pub(crate) async fn vet(&self, c: &Candidate<'_>) -> Result<Vetted, Error> {
        // The bookings nearby, then protocols' reads about the client (in
        // process, the same task): one reader connection for all three.
        self.db
            .reading(async {
                let booked = {
                    let mut conn = self.db.read().await?;
                    let window = nearby(c.start);
                    store::bookings::upcoming(&mut conn, c.tenant_id, c.client_id, window, c.moving)
                        .await?
                };
                self.judge(c, &booked).await
            })
            .await
    }

    /// What a new booking at `place` reads and asks before it writes
    /// anything: the tenant's catalog version and the client's bookings
    /// around the session in one statement, the treatment (kept under that
    /// version when it can be: the rules, the devices, the policy and the
    /// transaction all go by this one read), its policy, then the rules,
    /// whose reads in protocols (in process) take the same connection.
    pub(crate) async fn vet_new(
        &self,
        caller: &Caller,
        place: &Place,
        (treatment_id, client_id, start): (&str, &str, Timestamp),
        now: Timestamp,
    ) -> Result<(Treatment, Vetted), Error> {
        let tenant_id = place.location.tenant_id.as_str();
        self.db
            .reading(async {
                let (catalog, booked) = {
                    let mut conn = self.db.read().await?;
                    let window = nearby(start);
                    store::bookings::upcoming_with_catalog(&mut conn, tenant_id, client_id, window)
                        .await?
                };
                let treatment = self
                    .bookable_at(&mut None, caller, place, treatment_id, catalog)
                    .await?;
                check_policy(&treatment, start, now, true)?;
                let candidate = Candidate {
                    tenant_id,
                    client_id,
                    treatment: &treatment,
                    location_id: &place.location.id,
                    start,
                    moving: None,
                };
                let vetted = self.judge(&candidate, &booked).await?;
                Ok((treatment, vetted))
            })
            .await
    }

    /// [`Bookings::vet`] with the client's bookings around the session
    /// read already (in [`nearby`], not counting the one `c` moves). Run
    /// inside the caller's `Db::reading`, protocols' reads (in process)
    /// take its connection.
    async fn judge(
        &self,
        c: &Candidate<'_>,
        booked: &[store::bookings::Nearby],
    ) -> Result<Vetted, Error> {
        let proposal = Proposal {
            client_id: c.client_id.to_owned(),
            modality: c.treatment.modality,
            start: c.start,
            duration: c.treatment.terms.duration,
            location_id: c.location_id.to_owned(),
            booked: as_facts(booked),
        };
        let verdict = self
            .peers
            .clients
            .evaluate(c.tenant_id, &proposal)
            .await
            .map_err(|e| about_client(e, c.client_id))?;
        if let Some(refusal) = verdict.refusals.first() {
            tracing::info!(reason = %refusal.reason, "the rules refused a session");
            return Err(refused(refusal, c.client_id));
        }
        Ok(Vetted {
            warnings: verdict.warnings,
            recommended_s: verdict.recommended_duration.map(|d| d.as_secs()),
        })
    }

    /// The client's active bookings in `[from, to)`, as facts for the
    /// rules.
    pub(crate) async fn booked_between(
        &self,
        tenant_id: &str,
        client_id: &str,
        (from, to): (Timestamp, Timestamp),
    ) -> Result<Vec<Booked>, Error> {
        let mut conn = self.db.read().await?;
        let window = (nearby(from).0, nearby(to).1);
        let booked =
            store::bookings::upcoming(&mut conn, tenant_id, client_id, window, None).await?;
        Ok(as_facts(&booked))
    }

    /// Protocols must know the client, and they must not be erased.
    pub(crate) async fn check_standing(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<(), Error> {
        match self.peers.clients.standing(tenant_id, client_id).await {
            Ok(Standing::Erased) => Err(erased(client_id)),
            // A malformed id names no client either: the one argument of
            // the call is the client id.
            Err(Error::NotFound { .. } | Error::InvalidArgument(_)) => {
                Err(unknown_client(client_id))
            }
            Err(Error::Upstream(status))
                if matches!(status.code(), Code::NotFound | Code::InvalidArgument) =>
            {
                Err(unknown_client(client_id))
            }
            Ok(Standing::Active) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

/// `CLIENT_ERASED` for a client whose personal data protocols erased.
fn erased(client_id: &str) -> Error {
    Error::refuse(
        reason::CLIENT_ERASED,
        "the client's personal data was erased: they cannot be booked",
        &[("client_id", client_id)],
    )
}

/// An evaluation's failure as booking answers it: protocols refusing the
/// client (unknown, malformed or erased, in process or over gRPC) is
/// answered as [`Bookings::check_standing`] answers it; anything else as it
/// came (an unknown activity, say, or protocols being unavailable).
pub(crate) fn about_client(error: Error, client_id: &str) -> Error {
    let names_client = |field: &str| field == "client_id";
    match &error {
        Error::NotFound { kind: "client", .. } => unknown_client(client_id),
        Error::InvalidArgument(violations) if violations.iter().any(|v| names_client(&v.field)) => {
            unknown_client(client_id)
        }
        Error::FailedPrecondition { reason, .. } if *reason == reason::CLIENT_ERASED => {
            erased(client_id)
        }
        Error::Upstream(status) => {
            let details = status.get_error_details();
            let info = details.error_info();
            let kind = info
                .and_then(|i| i.metadata.get("kind"))
                .map(String::as_str);
            match status.code() {
                Code::NotFound if kind == Some("client") => unknown_client(client_id),
                Code::InvalidArgument
                    if details.bad_request().is_some_and(|b| {
                        b.field_violations.iter().any(|f| names_client(&f.field))
                    }) =>
                {
                    unknown_client(client_id)
                }
                Code::FailedPrecondition
                    if info.is_some_and(|i| i.reason == reason::CLIENT_ERASED) =>
                {
                    erased(client_id)
                }
                _ => error,
            }
        }
        _ => error,
    }
}

/// Stored bookings as facts for the rules.
fn as_facts(booked: &[store::bookings::Nearby]) -> Vec<Booked> {
    booked
        .iter()
        .map(|b| Booked {
            modality: b.modality,
            start: from_micros(b.start),
            duration: from_micros(b.end).duration_since(from_micros(b.start)),
        })
        .collect()
}

/// A treatment's per-client daily limit on the day a session starts.
pub(crate) struct DailyLimit {
    day: jiff::civil::Date,
    /// The day in the location's time zone, as instants.
    pub(crate) bounds: (Timestamp, Timestamp),
    max: i64,
    modality: recovery_rules::Modality,
}

impl DailyLimit {
    /// The limit `booked`'s treatment sets on its day; `None` without one.
    pub(crate) fn of(booked: &bookings::Booked<'_>) -> Result<Option<Self>, Error> {
        let treatment = booked.treatment;
        if treatment.terms.max_per_day == 0 {
            return Ok(None);
        }
        let tz = &booked.place.tz;
        let day = booked.start.to_zoned_datetime(tz.clone()).date();
        let bounds = wire::day_bounds(day, tz).map_err(Error::Internal)?;
        Ok(Some(Self {
            day,
            bounds,
            max: treatment.terms.max_per_day,
            modality: treatment.modality,
        }))
    }

    /// Refuses when the client has `count` other sessions that day already.
    pub(crate) fn check(&self, count: i64) -> Result<(), Error> {
        if count < self.max {
            return Ok(());
        }
        Err(Error::refuse(
            "DAILY_LIMIT_REACHED",
            format!(
                "the client already has {count} {} session(s) that day; the limit is {}",
                self.modality.code().replace('_', " "),
                self.max
            ),
            &[("day", &self.day.to_string())],
        ))
    }
}
