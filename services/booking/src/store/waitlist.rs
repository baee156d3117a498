//! Waitlist entries and the offers made to them. An offer's slot is a hold
//! (`holds` and its `allocations`); the unique partial index
//! `waitlist_offers_one_open_per_client` keeps a client at one open offer.

use recovery_kit::db::optional;
use recovery_kit::{Lock, Scope};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::wire::{Named as _, stored};

/// Where an entry is, as stored (expiry is read from the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryStatus {
    Waiting,
    Booked,
    Left,
}

/// Where an offer is, as stored (an open offer past its expiry is read as
/// expired until the sweep stores it so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OfferStatus {
    Open,
    Accepted,
    Declined,
    Expired,
    Withdrawn,
}

/// A client waiting for a slot; instants in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) location_id: String,
    pub(crate) treatment_id: String,
    pub(crate) client_id: String,
    pub(crate) resource_id: Option<String>,
    pub(crate) from: i64,
    pub(crate) to: i64,
    pub(crate) status: EntryStatus,
    pub(crate) booking_id: Option<String>,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
}

const ENTRY_COLUMNS: &str = "id, tenant_id, location_id, treatment_id, client_id, resource_id, \
     from_us, to_us, status, booking_id, create_time, update_time";

impl Entry {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            location_id: row.try_get("location_id")?,
            treatment_id: row.try_get("treatment_id")?,
            client_id: row.try_get("client_id")?,
            resource_id: row.try_get("resource_id")?,
            from: row.try_get("from_us")?,
            to: row.try_get("to_us")?,
            status: stored(&row.try_get::<String, _>("status")?)?,
            booking_id: row.try_get("booking_id")?,
            create_time: row.try_get("create_time")?,
            update_time: row.try_get("update_time")?,
        })
    }
}

/// A slot held for an entry's client; instants in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) location_id: String,
    pub(crate) entry_id: String,
    pub(crate) treatment_id: String,
    pub(crate) client_id: String,
    pub(crate) hold_id: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) expire: i64,
    pub(crate) status: OfferStatus,
    pub(crate) booking_id: Option<String>,
    pub(crate) create_time: i64,
}

const OFFER_COLUMNS: &str = "o.id, o.tenant_id, o.location_id, o.entry_id, o.treatment_id, o.client_id, \
     o.hold_id, o.start_us, o.end_us, o.expire_us, o.status, o.booking_id, o.create_time";

impl Offer {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            location_id: row.try_get("location_id")?,
            entry_id: row.try_get("entry_id")?,
            treatment_id: row.try_get("treatment_id")?,
            client_id: row.try_get("client_id")?,
            hold_id: row.try_get("hold_id")?,
            start: row.try_get("start_us")?,
            end: row.try_get("end_us")?,
            expire: row.try_get("expire_us")?,
            status: stored(&row.try_get::<String, _>("status")?)?,
            booking_id: row.try_get("booking_id")?,
            create_time: row.try_get("create_time")?,
        })
    }
}

/// Stores a new entry.
pub(crate) async fn insert_entry(
    conn: &mut AnyConnection,
    entry: &Entry,
    key_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO waitlist_entries (id, tenant_id, location_id, treatment_id, client_id, \
         resource_id, from_us, to_us, status, booking_id, create_time, update_time, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&entry.id)
    .bind(&entry.tenant_id)
    .bind(&entry.location_id)
    .bind(&entry.treatment_id)
    .bind(&entry.client_id)
    .bind(entry.resource_id.as_deref())
    .bind(entry.from)
    .bind(entry.to)
    .bind(entry.status.as_str())
    .bind(entry.booking_id.as_deref())
    .bind(entry.create_time)
    .bind(entry.update_time)
    .bind(key_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The entry `id` if `scope` sees it.
pub(crate) async fn entry(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
    lock: Lock,
) -> Result<Option<Entry>, sqlx::Error> {
    super::by_id(
        conn,
        ("waitlist_entries", ENTRY_COLUMNS),
        scope,
        id,
        lock,
        Entry::from_row,
    )
    .await
}

/// The client's entry still waiting at `now` for the same location and
/// treatment with a window overlapping `[from, to)`, if any.
pub(crate) async fn overlapping(
    conn: &mut AnyConnection,
    like: &Entry,
    now: i64,
) -> Result<Option<Entry>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM waitlist_entries WHERE tenant_id = $1 AND client_id = $2 \
         AND location_id = $3 AND treatment_id = $4 AND status = $5 AND to_us > $6 \
         AND from_us < $7 AND to_us > $8 ORDER BY id LIMIT 1"
    ))
    .bind(&like.tenant_id)
    .bind(&like.client_id)
    .bind(&like.location_id)
    .bind(&like.treatment_id)
    .bind(EntryStatus::Waiting.as_str())
    .bind(now)
    .bind(like.to)
    .bind(like.from)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(Entry::from_row).transpose()
}

/// Which entries a list shows.
pub(crate) struct EntryFilter<'a> {
    pub(crate) location_id: &'a str,
    pub(crate) client_id: Option<&'a str>,
    /// `None`: every state.
    pub(crate) state: Option<EntryState>,
}

/// An entry's state as a reader sees it at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryState {
    Waiting,
    Booked,
    Left,
    Expired,
}

/// A location's entries in join order, after the entry `after`.
pub(crate) async fn entries(
    conn: &mut AnyConnection,
    scope: &Scope,
    filter: &EntryFilter<'_>,
    now: i64,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    // The stored status, and which side of `now` the window ends on.
    let (status, ends) = match filter.state {
        None => (None, ""),
        Some(EntryState::Waiting) => (Some(EntryStatus::Waiting), " AND to_us > $6"),
        Some(EntryState::Expired) => (Some(EntryStatus::Waiting), " AND to_us <= $6"),
        Some(EntryState::Booked) => (Some(EntryStatus::Booked), ""),
        Some(EntryState::Left) => (Some(EntryStatus::Left), ""),
    };
    let rows = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM waitlist_entries WHERE {tenant} \
         AND location_id = $2 AND {of_client} AND {of_status} AND {after_that} \
         AND $6 = $6{ends} ORDER BY id LIMIT {limit}",
        tenant = scope.filter("tenant_id", 1),
        of_client = optional(filter.client_id.is_some(), "client_id = $3", &[3]),
        of_status = optional(status.is_some(), "status = $4", &[4]),
        after_that = optional(after.is_some(), "id > $5", &[5]),
    ))
    .bind(scope.tenant())
    .bind(filter.location_id)
    .bind(filter.client_id)
    .bind(status.map(EntryStatus::as_str))
    .bind(after)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(Entry::from_row).collect()
}

/// The entries of a location waiting at `now` whose window overlaps
/// `[from, to)`, in join order.
pub(crate) async fn waiting(
    conn: &mut AnyConnection,
    tenant_id: &str,
    location_id: &str,
    (from, to): (i64, i64),
    now: i64,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM waitlist_entries WHERE tenant_id = $1 AND location_id = $2 \
         AND status = $3 AND to_us > $4 AND from_us < $5 AND to_us > $6 ORDER BY id LIMIT $7"
    ))
    .bind(tenant_id)
    .bind(location_id)
    .bind(EntryStatus::Waiting.as_str())
    .bind(now)
    .bind(to)
    .bind(from)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(Entry::from_row).collect()
}

/// Ends an entry: booked (with its booking) or left.
pub(crate) async fn set_entry_status(
    conn: &mut AnyConnection,
    id: &str,
    status: EntryStatus,
    booking_id: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE waitlist_entries SET status = $1, booking_id = $2, update_time = $3 WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(booking_id)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes a client off every waitlist (an erasure).
pub(crate) async fn leave_all(
    conn: &mut AnyConnection,
    tenant_id: &str,
    client_id: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE waitlist_entries SET status = $1, update_time = $2 \
         WHERE tenant_id = $3 AND client_id = $4 AND status = $5",
    )
    .bind(EntryStatus::Left.as_str())
    .bind(now)
    .bind(tenant_id)
    .bind(client_id)
    .bind(EntryStatus::Waiting.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Slot starts already offered to the entry (declined, expired or
/// withdrawn ones are not offered to it again).
pub(crate) async fn offered_starts(
    conn: &mut AnyConnection,
    entry_id: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    let rows = sqlx::query("SELECT start_us FROM waitlist_offers WHERE entry_id = $1")
        .bind(entry_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|row| row.try_get("start_us")).collect()
}

/// Stores a new offer. A second open offer for the client fails on the
/// unique index.
pub(crate) async fn insert_offer(
    conn: &mut AnyConnection,
    offer: &Offer,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO waitlist_offers (id, tenant_id, location_id, entry_id, treatment_id, \
         client_id, hold_id, start_us, end_us, expire_us, status, booking_id, create_time, \
         update_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
    )
    .bind(&offer.id)
    .bind(&offer.tenant_id)
    .bind(&offer.location_id)
    .bind(&offer.entry_id)
    .bind(&offer.treatment_id)
    .bind(&offer.client_id)
    .bind(&offer.hold_id)
    .bind(offer.start)
    .bind(offer.end)
    .bind(offer.expire)
    .bind(offer.status.as_str())
    .bind(offer.booking_id.as_deref())
    .bind(offer.create_time)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The offer `id` if `scope` sees it.
pub(crate) async fn offer(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
    lock: Lock,
) -> Result<Option<Offer>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {OFFER_COLUMNS} FROM waitlist_offers o WHERE o.id = $1 \
         AND {tenant}{lock}",
        lock = lock.clause_for(conn),
        tenant = scope.filter("o.tenant_id", 2),
    ))
    .bind(id)
    .bind(scope.tenant())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(Offer::from_row).transpose()
}

/// The client's open offer (possibly past its expiry, not yet swept).
pub(crate) async fn open_offer_of_client(
    conn: &mut AnyConnection,
    tenant_id: &str,
    client_id: &str,
) -> Result<Option<Offer>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {OFFER_COLUMNS} FROM waitlist_offers o WHERE o.tenant_id = $1 \
         AND o.client_id = $2 AND o.status = $3"
    ))
    .bind(tenant_id)
    .bind(client_id)
    .bind(OfferStatus::Open.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(Offer::from_row).transpose()
}

/// The entries' open offers, for showing them with the entries.
pub(crate) async fn open_offer_of_entry(
    conn: &mut AnyConnection,
    entry_id: &str,
) -> Result<Option<Offer>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {OFFER_COLUMNS} FROM waitlist_offers o WHERE o.entry_id = $1 AND o.status = $2"
    ))
    .bind(entry_id)
    .bind(OfferStatus::Open.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(Offer::from_row).transpose()
}

/// A location's offers open at `now`, oldest first.
pub(crate) async fn open_offers_at(
    conn: &mut AnyConnection,
    scope: &Scope,
    location_id: &str,
    now: i64,
) -> Result<Vec<Offer>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {OFFER_COLUMNS} FROM waitlist_offers o WHERE {tenant} \
         AND o.location_id = $2 AND o.status = $3 AND o.expire_us > $4 ORDER BY o.id",
        tenant = scope.filter("o.tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(location_id)
    .bind(OfferStatus::Open.as_str())
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(Offer::from_row).collect()
}

/// Closes an open offer as `status`; false when it was not open any more
/// (another replica or call closed it first).
pub(crate) async fn close_offer(
    conn: &mut AnyConnection,
    id: &str,
    status: OfferStatus,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let closed = sqlx::query(
        "UPDATE waitlist_offers SET status = $1, update_time = $2 WHERE id = $3 AND status = $4",
    )
    .bind(status.as_str())
    .bind(now)
    .bind(id)
    .bind(OfferStatus::Open.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(closed > 0)
}

/// The booking `booking_id` was made from the hold `hold_id`: when the
/// hold is an offer, the offer is accepted and its entry booked.
pub(crate) async fn accept_by_hold(
    conn: &mut AnyConnection,
    hold_id: &str,
    booking_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let accepted = sqlx::query(
        "UPDATE waitlist_offers SET status = $1, booking_id = $2, update_time = $3 \
         WHERE hold_id = $4 AND status = $5",
    )
    .bind(OfferStatus::Accepted.as_str())
    .bind(booking_id)
    .bind(now)
    .bind(hold_id)
    .bind(OfferStatus::Open.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if accepted > 0 {
        sqlx::query(
            "UPDATE waitlist_entries SET status = $1, booking_id = $2, update_time = $3 \
             WHERE id = (SELECT entry_id FROM waitlist_offers WHERE hold_id = $4)",
        )
        .bind(EntryStatus::Booked.as_str())
        .bind(booking_id)
        .bind(now)
        .bind(hold_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The offer made with the hold `hold_id`, if the hold is one.
pub(crate) async fn offer_of_hold(
    conn: &mut AnyConnection,
    hold_id: &str,
) -> Result<Option<Offer>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {OFFER_COLUMNS} FROM waitlist_offers o WHERE o.hold_id = $1"
    ))
    .bind(hold_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(Offer::from_row).transpose()
}

/// A hold whose time ran out while it still occupied its slot.
#[derive(Debug, Clone)]
pub(crate) struct Lapsed {
    pub(crate) hold_id: String,
    pub(crate) tenant_id: String,
    pub(crate) location_id: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
}

/// Holds (plain ones and offers) past their expiry whose allocations are
/// still stored, oldest first.
pub(crate) async fn lapsed(
    conn: &mut AnyConnection,
    now: i64,
    limit: i64,
) -> Result<Vec<Lapsed>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT h.id, h.tenant_id, h.location_id, h.start_us, h.end_us FROM holds h \
         WHERE h.id IN (SELECT a.owner_id FROM allocations a WHERE a.expire_us IS NOT NULL \
         AND a.expire_us <= $1) AND h.booking_id IS NULL ORDER BY h.id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Lapsed {
                hold_id: row.try_get("id")?,
                tenant_id: row.try_get("tenant_id")?,
                location_id: row.try_get("location_id")?,
                start: row.try_get("start_us")?,
                end: row.try_get("end_us")?,
            })
        })
        .collect()
}

/// Deletes the hold's expired allocations; how many went (0: another
/// transaction freed them first).
pub(crate) async fn drop_lapsed_allocations(
    conn: &mut AnyConnection,
    hold_id: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM allocations WHERE owner_id = $1 AND expire_us IS NOT NULL \
         AND expire_us <= $2",
    )
    .bind(hold_id)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Open offers past their expiry, whatever became of their slot.
pub(crate) async fn stale_offers(
    conn: &mut AnyConnection,
    now: i64,
    limit: i64,
) -> Result<Vec<Offer>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {OFFER_COLUMNS} FROM waitlist_offers o WHERE o.status = $1 AND o.expire_us <= $2 \
         ORDER BY o.id LIMIT $3"
    ))
    .bind(OfferStatus::Open.as_str())
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(Offer::from_row).collect()
}
