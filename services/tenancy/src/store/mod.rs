//! Every SQL statement of tenancy, one statement set for both engines, a
//! file per area. Reads that callers may only make within their tenant take
//! a [`recovery_kit::Scope`], write its [`recovery_kit::Scope::filter`] into
//! the statement and bind [`recovery_kit::Scope::tenant`] as its `$n`; reads made to change a row take a
//! [`recovery_kit::Lock`]. Rows come back as named structs, never tuples.

pub(crate) mod keys;
pub(crate) mod locations;
pub(crate) mod tenants;

use recovery_kit::{Error, Role};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Executor};

/// A statement with its arguments bound.
type Bound<'q> = Query<'q, Any, AnyArguments<'q>>;

/// The row `query` finds, if any, decoded by `decode`.
async fn optional<'e, T>(
    db: impl Executor<'e, Database = Any>,
    query: Bound<'_>,
    decode: fn(&AnyRow) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    query
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(decode)
        .transpose()
}

/// Every row `query` finds, decoded by `decode`.
async fn all<'e, T>(
    db: impl Executor<'e, Database = Any>,
    query: Bound<'_>,
    decode: fn(&AnyRow) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    query.fetch_all(db).await?.iter().map(decode).collect()
}

/// A role as stored (`Role::as_str`).
fn role(stored: &str) -> Result<Role, Error> {
    Role::parse(stored)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("stored role {stored:?} is unknown")))
}
