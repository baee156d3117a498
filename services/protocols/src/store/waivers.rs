//! `protocols_waivers`.

use recovery_kit::time::to_micros;
use recovery_kit::wire::stored_timestamp;
use recovery_kit::{Error, Scope};
use recovery_proto::protocols::v1 as pb;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::owner;
use crate::Change;
use crate::wire::waivers::NewWaiver;

fn waiver(row: &AnyRow) -> Result<pb::Waiver, Error> {
    let expire: Option<i64> = row.try_get("expire_time")?;
    Ok(pb::Waiver {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        version: row.try_get("version")?,
        sign_time: stored_timestamp(row.try_get("sign_time")?),
        expire_time: expire.and_then(stored_timestamp),
        signer_name: row.try_get("signer_name")?,
        guardian_name: row.try_get("guardian_name")?,
        record_time: stored_timestamp(row.try_get("record_time")?),
        recorded_by: row.try_get("recorded_by")?,
    })
}

/// The current (newest) waiver of a client, if any.
pub(crate) async fn current(
    conn: &mut AnyConnection,
    scope: &Scope,
    client_id: &str,
) -> Result<Option<pb::Waiver>, Error> {
    sqlx::query(&format!(
        "SELECT id, client_id, version, sign_time, expire_time, signer_name, guardian_name, \
         record_time, recorded_by FROM protocols_waivers \
         WHERE {tenant} AND client_id = $2 \
         ORDER BY sign_time DESC, id DESC LIMIT 1",
        tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(client_id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(waiver)
    .transpose()
}

/// Records waiver `id`.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    id: &str,
    new: &NewWaiver,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO protocols_waivers (id, tenant_id, client_id, version, sign_time, \
         expire_time, signer_name, guardian_name, record_time, recorded_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(owner(change.scope)?)
    .bind(&new.client_id)
    .bind(&new.version)
    .bind(to_micros(new.sign_time))
    .bind(new.expires.map(to_micros))
    .bind(&new.signer)
    .bind(&new.guardian)
    .bind(to_micros(change.now))
    .bind(change.actor)
    .execute(conn)
    .await?;
    Ok(())
}
