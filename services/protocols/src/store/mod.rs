//! Every SQL statement of protocols, one statement set for both engines, a
//! file per area. Every query is scoped: functions take the caller's
//! [`Scope`], write `scope.filter("tenant_id", n)` into the statement and
//! bind `scope.tenant()` as its `$n`; new rows belong to the scope's one
//! tenant ([`owner`]). Reads that lock take a [`recovery_kit::Lock`].

pub(crate) mod audit;
pub(crate) mod clients;
pub(crate) mod facts;
pub(crate) mod history;
pub(crate) mod plans;
pub(crate) mod rules;
pub(crate) mod screening;
pub(crate) mod waivers;

use recovery_kit::db::Reader;
use recovery_kit::{Db, Error, Scope};

/// A connection to read from, outside a write transaction.
pub(crate) async fn reader(db: &Db) -> Result<Reader, Error> {
    Ok(db.read().await?)
}

/// The tenant new rows belong to: client data is always one tenant's, so
/// an every-tenant scope writes nothing.
pub(crate) fn owner(scope: &Scope) -> Result<&str, Error> {
    scope
        .tenant()
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("protocols writes one tenant's rows")))
}

/// A stored whole number as `T`; a value that does not fit is a broken row.
fn narrow<T: TryFrom<i64>>(value: i64, column: &str) -> Result<T, Error> {
    T::try_from(value).map_err(|_| Error::Internal(anyhow::anyhow!("{column} holds {value}")))
}
