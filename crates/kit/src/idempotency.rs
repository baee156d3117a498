//! Create methods take a `request_id`: the same id with the same request
//! returns the first result; with a different request it is refused.
//!
//! The first result is stored in the service's own idempotency table in the
//! same transaction as the change, so a replay never sees a half-done create.
//! The table has the columns `scope`, `request_id`, `fingerprint`,
//! `response` and `create_time`, with `(scope, request_id)` unique.

use sha2::{Digest as _, Sha256};
use sqlx::{AnyConnection, Row as _};

use crate::db::Tx;

use crate::auth::BoxFuture;
use crate::{Db, Error, Violations, db::is_unique_violation};

/// What identifies one logical create.
#[derive(Debug, Clone)]
pub struct Key {
    scope: String,
    request_id: String,
    fingerprint: String,
}

impl Key {
    /// A key for `method` in `tenant` (empty for platform-wide), or `None`
    /// when the caller sent no `request_id`. `request` is the request with
    /// its `request_id` cleared: two requests are the same when it encodes
    /// the same.
    pub fn new(
        method: &str,
        tenant: &str,
        request_id: &str,
        request: &impl prost::Message,
        violations: &mut Violations,
    ) -> Option<Key> {
        if request_id.is_empty() {
            return None;
        }
        if request_id.len() > 128 || request_id.chars().any(char::is_control) {
            violations.add("request_id", "at most 128 printable characters");
            return None;
        }
        Some(Key {
            scope: format!("{method}/{tenant}"),
            request_id: request_id.to_owned(),
            fingerprint: hex::encode(Sha256::digest(request.encode_to_vec())),
        })
    }
}

/// A request with its `request_id` cleared by `clear`, to fingerprint it
/// for [`Key::new`].
pub fn without_request_id<T: Clone>(request: &T, clear: impl FnOnce(&mut T)) -> T {
    let mut copy = request.clone();
    clear(&mut copy);
    copy
}

/// Runs `work` — which creates something in the write transaction it is
/// given and yields its message — at most once per idempotency key.
/// Returns `(message, fresh)`: `fresh` is false for a replay of a stored
/// result. `input` is what `work` reads (the validated request, the
/// service), handed back to it so that the future may borrow it.
///
/// ```ignore
/// let (tenant, fresh) = idempotency::create(&db, TABLE, key.as_ref(), now, &name, |tx, name| {
///     Box::pin(store::insert_tenant(tx, name, now))
/// })
/// .await?;
/// ```
///
/// A reuse of the key with another request is refused with
/// `ALREADY_EXISTS` / `REQUEST_ID_REUSED`. When two calls race with one key,
/// the loser's transaction rolls back and it replays the winner's result.
pub async fn create<I, T, F>(
    db: &Db,
    table: &'static str,
    key: Option<&Key>,
    now_micros: i64,
    input: &I,
    mut work: F,
) -> Result<(T, bool), Error>
where
    I: Sync + ?Sized,
    T: prost::Message + Default,
    F: for<'t> FnMut(&'t mut Tx, &'t I) -> BoxFuture<'t, Result<T, Error>>,
{
    let mut once = Once::new(table, key, now_micros);
    // A commit that lost the race is followed by a replay: two rounds
    // suffice; the third is a guard against a store that forgets.
    for _ in 0..3 {
        let mut tx = match once.begin(db).await? {
            Step::Replay(stored) => return Ok((stored, false)),
            Step::Work(tx) => tx,
        };
        let value = match work(&mut tx, input).await {
            Ok(value) => value,
            Err(error) => {
                tx.rollback().await?;
                // A call with the same key may have committed meanwhile,
                // and its rows be what ours ran into (a unique name, a
                // daily limit): its stored result is the answer.
                return match once.replay_after_failure(db).await? {
                    Some(stored) => Ok((stored, false)),
                    None => Err(error),
                };
            }
        };
        if once.commit(tx, &value).await? {
            return Ok((value, true));
        }
    }
    Err(Error::Unavailable(
        "idempotent create kept losing its race".to_owned(),
    ))
}

/// Runs a create at most once per key, in a write transaction that also
/// stores its result:
///
/// ```ignore
/// let mut once = Once::new(TABLE, key.as_ref(), now_micros);
/// let created = loop {
///     let mut tx = match once.begin(&db).await? {
///         Step::Replay(stored) => break stored,
///         Step::Work(tx) => tx,
///     };
///     let created = insert(&mut tx).await?;
///     if once.commit(tx, &created).await? {
///         break created;
///     }
/// };
/// ```
///
/// A replay returns the stored result; a reuse of the key with another
/// request is refused with `ALREADY_EXISTS` / `REQUEST_ID_REUSED`. When two
/// calls race with one key, the loser's transaction rolls back and its next
/// `begin` replays the winner's result. Callers bound their loop: a commit
/// that lost the race is followed by a replay, so two rounds suffice.
#[derive(Debug)]
pub struct Once<'k> {
    table: &'static str,
    key: Option<&'k Key>,
    now_micros: i64,
    /// The advisory lock the transaction takes as it begins
    /// ([`Db::begin_holding`]).
    lock: Option<String>,
    /// Whether the caller's own statement stored the result in this
    /// attempt's transaction ([`Once::mark_stored`]).
    stored: bool,
}

/// Where [`Once::commit`] stores a result, for a caller that stores it
/// with a statement of its own in the same transaction (then
/// [`Once::mark_stored`]): a row of `table` with these `scope`, `request_id`,
/// `fingerprint` and `create_time`, and the encoded result as `response`.
/// Another call's row with the key fails that statement with a unique
/// violation, as it fails `commit`'s own.
#[derive(Debug, Clone, Copy)]
pub struct Record<'k> {
    pub table: &'static str,
    pub scope: &'k str,
    pub request_id: &'k str,
    pub fingerprint: &'k str,
    pub create_time: i64,
}

impl Record<'_> {
    /// `INSERT` of this record from the rows of `from` (a row to store it,
    /// none not to): its values are the parameters from `$first` on, bound
    /// in this order: `scope`, `request_id`, `fingerprint`, the encoded
    /// result, `create_time`.
    #[must_use]
    pub fn insert_from(&self, from: &str, first: usize) -> String {
        format!(
            "INSERT INTO {table} ({COLUMNS}) SELECT ${}::text, ${}::text, ${}::text, \
             ${}::bytea, ${}::bigint FROM {from}",
            first,
            first + 1,
            first + 2,
            first + 3,
            first + 4,
            table = self.table,
        )
    }
}

/// An idempotency table's columns, in the order they are written.
const COLUMNS: &str = "scope, request_id, fingerprint, response, create_time";

/// What [`Once::begin`] found.
pub enum Step<T> {
    /// The create ran before: its stored result.
    Replay(T),
    /// Do the work in this transaction, then [`Once::commit`] it.
    Work(Tx),
}

impl<'k> Once<'k> {
    /// A create recorded in `table` under `key` (none: not idempotent).
    pub fn new(table: &'static str, key: Option<&'k Key>, now_micros: i64) -> Self {
        Self {
            table,
            key,
            now_micros,
            lock: None,
            stored: false,
        }
    }

    /// Where the result goes, for a caller that stores it itself (none
    /// without a key).
    #[must_use]
    pub fn record(&self) -> Option<Record<'k>> {
        self.key.map(|key| Record {
            table: self.table,
            scope: &key.scope,
            request_id: &key.request_id,
            fingerprint: &key.fingerprint,
            create_time: self.now_micros,
        })
    }

    /// The caller's own statement stored the result in this attempt's
    /// transaction ([`Once::record`]): [`Once::commit`] only commits.
    pub fn mark_stored(&mut self) {
        self.stored = true;
    }

    /// The same, its transactions holding the advisory lock `lock` from
    /// their `BEGIN` on (PostgreSQL; see [`Db::begin_holding`]).
    #[must_use]
    pub fn holding(self, lock: Option<String>) -> Self {
        Self { lock, ..self }
    }

    /// Opens the write transaction, or finds the stored result.
    pub async fn begin<T: prost::Message + Default>(&mut self, db: &Db) -> Result<Step<T>, Error> {
        let mut tx = db.begin_holding(self.lock.as_deref()).await?;
        self.stored = false;
        if let Some(key) = self.key
            && let Some(stored) = stored(&mut tx, self.table, key).await?
        {
            return Ok(Step::Replay(stored));
        }
        Ok(Step::Work(tx))
    }

    /// After the work failed: the result another call with the key stored
    /// meanwhile, if any (none without a key). A create that lost a race
    /// with its own retry answers the winner's result instead of the
    /// conflict the winner's rows caused.
    pub async fn replay_after_failure<T: prost::Message + Default>(
        &mut self,
        db: &Db,
    ) -> Result<Option<T>, Error> {
        let Some(key) = self.key else { return Ok(None) };
        let mut conn = db.read().await?;
        stored(&mut conn, self.table, key).await
    }

    /// Stores `value` as the key's result (unless [`Once::mark_stored`]) and
    /// commits. `Ok(false)`: another call with the key won the race; begin
    /// again to replay its result.
    pub async fn commit<T: prost::Message>(
        &mut self,
        mut tx: Tx,
        value: &T,
    ) -> Result<bool, Error> {
        if let Some(key) = self.key.filter(|_| !self.stored) {
            match record(
                &mut tx,
                self.table,
                key,
                &value.encode_to_vec(),
                self.now_micros,
            )
            .await
            {
                Ok(()) => {}
                Err(error) if is_unique_violation(&error) => return Ok(false),
                Err(error) => return Err(error.into()),
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// The result stored in `table` under `key`, if any, read on `conn`: for a
/// caller that looks before it does any work (a reader connection, no
/// transaction), as [`Once::begin`] looks again in its transaction. A
/// reuse of the key with another request is refused alike.
pub async fn stored<T: prost::Message + Default>(
    conn: &mut AnyConnection,
    table: &str,
    key: &Key,
) -> Result<Option<T>, Error> {
    let row = sqlx::query(&format!(
        "SELECT fingerprint, response FROM {table} WHERE scope = $1 AND request_id = $2"
    ))
    .bind(&key.scope)
    .bind(&key.request_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let fingerprint: String = row.try_get("fingerprint")?;
    if fingerprint != key.fingerprint {
        return Err(Error::AlreadyExists {
            reason: crate::reason::REQUEST_ID_REUSED,
            message: format!(
                "request_id {:?} was already used for a different request",
                key.request_id
            ),
        });
    }
    let bytes: Vec<u8> = row.try_get("response")?;
    let value = T::decode(bytes.as_slice())
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("stored response")))?;
    Ok(Some(value))
}

async fn record(
    tx: &mut Tx,
    table: &str,
    key: &Key,
    response: &[u8],
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
    ))
    .bind(&key.scope)
    .bind(&key.request_id)
    .bind(&key.fingerprint)
    .bind(response.to_vec())
    .bind(now_micros)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How long a `request_id` is remembered: a retry within a day answers the
/// first result; after that the id may create again.
pub const KEEP: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// How often the pruner runs.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes the records of `table` created before `before_micros`; answers
/// how many.
pub async fn prune(db: &Db, table: &'static str, before_micros: i64) -> Result<u64, Error> {
    let mut tx = db.begin().await?;
    let pruned = sqlx::query(&format!("DELETE FROM {table} WHERE create_time < $1"))
        .bind(before_micros)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(pruned)
}

/// Prunes `table` of records older than [`KEEP`] by `clock`, at once and
/// then every hour, until `shutdown`.
pub fn spawn_pruner(
    db: Db,
    table: &'static str,
    clock: std::sync::Arc<dyn crate::time::Clock>,
    shutdown: crate::server::Shutdown,
) {
    crate::server::spawn_every(
        PRUNE_EVERY,
        shutdown,
        (db, clock),
        move |(db, clock)| async move {
            let before = crate::time::to_micros(clock.now() - KEEP);
            match prune(&db, table, before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(table, pruned, "idempotency records pruned"),
                Err(error) => tracing::warn!(table, error = %error, "pruning failed"),
            }
        },
    );
}
