//! Availability, holds, bookings and the session lifecycle.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use recovery_kit::db::{MAX_ATTEMPTS, is_exclusion_violation, is_retryable};
use recovery_kit::events::Event;
use recovery_kit::idempotency::{Key, Once, Step};
use recovery_kit::ids::{new_id, parse_id};
use recovery_kit::page::Page;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Engine, Error, Role, Violations};
use recovery_proto::booking::v1 as pb;
use recovery_proto::tenancy::v1 as tenancy;
use recovery_scheduling as sched;
use sqlx::{AnyConnection, Row as _};

use crate::model::{self, status, text, ts};
use crate::store::{self, Allocation, Treatment};
use crate::{BOOKING_TOPIC, Bookings, DESK, FLOOR, IDEMPOTENCY_TABLE};

/// The longest hold.
const MAX_HOLD: SignedDuration = SignedDuration::from_mins(15);
/// The hold a caller gets without asking for a length.
const DEFAULT_HOLD: SignedDuration = SignedDuration::from_mins(5);
/// Statuses that occupy the client's day.
const ACTIVE: &str = "'booked', 'checked_in', 'in_session', 'completed'";

/// Why one attempt of a booking transaction did not commit.
enum Attempt {
    /// Another transaction took a resource first (PostgreSQL): try again.
    Conflict,
    /// A serialization failure or busy database: try again.
    Busy,
    /// A final answer.
    Fail(Error),
}

impl From<sqlx::Error> for Attempt {
    fn from(error: sqlx::Error) -> Self {
        if is_exclusion_violation(&error) {
            Attempt::Conflict
        } else if is_retryable(&error) {
            Attempt::Busy
        } else {
            Attempt::Fail(error.into())
        }
    }
}

impl From<Error> for Attempt {
    fn from(error: Error) -> Self {
        Attempt::Fail(error)
    }
}

fn slot_unavailable() -> Error {
    Error::precondition(
        "SLOT_UNAVAILABLE",
        "the slot is no longer free: search availability again",
    )
}

/// The final error after `MAX_ATTEMPTS` attempts ended in `last`.
fn exhausted(last: Attempt) -> Error {
    match last {
        Attempt::Conflict => slot_unavailable(),
        Attempt::Busy => Error::Unavailable("database busy".into()),
        Attempt::Fail(error) => error,
    }
}

fn illegal(from: &str, to: &str) -> Error {
    Error::FailedPrecondition {
        reason: "ILLEGAL_TRANSITION",
        message: format!("a {from} booking cannot become {to}"),
        metadata: HashMap::from([
            ("from".to_owned(), from.to_owned()),
            ("to".to_owned(), to.to_owned()),
        ]),
    }
}

/// Maps the scheduler's refusals to the caller's fields.
fn sched_error(error: &sched::Error) -> Error {
    match error {
        sched::Error::SlotUnavailable => slot_unavailable(),
        sched::Error::Preference => Error::invalid(
            "resource_id",
            "not a resource of this location that the treatment needs",
        ),
        sched::Error::WindowEnd => Error::invalid("end_time", "must be after start_time"),
        sched::Error::WindowTooLong => {
            Error::invalid("end_time", "at most 14 days after start_time")
        }
        other => Error::Internal(anyhow::anyhow!(
            "stored catalog rejected by the scheduler: {other}"
        )),
    }
}

/// Refuses what the treatment's policy forbids at `now`.
fn check_policy(
    treatment: &Treatment,
    start: Timestamp,
    now: Timestamp,
    new: bool,
) -> Result<(), Error> {
    if new && treatment.archive_time.is_some() {
        return Err(Error::precondition(
            "TREATMENT_ARCHIVED",
            "the treatment is archived and takes no new bookings",
        ));
    }
    if start < now {
        return Err(Error::precondition(
            "START_IN_PAST",
            "the session's start has passed",
        ));
    }
    if start < now.saturating_add(treatment.min_notice).unwrap_or(now) {
        return Err(Error::precondition(
            "TOO_SHORT_NOTICE",
            format!(
                "this treatment must be booked at least {} minutes ahead",
                treatment.min_notice.as_mins()
            ),
        ));
    }
    let horizon = SignedDuration::from_hours(24 * treatment.max_days_ahead);
    if start > now.saturating_add(horizon).unwrap_or(now) {
        return Err(Error::precondition(
            "TOO_FAR_AHEAD",
            format!(
                "this treatment is booked at most {} days ahead",
                treatment.max_days_ahead
            ),
        ));
    }
    Ok(())
}

/// A location as the scheduler needs it.
struct Place {
    location: tenancy::Location,
    schedule: sched::Location,
    tz: jiff::tz::TimeZone,
}

fn optional_id(value: &str, field: &str, v: &mut Violations) -> Option<String> {
    if value.is_empty() {
        None
    } else {
        v.check(field, parse_id(value))
    }
}

impl Bookings {
    async fn place(&self, caller: &Caller, location_id: &str) -> Result<Place, Error> {
        let location = self
            .directory
            .location(caller, location_id, "location_id")
            .await?;
        let (schedule, tz) = model::location(&location).map_err(Error::Internal)?;
        Ok(Place {
            location,
            schedule,
            tz,
        })
    }

    fn publish(&self, booking: &pb::Booking) {
        self.bus.publish(Event::new(
            BOOKING_TOPIC,
            booking.tenant_id.clone(),
            booking.location_id.clone(),
            prost::Message::encode_to_vec(booking),
        ));
    }

    /// Picks free resources for a session at `start` and allocates them.
    #[allow(clippy::too_many_arguments)]
    async fn occupy(
        &self,
        tx: &mut AnyConnection,
        place: &Place,
        treatment: &Treatment,
        start: Timestamp,
        preference: Option<&str>,
        owner_id: &str,
        expire: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), Attempt> {
        let tenant_id = &place.location.tenant_id;
        let margin = SignedDuration::from_hours(24);
        let from = start.saturating_sub(margin).unwrap_or(start);
        let resources = store::resources(tx, tenant_id, &place.location.id, from).await?;
        let sched_resources: Vec<sched::Resource> =
            resources.iter().map(store::Resource::to_sched).collect();
        let end = start.saturating_add(treatment.duration).unwrap_or(start);
        let busy = store::busy(tx, tenant_id, &place.location.id, start, end, now).await?;
        let assignments = sched::pick(
            &place.schedule,
            &sched_resources,
            &treatment.to_sched(),
            &busy,
            start,
            preference,
        )
        .map_err(|e| sched_error(&e))?;
        let occupied = end.saturating_add(treatment.turnover).unwrap_or(end);
        let allocations: Vec<Allocation<'_>> = assignments
            .iter()
            .filter_map(|a| resources.iter().find(|r| r.wire.id == a.resource_id))
            .map(|resource| Allocation {
                resource,
                start,
                end: occupied,
            })
            .collect();
        store::allocate(tx, tenant_id, owner_id, &allocations, expire, now).await?;
        Ok(())
    }

    /// Refuses a booking over the treatment's per-client daily limit.
    #[allow(clippy::too_many_arguments)]
    async fn check_daily_limit(
        &self,
        tx: &mut AnyConnection,
        tenant_id: &str,
        client_id: &str,
        treatment: &Treatment,
        start: Timestamp,
        tz: &jiff::tz::TimeZone,
        except: &str,
    ) -> Result<(), Attempt> {
        if treatment.max_per_day == 0 {
            return Ok(());
        }
        if self.db.engine() == Engine::Postgres {
            // Serialises one client's bookings, so two desks cannot both
            // take the last session of the day.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
                .bind(format!("{tenant_id}/{client_id}"))
                .execute(&mut *tx)
                .await?;
        }
        let day = start.to_zoned_datetime(tz.clone()).date();
        let (from, to) = model::day_bounds(day, tz).map_err(Error::Internal)?;
        let count: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM bookings WHERE tenant_id = $1 AND client_id = $2 \
             AND modality = $3 AND status IN ({ACTIVE}) AND start_us >= $4 AND start_us < $5 \
             AND id <> $6"
        ))
        .bind(tenant_id)
        .bind(client_id)
        .bind(&treatment.modality)
        .bind(to_micros(from))
        .bind(to_micros(to))
        .bind(except)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if count >= treatment.max_per_day {
            return Err(Error::FailedPrecondition {
                reason: "DAILY_LIMIT_REACHED",
                message: format!(
                    "the client already has {count} {} session(s) that day; the limit is {}",
                    treatment.modality.replace('_', " "),
                    treatment.max_per_day
                ),
                metadata: HashMap::from([("day".to_owned(), day.to_string())]),
            }
            .into());
        }
        Ok(())
    }

    async fn with_resources(&self, mut booking: pb::Booking) -> Result<pb::Booking, Error> {
        booking.resources = store::held(self.db.reader(), &booking.id).await?;
        Ok(booking)
    }

    pub(crate) async fn search_availability(
        &self,
        caller: &Caller,
        req: &pb::SearchAvailabilityRequest,
    ) -> Result<Vec<pb::Slot>, Error> {
        caller.require(DESK)?;
        let mut v = Violations::new();
        let treatment_id = v.check("treatment_id", parse_id(&req.treatment_id));
        let start = v.check("start_time", model::instant(req.start_time.as_ref()));
        let end = v.check("end_time", model::instant(req.end_time.as_ref()));
        let preference = optional_id(&req.resource_id, "resource_id", &mut v);
        if req.location_id.is_empty() {
            v.add("location_id", "required");
        }
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                v.add("end_time", "must be after start_time");
            } else if end.duration_since(start) > SignedDuration::from_hours(24 * 14) {
                v.add("end_time", "at most 14 days after start_time");
            }
        }
        let ((treatment_id, start), end) = v.finish_with(treatment_id.zip(start).zip(end))?;
        let place = self.place(caller, &req.location_id).await?;
        let treatment = store::treatment(self.db.reader(), caller, &treatment_id).await?;
        if treatment.tenant_id != place.location.tenant_id {
            return Err(Error::not_found("treatment", treatment_id));
        }
        if treatment.archive_time.is_some() {
            return Err(Error::precondition(
                "TREATMENT_ARCHIVED",
                "the treatment is archived and takes no new bookings",
            ));
        }
        let now = self.clock.now();
        let mut conn = self.db.reader().acquire().await?;
        let tenant_id = &place.location.tenant_id;
        let from = start
            .saturating_sub(SignedDuration::from_hours(24))
            .unwrap_or(start);
        let resources = store::resources(&mut conn, tenant_id, &place.location.id, from).await?;
        let busy = store::busy(&mut conn, tenant_id, &place.location.id, start, end, now).await?;
        drop(conn);
        let sched_resources: Vec<sched::Resource> =
            resources.iter().map(store::Resource::to_sched).collect();
        let slots = sched::search(
            &place.schedule,
            &sched_resources,
            &treatment.to_sched(),
            &busy,
            sched::Interval::new(start, end),
            preference.as_deref(),
        )
        .map_err(|e| sched_error(&e))?;
        Ok(slots
            .into_iter()
            .filter(|slot| check_policy(&treatment, slot.start, now, true).is_ok())
            .map(|slot| pb::Slot {
                start_time: Some(recovery_kit::time::to_proto(slot.start)),
                end_time: Some(recovery_kit::time::to_proto(slot.end)),
                free: slot
                    .free
                    .iter()
                    .map(|f| pb::KindResources {
                        kind: model::kind::value_of(f.kind),
                        resource_ids: f.candidates.iter().map(|c| (*c).to_owned()).collect(),
                    })
                    .collect(),
            })
            .collect())
    }

    pub(crate) async fn hold_slot(
        &self,
        caller: &Caller,
        req: pb::HoldSlotRequest,
    ) -> Result<pb::Hold, Error> {
        caller.require(DESK)?;
        let mut v = Violations::new();
        let treatment_id = v.check("treatment_id", parse_id(&req.treatment_id));
        let client_id = v.check("client_id", text(&req.client_id));
        let start = v.check("start_time", model::instant(req.start_time.as_ref()));
        let preference = optional_id(&req.resource_id, "resource_id", &mut v);
        let ttl = v.check(
            "ttl",
            model::duration(req.ttl.as_ref(), DEFAULT_HOLD).and_then(|d| {
                if d.is_zero() || d > MAX_HOLD {
                    Err("between 1 second and 15 minutes".to_owned())
                } else {
                    Ok(d)
                }
            }),
        );
        if req.location_id.is_empty() {
            v.add("location_id", "required");
        }
        let (((treatment_id, client_id), start), ttl) =
            v.finish_with(treatment_id.zip(client_id).zip(start).zip(ttl))?;
        let place = self.place(caller, &req.location_id).await?;
        let mut last = Attempt::Busy;
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let mut tx = self.db.begin().await?;
            let treatment = match store::treatment(&mut *tx, caller, &treatment_id).await {
                Ok(t) if t.tenant_id == place.location.tenant_id => t,
                Ok(_) => return Err(Error::not_found("treatment", treatment_id)),
                Err(e) => return Err(e),
            };
            check_policy(&treatment, start, now, true)?;
            let id = new_id();
            let expire = now.saturating_add(ttl).unwrap_or(now);
            let end = start.saturating_add(treatment.duration).unwrap_or(start);
            let attempt: Result<(), Attempt> = async {
                sqlx::query(
                    "INSERT INTO holds (id, tenant_id, location_id, treatment_id, client_id, start_us, \
                     end_us, expire_us, create_time, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&id)
                .bind(&place.location.tenant_id)
                .bind(&place.location.id)
                .bind(&treatment.id)
                .bind(&client_id)
                .bind(to_micros(start))
                .bind(to_micros(end))
                .bind(to_micros(expire))
                .bind(to_micros(now))
                .bind(&caller.key_id)
                .execute(&mut *tx)
                .await?;
                self.occupy(&mut tx, &place, &treatment, start, preference.as_deref(), &id, Some(expire), now)
                    .await
            }
            .await;
            match attempt {
                Ok(()) => {
                    let resources = store::held(&mut *tx, &id).await?;
                    tx.commit().await?;
                    tracing::info!(hold_id = %id, "slot held");
                    return Ok(pb::Hold {
                        id,
                        location_id: place.location.id.clone(),
                        treatment_id: treatment.id.clone(),
                        client_id,
                        start_time: ts(to_micros(start)),
                        end_time: ts(to_micros(end)),
                        resources,
                        expire_time: ts(to_micros(expire)),
                    });
                }
                Err(Attempt::Fail(error)) => return Err(error),
                Err(other) => last = other,
            }
        }
        Err(exhausted(last))
    }

    pub(crate) async fn create_booking(
        &self,
        caller: &Caller,
        req: pb::CreateBookingRequest,
    ) -> Result<pb::Booking, Error> {
        caller.require(DESK)?;
        let mut v = Violations::new();
        let mut fingerprint = req.clone();
        fingerprint.request_id.clear();
        let key = Key::new(
            "CreateBooking",
            caller.scope_text(),
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let hold_id = optional_id(&req.hold_id, "hold_id", &mut v);
        let (location_id, wanted) = if hold_id.is_some() {
            v.finish()?;
            let hold = sqlx::query(
                "SELECT location_id FROM holds WHERE id = $1 AND ($2 = '' OR tenant_id = $2)",
            )
            .bind(hold_id.as_deref())
            .bind(caller.scope_text())
            .fetch_optional(self.db.reader())
            .await?
            .ok_or_else(|| Error::not_found("hold", hold_id.clone().unwrap_or_default()))?;
            (hold.try_get::<String, _>("location_id")?, None)
        } else {
            let treatment_id = v.check("treatment_id", parse_id(&req.treatment_id));
            let client_id = v.check("client_id", text(&req.client_id));
            let start = v.check("start_time", model::instant(req.start_time.as_ref()));
            let preference = optional_id(&req.resource_id, "resource_id", &mut v);
            if req.location_id.is_empty() {
                v.add("location_id", "required");
            }
            let ((treatment_id, client_id), start) =
                v.finish_with(treatment_id.zip(client_id).zip(start))?;
            (
                req.location_id.clone(),
                Some((treatment_id, client_id, start, preference)),
            )
        };
        let place = self.place(caller, &location_id).await?;
        let mut once = Once::new(IDEMPOTENCY_TABLE, key.as_ref(), to_micros(self.clock.now()));
        let mut last = Attempt::Busy;
        for _ in 0..MAX_ATTEMPTS {
            let mut tx = match once.begin::<pb::Booking>(&self.db).await? {
                Step::Replay(stored) => return Ok(stored),
                Step::Work(tx) => tx,
            };
            let now = self.clock.now();
            let attempt = match (&hold_id, &wanted) {
                (Some(hold_id), _) => self.book_hold(&mut tx, caller, &place, hold_id, now).await,
                (None, Some((treatment_id, client_id, start, preference))) => {
                    self.book_direct(
                        &mut tx,
                        caller,
                        &place,
                        treatment_id,
                        client_id,
                        *start,
                        preference.as_deref(),
                        now,
                    )
                    .await
                }
                (None, None) => Err(Attempt::Fail(Error::invalid("hold_id", "required"))),
            };
            match attempt {
                Ok(booking) => {
                    if once.commit(tx, &booking).await? {
                        tracing::info!(booking_id = %booking.id, "booking created");
                        self.publish(&booking);
                        return Ok(booking);
                    }
                }
                Err(Attempt::Fail(error)) => return Err(error),
                Err(other) => last = other,
            }
        }
        Err(exhausted(last))
    }

    #[allow(clippy::too_many_arguments)]
    async fn book_direct(
        &self,
        tx: &mut AnyConnection,
        caller: &Caller,
        place: &Place,
        treatment_id: &str,
        client_id: &str,
        start: Timestamp,
        preference: Option<&str>,
        now: Timestamp,
    ) -> Result<pb::Booking, Attempt> {
        let treatment = store::treatment(&mut *tx, caller, treatment_id).await?;
        if treatment.tenant_id != place.location.tenant_id {
            return Err(Error::not_found("treatment", treatment_id).into());
        }
        check_policy(&treatment, start, now, true)?;
        let tenant_id = &place.location.tenant_id;
        self.check_daily_limit(tx, tenant_id, client_id, &treatment, start, &place.tz, "")
            .await?;
        let id = new_id();
        self.insert_booking(tx, &id, place, &treatment, client_id, start, caller, now)
            .await?;
        self.occupy(tx, place, &treatment, start, preference, &id, None, now)
            .await?;
        self.load_booking(tx, &id).await
    }

    async fn book_hold(
        &self,
        tx: &mut AnyConnection,
        caller: &Caller,
        place: &Place,
        hold_id: &str,
        now: Timestamp,
    ) -> Result<pb::Booking, Attempt> {
        let hold = sqlx::query(&format!(
            "SELECT treatment_id, client_id, start_us, expire_us, booking_id FROM holds \
             WHERE id = $1 AND ($2 = '' OR tenant_id = $2){}",
            self.db.lock_rows()
        ))
        .bind(hold_id)
        .bind(caller.scope_text())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("hold", hold_id))?;
        if let Some(booking_id) = hold.try_get::<Option<String>, _>("booking_id")? {
            return Err(Error::FailedPrecondition {
                reason: "HOLD_ALREADY_BOOKED",
                message: "this hold was booked already".into(),
                metadata: HashMap::from([("booking_id".to_owned(), booking_id)]),
            }
            .into());
        }
        if from_micros(hold.try_get("expire_us")?) <= now {
            return Err(Error::precondition(
                "HOLD_EXPIRED",
                "the hold has expired: search availability and book again",
            )
            .into());
        }
        let treatment_id: String = hold.try_get("treatment_id")?;
        let client_id: String = hold.try_get("client_id")?;
        let start = from_micros(hold.try_get("start_us")?);
        let treatment = store::treatment(&mut *tx, caller, &treatment_id).await?;
        check_policy(&treatment, start, now, true)?;
        let tenant_id = &place.location.tenant_id;
        self.check_daily_limit(tx, tenant_id, &client_id, &treatment, start, &place.tz, "")
            .await?;
        let id = new_id();
        self.insert_booking(tx, &id, place, &treatment, &client_id, start, caller, now)
            .await?;
        sqlx::query("UPDATE allocations SET owner_id = $1, expire_us = NULL WHERE owner_id = $2")
            .bind(&id)
            .bind(hold_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE holds SET booking_id = $1 WHERE id = $2")
            .bind(&id)
            .bind(hold_id)
            .execute(&mut *tx)
            .await?;
        self.load_booking(tx, &id).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_booking(
        &self,
        tx: &mut AnyConnection,
        id: &str,
        place: &Place,
        treatment: &Treatment,
        client_id: &str,
        start: Timestamp,
        caller: &Caller,
        now: Timestamp,
    ) -> Result<(), Attempt> {
        let end = start.saturating_add(treatment.duration).unwrap_or(start);
        sqlx::query(
            "INSERT INTO bookings (id, tenant_id, location_id, treatment_id, modality, client_id, \
             start_us, end_us, status, late_cancel, cancel_reason, create_time, update_time, \
             created_by, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'booked', 0, '', $9, $9, $10, $10)",
        )
        .bind(id)
        .bind(&place.location.tenant_id)
        .bind(&place.location.id)
        .bind(&treatment.id)
        .bind(&treatment.modality)
        .bind(client_id)
        .bind(to_micros(start))
        .bind(to_micros(end))
        .bind(to_micros(now))
        .bind(&caller.key_id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn load_booking(&self, tx: &mut AnyConnection, id: &str) -> Result<pb::Booking, Attempt> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM bookings WHERE id = $1",
            store::BOOKING_COLUMNS
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let mut booking = store::booking(&row)?;
        booking.resources = store::held(&mut *tx, id).await?;
        Ok(booking)
    }

    pub(crate) async fn get_booking(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::Booking, Error> {
        caller.require(DESK)?;
        let id = parse_id(id).map_err(|e| Error::invalid("id", e))?;
        let row = sqlx::query(&format!(
            "SELECT {} FROM bookings WHERE id = $1 AND ($2 = '' OR tenant_id = $2)",
            store::BOOKING_COLUMNS
        ))
        .bind(&id)
        .bind(caller.scope_text())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or_else(|| Error::not_found("booking", &id))?;
        self.with_resources(store::booking(&row)?).await
    }

    pub(crate) async fn list_bookings(
        &self,
        caller: &Caller,
        req: &pb::ListBookingsRequest,
    ) -> Result<pb::ListBookingsResponse, Error> {
        caller.require(DESK)?;
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, &mut v);
        let status_filter = match pb::BookingStatus::try_from(req.status) {
            Ok(pb::BookingStatus::Unspecified) => Some(""),
            Ok(_) => status::name_of(req.status),
            Err(_) => {
                v.add("status", "not a BOOKING_STATUS_…");
                None
            }
        };
        let by_day = !req.location_id.is_empty() || !req.day.is_empty();
        let day = if by_day {
            v.check("day", model::date(&req.day))
        } else {
            None
        };
        if by_day && req.location_id.is_empty() {
            v.add("location_id", "required with day");
        }
        if !by_day && req.client_id.is_empty() {
            v.add("location_id", "name a location and day, or a client");
        }
        let status_filter = v.finish_with(status_filter)?;
        let (filter, a, b, c) = if let Some(day) = day {
            let place = self.place(caller, &req.location_id).await?;
            let (from, to) = model::day_bounds(day, &place.tz).map_err(Error::Internal)?;
            (
                "location_id = $2 AND start_us >= $3 AND start_us < $4",
                place.location.id,
                to_micros(from),
                to_micros(to),
            )
        } else {
            (
                "client_id = $2 AND $3 = $3 AND $4 = $4",
                req.client_id.clone(),
                0,
                0,
            )
        };
        let rows = sqlx::query(&format!(
            "SELECT {} FROM bookings WHERE ($1 = '' OR tenant_id = $1) AND {filter} \
             AND ($5 = '' OR status = $5) \
             AND ($6 = '' OR (start_us, id) > (SELECT start_us, id FROM bookings WHERE id = $6)) \
             ORDER BY start_us, id LIMIT $7",
            store::BOOKING_COLUMNS
        ))
        .bind(caller.scope_text())
        .bind(&a)
        .bind(b)
        .bind(c)
        .bind(status_filter)
        .bind(page.cursor())
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await?;
        let mut bookings = Vec::with_capacity(rows.len());
        for row in &rows {
            bookings.push(self.with_resources(store::booking(row)?).await?);
        }
        let next_page_token = page.finish(&mut bookings, |b| &b.id);
        Ok(pb::ListBookingsResponse {
            bookings,
            next_page_token,
        })
    }

    pub(crate) async fn reschedule_booking(
        &self,
        caller: &Caller,
        req: &pb::RescheduleBookingRequest,
    ) -> Result<pb::Booking, Error> {
        caller.require(DESK)?;
        let mut v = Violations::new();
        let id = v.check("id", parse_id(&req.id));
        let start = v.check("start_time", model::instant(req.start_time.as_ref()));
        let preference = optional_id(&req.resource_id, "resource_id", &mut v);
        let (id, start) = v.finish_with(id.zip(start))?;
        let location_id: String = sqlx::query(
            "SELECT location_id FROM bookings WHERE id = $1 AND ($2 = '' OR tenant_id = $2)",
        )
        .bind(&id)
        .bind(caller.scope_text())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or_else(|| Error::not_found("booking", &id))?
        .try_get("location_id")?;
        let place = self.place(caller, &location_id).await?;
        let mut last = Attempt::Busy;
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let mut tx = self.db.begin().await?;
            let attempt: Result<pb::Booking, Attempt> = async {
                let (booking, current) =
                    store::booking_for_update(&mut tx, caller, &id, self.db.lock_rows()).await?;
                if current != "booked" {
                    return Err(illegal(&current, "rescheduled").into());
                }
                let treatment = store::treatment(&mut *tx, caller, &booking.treatment_id).await?;
                check_policy(&treatment, start, now, false)?;
                self.check_daily_limit(
                    &mut tx,
                    &booking.tenant_id,
                    &booking.client_id,
                    &treatment,
                    start,
                    &place.tz,
                    &id,
                )
                .await?;
                // Free the old slot inside the transaction: it is only gone
                // for good if the new one is taken.
                sqlx::query("DELETE FROM allocations WHERE owner_id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                self.occupy(&mut tx, &place, &treatment, start, preference.as_deref(), &id, None, now)
                    .await?;
                let end = start.saturating_add(treatment.duration).unwrap_or(start);
                sqlx::query(
                    "UPDATE bookings SET start_us = $1, end_us = $2, update_time = $3, updated_by = $4 \
                     WHERE id = $5",
                )
                .bind(to_micros(start))
                .bind(to_micros(end))
                .bind(to_micros(now))
                .bind(&caller.key_id)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                self.load_booking(&mut tx, &id).await
            }
            .await;
            match attempt {
                Ok(booking) => {
                    tx.commit().await?;
                    tracing::info!(booking_id = %id, "booking rescheduled");
                    self.publish(&booking);
                    return Ok(booking);
                }
                Err(Attempt::Fail(error)) => return Err(error),
                Err(other) => last = other,
            }
        }
        Err(exhausted(last))
    }

    pub(crate) async fn cancel_booking(
        &self,
        caller: &Caller,
        req: &pb::CancelBookingRequest,
    ) -> Result<pb::Booking, Error> {
        caller.require(DESK)?;
        let mut v = Violations::new();
        let id = v.check("id", parse_id(&req.id));
        let reason = if req.reason.trim().is_empty() {
            Some(String::new())
        } else {
            v.check("reason", text(&req.reason))
        };
        let (id, reason) = v.finish_with(id.zip(reason))?;
        self.transition(
            caller,
            &id,
            DESK,
            &["booked", "checked_in"],
            "cancelled",
            |booking, treatment, now| {
                let start = booking
                    .start_time
                    .as_ref()
                    .and_then(|t| recovery_kit::time::from_proto(t).ok());
                let late = start.is_some_and(|start| {
                    now > start.saturating_sub(treatment.late_cancel).unwrap_or(start)
                }) && !treatment.late_cancel.is_zero();
                Ok(Change {
                    free: true,
                    late_cancel: late,
                    cancel_reason: Some(reason.clone()),
                })
            },
        )
        .await
    }

    /// Moves a booking along its lifecycle.
    pub(crate) async fn lifecycle(
        &self,
        caller: &Caller,
        id: &str,
        to: &'static str,
    ) -> Result<pb::Booking, Error> {
        let id = parse_id(id).map_err(|e| Error::invalid("id", e))?;
        let (roles, from): (&[Role], &[&str]) = match to {
            "in_session" => (FLOOR, &["checked_in"]),
            "completed" => (FLOOR, &["in_session"]),
            // checked_in and no_show
            _ => (DESK, &["booked"]),
        };
        self.transition(caller, &id, roles, from, to, |booking, _, now| {
            let start = booking
                .start_time
                .as_ref()
                .and_then(|t| recovery_kit::time::from_proto(t).ok());
            if to == "no_show" && start.is_some_and(|start| now < start) {
                return Err(Error::precondition(
                    "SESSION_NOT_STARTED",
                    "a client can be marked a no-show only once the session's start has passed",
                ));
            }
            Ok(Change {
                // A no-show frees the rest of the slot for walk-ins.
                free: to == "no_show",
                late_cancel: false,
                cancel_reason: None,
            })
        })
        .await
    }

    async fn transition(
        &self,
        caller: &Caller,
        id: &str,
        roles: &[Role],
        from: &[&str],
        to: &str,
        decide: impl Fn(&pb::Booking, &Treatment, Timestamp) -> Result<Change, Error>,
    ) -> Result<pb::Booking, Error> {
        caller.require(roles)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (booking, current) =
            store::booking_for_update(&mut tx, caller, id, self.db.lock_rows()).await?;
        if !from.contains(&current.as_str()) {
            return Err(illegal(&current, to));
        }
        let treatment = store::treatment(&mut *tx, caller, &booking.treatment_id).await?;
        let change = decide(&booking, &treatment, now)?;
        sqlx::query(
            "UPDATE bookings SET status = $1, late_cancel = $2, cancel_reason = $3, update_time = $4, \
             updated_by = $5 WHERE id = $6",
        )
        .bind(to)
        .bind(i64::from(change.late_cancel))
        .bind(change.cancel_reason.unwrap_or(booking.cancel_reason.clone()))
        .bind(to_micros(now))
        .bind(&caller.key_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if change.free {
            sqlx::query("DELETE FROM allocations WHERE owner_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let updated = match self.load_booking(&mut tx, id).await {
            Ok(b) => b,
            Err(Attempt::Fail(e)) => return Err(e),
            Err(_) => return Err(Error::Unavailable("database busy".into())),
        };
        tx.commit().await?;
        tracing::info!(booking_id = %id, from = %current, to, "booking moved");
        self.publish(&updated);
        Ok(updated)
    }
}

/// What a lifecycle move changes besides the status.
struct Change {
    free: bool,
    late_cancel: bool,
    cancel_reason: Option<String>,
}
