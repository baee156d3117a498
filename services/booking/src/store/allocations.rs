//! Allocations (what occupies a resource when) and holds, which are
//! allocations with an expiry.

use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;

use recovery_kit::db::{Engine, engine_of, placeholders};
use recovery_kit::idempotency::Record;
use recovery_kit::ids::new_id;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Lock, Scope};
use recovery_scheduling as sched;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::Resource;
use crate::resources::ResourceKind;
use crate::wire::{MAX_SESSION, MAX_TURNOVER, Named as _, stored};

/// What [`lock_location`] answers: the location's calendar version as the
/// transaction found it, and on PostgreSQL the version it leaves at commit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocationLock {
    pub(crate) found: i64,
    /// PostgreSQL: the lock bumps the version once, for every change the
    /// transaction makes to the location's calendar after it (the triggers
    /// of migration 20092 skip a location their transaction bumped so). On
    /// SQLite the triggers bump for each change: read the version after.
    pub(crate) leaves: Option<i64>,
}

/// Serialises the transactions that change a location's calendar until
/// this one ends, and answers the location's calendar version, which no
/// other transaction moves until then: the location's `calendar_versions`
/// row is locked, made when there is none yet (one statement; SQLite's
/// write transactions are serialised already). Taken before the calendar
/// is read, it makes check-and-insert atomic per location, so concurrent
/// callers each see the allocations of those before them and take the
/// next free resource instead of all picking the first one and losing to
/// the exclusion constraint, which stays as the last wall. Every change to
/// the calendar bumps the same row (triggers, migration 20060), so it waits
/// here too.
pub(crate) async fn lock_location(
    conn: &mut AnyConnection,
    tenant_id: &str,
    location_id: &str,
) -> Result<LocationLock, sqlx::Error> {
    if engine_of(conn) == Engine::Postgres {
        // Bumped here, once, and the location marked bumped for the rest
        // of the transaction (a local setting, gone at its end): nothing
        // is left to read after the change.
        let leaves: i64 = sqlx::query_scalar(
            "WITH bumped AS (INSERT INTO calendar_versions (location_id, tenant_id, version) \
             VALUES ($1, $2, 1) ON CONFLICT (location_id) DO UPDATE \
             SET version = calendar_versions.version + 1 RETURNING version) \
             SELECT version FROM bumped WHERE set_config('recovery.calendar_bumped', \
             COALESCE(current_setting('recovery.calendar_bumped', true), '') \
             || '<' || $1 || '>', true) IS NOT NULL",
        )
        .bind(location_id)
        .bind(tenant_id)
        .fetch_one(&mut *conn)
        .await?;
        return Ok(LocationLock {
            found: leaves.saturating_sub(1),
            leaves: Some(leaves),
        });
    }
    let found = sqlx::query_scalar(
        "INSERT INTO calendar_versions (location_id, tenant_id, version) VALUES ($1, $2, 0) \
         ON CONFLICT (location_id) DO UPDATE SET version = calendar_versions.version \
         RETURNING version",
    )
    .bind(location_id)
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(LocationLock {
        found,
        leaves: None,
    })
}

/// The calendar version of a location: bumped by every change to its
/// resources, their blackouts and its allocations, in the change's own
/// transaction (migration 20060); 0 before the first. A change takes it
/// with the location's lock instead ([`lock_location`]).
pub(crate) async fn calendar_version(
    conn: &mut AnyConnection,
    scope: &Scope,
    location_id: &str,
) -> Result<i64, sqlx::Error> {
    let version: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM calendar_versions WHERE location_id = $1 AND {tenant}",
        tenant = scope.filter("tenant_id", 2),
    ))
    .bind(location_id)
    .bind(scope.tenant())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(version.unwrap_or(0))
}

/// An allocation as a calendar holds it: what it occupies, and until when
/// when it is a hold's.
#[derive(Debug, Clone)]
pub(crate) struct Occupied {
    pub(crate) busy: sched::Busy,
    pub(crate) expire: Option<Timestamp>,
}

/// What occupies a location's resources around a window: active bookings
/// and unexpired holds (expired holds free themselves here).
pub(crate) async fn busy(
    conn: &mut AnyConnection,
    scope: &Scope,
    location_id: &str,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> Result<Vec<sched::Busy>, sqlx::Error> {
    let occupied = occupied(conn, scope, location_id, from, to).await?;
    Ok(occupied
        .into_iter()
        .filter(|o| o.expire.is_none_or(|e| e > now))
        .map(|o| o.busy)
        .collect())
}

/// The allocations of a location's resources around a window, holds with
/// their expiry (expired or not).
pub(crate) async fn occupied(
    conn: &mut AnyConnection,
    scope: &Scope,
    location_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Occupied>, sqlx::Error> {
    // A day of margin: turnover and pre-cool look at neighbours.
    let margin = SignedDuration::from_hours(24);
    let from = from.saturating_sub(margin).unwrap_or(from);
    // No allocation is longer than this, so the index on (resource_id,
    // start_us) bounds the scan on both sides however long the history.
    let longest = MAX_SESSION + MAX_TURNOVER * 2;
    let rows = sqlx::query(&format!(
        "SELECT a.resource_id, a.start_us, a.end_us, a.expire_us FROM allocations a \
         JOIN resources r ON r.id = a.resource_id \
         WHERE {tenant} AND r.location_id = $2 AND a.start_us < $3 \
         AND a.until_us > $4 AND a.start_us > $5",
        tenant = scope.filter("r.tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(location_id)
    .bind(to_micros(to.saturating_add(margin).unwrap_or(to)))
    .bind(to_micros(from))
    .bind(to_micros(from.saturating_sub(longest).unwrap_or(from)))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Occupied {
                busy: sched::Busy::new(
                    row.try_get::<String, _>("resource_id")?,
                    from_micros(row.try_get("start_us")?),
                    from_micros(row.try_get("end_us")?),
                ),
                expire: row.try_get::<Option<i64>, _>("expire_us")?.map(from_micros),
            })
        })
        .collect()
}

/// One resource given to a booking or hold.
pub(crate) struct Allocation<'a> {
    pub(crate) resource: &'a Resource,
    pub(crate) start: Timestamp,
    /// Session end plus the treatment's turnover.
    pub(crate) end: Timestamp,
    /// Whether a lapsed hold may be in the way (to delete first); `false`
    /// only when the calendar read under the location's lock shows none.
    pub(crate) clear: bool,
}

/// Occupies resources for `owner_id` of `tenant_id`; expired holds in the
/// way are cleared first. On PostgreSQL an overlap fails with an exclusion
/// violation.
pub(crate) async fn allocate(
    conn: &mut AnyConnection,
    tenant_id: &str,
    owner_id: &str,
    allocations: &[Allocation<'_>],
    expire: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let placing = Placing {
        tenant_id,
        owner_id,
        expire,
        now,
    };
    for a in allocations {
        if a.clear {
            placing
                .bind_clear(sqlx::query(&Placing::clear_sql(1)), a)
                .execute(&mut *conn)
                .await?;
        }
        placing
            .bind_insert(sqlx::query(&Placing::insert_sql(1)), a)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// [`allocate`], then the calendar version of `location_id` (of
/// `tenant_id`) it leaves, as [`calendar_version`] reads it. On SQLite,
/// whose triggers bump the version for each change, the statements go in
/// one string: one hand-off to the writer's thread instead of one each.
pub(crate) async fn allocate_then_version(
    conn: &mut AnyConnection,
    (tenant_id, location_id): (&str, &str),
    owner_id: &str,
    allocations: &[Allocation<'_>],
    expire: Option<Timestamp>,
    now: Timestamp,
) -> Result<i64, sqlx::Error> {
    if engine_of(conn) == Engine::Postgres {
        allocate(conn, tenant_id, owner_id, allocations, expire, now).await?;
        return calendar_version(conn, &Scope::tenant_of(tenant_id), location_id).await;
    }
    let placing = Placing {
        tenant_id,
        owner_id,
        expire,
        now,
    };
    let mut statements = Vec::new();
    let mut next = 1;
    for a in allocations {
        if a.clear {
            statements.push(Placing::clear_sql(next));
            next += Placing::CLEAR_VALUES;
        }
        statements.push(Placing::insert_sql(next));
        next += Placing::INSERT_VALUES;
    }
    statements.push(format!(
        "SELECT version FROM calendar_versions WHERE location_id = ${next} \
         AND tenant_id = ${}",
        next + 1
    ));
    let sql = statements.join("; ");
    let query = allocations.iter().fold(sqlx::query(&sql), |query, a| {
        let query = if a.clear {
            placing.bind_clear(query, a)
        } else {
            query
        };
        placing.bind_insert(query, a)
    });
    // All rows, not `fetch_optional`: through the `Any` driver SQLite's
    // answers that with the first statement's result and drops the rest
    // unrun.
    let version: Option<i64> = query
        .bind(location_id)
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?
        .pop()
        .map(|row| row.try_get("version"))
        .transpose()?;
    Ok(version.unwrap_or(0))
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// The statements that write one owner's allocations: for each, the
/// lapsed holds in its way deleted (when it may have some), then its row.
struct Placing<'a> {
    tenant_id: &'a str,
    owner_id: &'a str,
    expire: Option<Timestamp>,
    now: Timestamp,
}

impl<'a> Placing<'a> {
    const CLEAR_VALUES: usize = 4;
    const INSERT_VALUES: usize = 9;

    /// Deletes the lapsed holds in an allocation's way; placeholders from
    /// `first` ([`Placing::bind_clear`]).
    fn clear_sql(first: usize) -> String {
        format!(
            "DELETE FROM allocations WHERE resource_id = ${first} AND expire_us IS NOT NULL \
             AND expire_us <= ${} AND start_us < ${} AND until_us > ${}",
            first + 1,
            first + 2,
            first + 3
        )
    }

    /// Writes an allocation; placeholders from `first`
    /// ([`Placing::bind_insert`]).
    fn insert_sql(first: usize) -> String {
        format!(
            "INSERT INTO allocations (id, tenant_id, resource_id, kind, owner_id, start_us, \
             end_us, until_us, expire_us) VALUES ({})",
            placeholders(first, Self::INSERT_VALUES)
        )
    }

    fn bind_clear<'q>(&self, query: AnyQuery<'q>, a: &'q Allocation<'_>) -> AnyQuery<'q> {
        query
            .bind(&a.resource.id)
            .bind(to_micros(self.now))
            .bind(to_micros(until(a)))
            .bind(to_micros(a.start))
    }

    fn bind_insert<'q>(&self, query: AnyQuery<'q>, a: &'q Allocation<'_>) -> AnyQuery<'q>
    where
        'a: 'q,
    {
        query
            .bind(new_id())
            .bind(self.tenant_id)
            .bind(&a.resource.id)
            .bind(a.resource.kind.as_str())
            .bind(self.owner_id)
            .bind(to_micros(a.start))
            .bind(to_micros(a.end))
            .bind(to_micros(until(a)))
            .bind(self.expire.map(to_micros))
    }
}

/// When `a` stops occupying its resource: its end and the resource's
/// turnover.
fn until(a: &Allocation<'_>) -> Timestamp {
    a.end.saturating_add(a.resource.turnover).unwrap_or(a.end)
}

/// What a kept calendar stands for, which [`allocate_at`] checks the
/// location's row against: the calendar version it was read (or advanced)
/// under and, when it holds a change that had not committed when the
/// calendar was picked on (`calendars`' pending changes), the mark that
/// change left on the row (migration 20096).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    pub(crate) version: i64,
    pub(crate) writer: Option<&'a str>,
}

/// PostgreSQL: [`lock_location`] and [`allocate`] in one statement, on
/// the condition that the location's row is still what `expected` says (the
/// kept calendar `allocations` were chosen on is the committed one): the
/// row is locked and bumped, marked with `writer` (unique to this
/// transaction), the location (and its resources written to, whose insert
/// trigger then has nothing to do) marked bumped, and the allocations
/// written, all or nothing. Answers the version the transaction leaves.
///
/// The row is locked whatever it holds: a holder of it that has not
/// committed yet (a change pending in the kept calendar) is waited for, and
/// the row is checked as that holder's commit left it. `None`: the version
/// had moved, the mark is not the one expected, or no row was made yet;
/// then nothing was written, the row (when there is one) is locked and
/// bumped, and the caller takes the lock the usual way (a second bump in the
/// same transaction, which tells a search nothing less).
///
/// With `answer`, the same statement also stores the call's result under
/// its request id (what `Once::commit` would store after it, inside the
/// row's hold): a row of another call with the id fails it with a unique
/// violation.
///
/// An allocation with a lapsed hold to clear is not for this statement.
pub(crate) async fn allocate_at(
    conn: &mut AnyConnection,
    (tenant_id, location_id): (&str, &str),
    (expected, writer): (Expected<'_>, &str),
    owner_id: &str,
    (allocations, expire): (&[Allocation<'_>], Option<Timestamp>),
    answer: Option<(Record<'_>, &[u8])>,
) -> Result<Option<i64>, sqlx::Error> {
    const BEFORE: usize = 7;
    const COLUMNS: usize = 6;
    let rows = (0..allocations.len())
        .map(|i| {
            let p = BEFORE + i * COLUMNS;
            format!(
                "(${}::text, ${}::text, ${}::text, ${}::bigint, ${}::bigint, ${}::bigint)",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    // The location's resources among them, marked bumped too: their
    // allocations' insert trigger is skipped (migration 20094).
    let resources = (0..allocations.len())
        .map(|i| format!("${}", BEFORE + i * COLUMNS + 2))
        .collect::<Vec<_>>()
        .join(", ");
    // Only the key in the `WHERE`: a condition on the version there would
    // be decided on the row as the statement's snapshot has it, and skip a
    // row locked by an uncommitted bump instead of waiting for it. In the
    // `RETURNING`, `prev_writer` is the mark the row held before.
    let answered = answer.map_or_else(String::new, |(record, _)| {
        let first = BEFORE + allocations.len() * COLUMNS + 1;
        format!(
            ", answered AS ({})",
            record.insert_from("bumped WHERE bumped.holds", first)
        )
    });
    let sql = format!(
        "WITH bumped AS (UPDATE calendar_versions SET version = version + 1, \
         prev_writer = writer, writer = $6 \
         WHERE location_id = $1 AND tenant_id = $2 \
         RETURNING version, version = $3::bigint + 1 AND ($7::text IS NULL \
         OR prev_writer IS NOT DISTINCT FROM $7::text) AS holds, \
         set_config('recovery.calendar_bumped', \
         COALESCE(current_setting('recovery.calendar_bumped', true), '') \
         || '<' || $1 || '>' || (SELECT COALESCE(string_agg('[' || r.id || ']', ''), '') \
         FROM resources r WHERE r.location_id = $1 AND r.tenant_id = $2 \
         AND r.id IN ({resources})), true) AS marked), \
         placed AS (INSERT INTO allocations (id, tenant_id, resource_id, kind, owner_id, \
         start_us, end_us, until_us, expire_us) \
         SELECT a.id, $2, a.resource_id, a.kind, $4, a.start_us, a.end_us, a.until_us, \
         $5::bigint FROM bumped CROSS JOIN (VALUES {rows}) \
         AS a (id, resource_id, kind, start_us, end_us, until_us) WHERE bumped.holds)\
         {answered} SELECT version FROM bumped WHERE marked IS NOT NULL AND holds"
    );
    let mut query = sqlx::query_scalar(&sql)
        .bind(location_id)
        .bind(tenant_id)
        .bind(expected.version)
        .bind(owner_id)
        .bind(expire.map(to_micros))
        .bind(writer)
        .bind(expected.writer);
    for a in allocations {
        let until = until(a);
        query = query
            .bind(new_id())
            .bind(&a.resource.id)
            .bind(a.resource.kind.as_str())
            .bind(to_micros(a.start))
            .bind(to_micros(a.end))
            .bind(to_micros(until));
    }
    if let Some((record, response)) = answer {
        query = query
            .bind(record.scope)
            .bind(record.request_id)
            .bind(record.fingerprint)
            .bind(response.to_vec())
            .bind(record.create_time);
    }
    query.fetch_optional(&mut *conn).await
}

/// One resource an owner holds.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) kind: ResourceKind,
    pub(crate) resource_id: String,
}

/// The resources held by `owner_id`, by kind and id.
pub(crate) async fn held(
    conn: &mut AnyConnection,
    owner_id: &str,
) -> Result<Vec<Held>, sqlx::Error> {
    Ok(held_by(conn, &[owner_id])
        .await?
        .remove(owner_id)
        .unwrap_or_default())
}

/// The resources each of `owners` holds, by kind and id (an owner holding
/// none is missing).
pub(crate) async fn held_by(
    conn: &mut AnyConnection,
    owners: &[&str],
) -> Result<HashMap<String, Vec<Held>>, sqlx::Error> {
    let mut out: HashMap<String, Vec<Held>> = HashMap::new();
    if owners.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT owner_id, kind, resource_id FROM allocations WHERE owner_id IN ({}) \
         ORDER BY owner_id, kind, resource_id",
        placeholders(1, owners.len())
    );
    let mut query = sqlx::query(&sql);
    for owner in owners {
        query = query.bind(*owner);
    }
    for row in query.fetch_all(&mut *conn).await? {
        out.entry(row.try_get("owner_id")?).or_default().push(Held {
            kind: stored(&row.try_get::<String, _>("kind")?)?,
            resource_id: row.try_get("resource_id")?,
        });
    }
    Ok(out)
}

/// Frees everything `owner_id` holds.
pub(crate) async fn release(conn: &mut AnyConnection, owner_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM allocations WHERE owner_id = $1")
        .bind(owner_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Hands a hold's allocations to the booking made from it, for good.
pub(crate) async fn hand_over(
    conn: &mut AnyConnection,
    hold_id: &str,
    booking_id: &str,
) -> Result<u64, sqlx::Error> {
    let handed =
        sqlx::query("UPDATE allocations SET owner_id = $1, expire_us = NULL WHERE owner_id = $2")
            .bind(booking_id)
            .bind(hold_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    sqlx::query("UPDATE holds SET booking_id = $1 WHERE id = $2")
        .bind(booking_id)
        .bind(hold_id)
        .execute(&mut *conn)
        .await?;
    Ok(handed)
}

/// A slot held for a client until it expires; instants in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Hold {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) location_id: String,
    pub(crate) treatment_id: String,
    pub(crate) client_id: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) expire: i64,
    /// The booking made from it.
    pub(crate) booking_id: Option<String>,
    /// The progression's recommended length, in seconds.
    pub(crate) recommended_s: Option<i64>,
}

impl Hold {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            location_id: row.try_get("location_id")?,
            treatment_id: row.try_get("treatment_id")?,
            client_id: row.try_get("client_id")?,
            start: row.try_get("start_us")?,
            end: row.try_get("end_us")?,
            expire: row.try_get("expire_us")?,
            booking_id: row.try_get("booking_id")?,
            recommended_s: row.try_get("recommended_s")?,
        })
    }
}

/// Stores a new hold (its allocations aside).
pub(crate) async fn insert_hold(
    conn: &mut AnyConnection,
    hold: &Hold,
    now: Timestamp,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO holds (id, tenant_id, location_id, treatment_id, client_id, start_us, \
         end_us, expire_us, create_time, created_by, recommended_s) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&hold.id)
    .bind(&hold.tenant_id)
    .bind(&hold.location_id)
    .bind(&hold.treatment_id)
    .bind(&hold.client_id)
    .bind(hold.start)
    .bind(hold.end)
    .bind(hold.expire)
    .bind(to_micros(now))
    .bind(key_id)
    .bind(hold.recommended_s)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The hold `id` if `scope` sees it.
pub(crate) async fn hold(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
    lock: Lock,
) -> Result<Option<Hold>, sqlx::Error> {
    const COLUMNS: &str = "id, tenant_id, location_id, treatment_id, client_id, start_us, \
         end_us, expire_us, booking_id, recommended_s";
    super::by_id(conn, ("holds", COLUMNS), scope, id, lock, Hold::from_row).await
}

/// Deletes what expired holds of `scope` leave: the allocations of holds
/// expired at `now` (reads ignore them already), and the hold rows, never
/// booked, expired before `forget_before` (until then booking one answers
/// `HOLD_EXPIRED`). Returns the rows deleted.
pub(crate) async fn prune_expired_holds(
    conn: &mut AnyConnection,
    scope: &Scope,
    now: i64,
    forget_before: i64,
) -> Result<u64, sqlx::Error> {
    let allocations = sqlx::query(&format!(
        "DELETE FROM allocations WHERE expire_us IS NOT NULL AND expire_us <= $1 \
         AND {tenant}",
        tenant = scope.filter("tenant_id", 2)
    ))
    .bind(now)
    .bind(scope.tenant())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let holds = sqlx::query(&format!(
        "DELETE FROM holds WHERE booking_id IS NULL AND expire_us <= $1 \
         AND {tenant}",
        tenant = scope.filter("tenant_id", 2)
    ))
    .bind(forget_before)
    .bind(scope.tenant())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(allocations + holds)
}
