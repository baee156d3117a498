//! The `api_keys` table. Secrets are never stored: only their hash and
//! the prefix shown in lists.

use recovery_kit::ids::new_id;
use recovery_kit::page::Page;
use recovery_kit::{Caller, Error, Lock, Role, Scope};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor, Row as _};

use crate::keys;

/// An API key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiKey {
    pub(crate) id: String,
    /// `None` for operator keys.
    pub(crate) tenant_id: Option<String>,
    pub(crate) role: Role,
    pub(crate) display_name: String,
    pub(crate) prefix: String,
    /// Microseconds since the epoch.
    pub(crate) create_time: i64,
    /// Microseconds since the epoch.
    pub(crate) revoke_time: Option<i64>,
}

/// A key read to be revoked: the key and the hash its cache entry is under.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) key: ApiKey,
    pub(crate) key_hash: String,
}

/// Whose keys a list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The operators' keys, which belong to no tenant.
    Operators,
    /// The keys of one tenant.
    Tenant(String),
}

/// A key to insert.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewKey<'a> {
    /// `None` for an operator key.
    pub(crate) tenant_id: Option<&'a str>,
    pub(crate) role: Role,
    pub(crate) display_name: &'a str,
}

const COLUMNS: &str = "id, tenant_id, role, display_name, prefix, create_time, revoke_time";

fn api_key(row: &AnyRow) -> Result<ApiKey, Error> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        role: super::role(&row.try_get::<String, _>("role")?)?,
        display_name: row.try_get("display_name")?,
        prefix: row.try_get("prefix")?,
        create_time: row.try_get("create_time")?,
        revoke_time: row.try_get("revoke_time")?,
    })
}

/// Whether any key exists (revoked ones too).
pub(crate) async fn any(tx: &mut AnyConnection) -> Result<bool, Error> {
    let query = sqlx::query("SELECT id FROM api_keys LIMIT 1");
    Ok(super::optional(&mut *tx, query, |_| Ok(()))
        .await?
        .is_some())
}

/// Whether a key with `key_hash` exists (revoked ones too).
pub(crate) async fn with_hash(tx: &mut AnyConnection, key_hash: &str) -> Result<bool, Error> {
    let query = sqlx::query("SELECT id FROM api_keys WHERE key_hash = $1").bind(key_hash);
    Ok(super::optional(&mut *tx, query, |_| Ok(()))
        .await?
        .is_some())
}

/// The caller a key hash stands for, unless the key is unknown or revoked.
pub(crate) async fn caller<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    key_hash: &str,
) -> Result<Option<Caller>, Error> {
    let query = sqlx::query(
        "SELECT id, tenant_id, role FROM api_keys WHERE key_hash = $1 AND revoke_time IS NULL",
    );
    super::optional(db, query.bind(key_hash), |row| {
        Ok(Caller {
            tenant_id: row.try_get("tenant_id")?,
            role: super::role(&row.try_get::<String, _>("role")?)?,
            key_id: row.try_get("id")?,
        })
    })
    .await
}

/// One page of `owner`'s keys, by id.
pub(crate) async fn list<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    owner: &Owner,
    page: &Page,
) -> Result<Vec<ApiKey>, Error> {
    let tenant = match owner {
        Owner::Operators => None,
        Owner::Tenant(tenant) => Some(tenant.as_str()),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys \
         WHERE (($1 IS NULL AND tenant_id IS NULL) OR tenant_id = $1) \
         AND id > $2 ORDER BY id LIMIT $3"
    );
    let query = sqlx::query(&sql).bind(tenant);
    super::all(db, query.bind(page.cursor()).bind(page.fetch()), api_key).await
}

/// The key `id` if `scope` sees it, with its hash; `lock` when it is read
/// to be changed.
pub(crate) async fn get(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
    lock: Lock,
) -> Result<Option<Stored>, Error> {
    let lock = lock.clause_for(conn);
    let sql = format!(
        "SELECT {COLUMNS}, key_hash FROM api_keys \
         WHERE id = $1 AND {tenant}{lock}",
        tenant = scope.filter("tenant_id", 2)
    );
    let query = sqlx::query(&sql).bind(id).bind(scope.tenant());
    super::optional(&mut *conn, query, |row| {
        Ok(Stored {
            key: api_key(row)?,
            key_hash: row.try_get("key_hash")?,
        })
    })
    .await
}

/// Marks the key `id` revoked at `now` (micros).
pub(crate) async fn revoke(tx: &mut AnyConnection, id: &str, now: i64) -> Result<(), Error> {
    sqlx::query("UPDATE api_keys SET revoke_time = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Inserts `new` with `secret` (stored as its hash), made by `actor` at
/// `now` (micros).
pub(crate) async fn insert(
    tx: &mut AnyConnection,
    new: NewKey<'_>,
    secret: &str,
    actor: &str,
    now: i64,
) -> Result<ApiKey, Error> {
    let id = new_id();
    let prefix = keys::prefix(secret);
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, role, display_name, prefix, key_hash, \
         create_time, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(new.tenant_id)
    .bind(new.role.as_str())
    .bind(new.display_name)
    .bind(&prefix)
    .bind(keys::hash(secret))
    .bind(now)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    Ok(ApiKey {
        id,
        tenant_id: new.tenant_id.map(str::to_owned),
        role: new.role,
        display_name: new.display_name.to_owned(),
        prefix,
        create_time: now,
        revoke_time: None,
    })
}
