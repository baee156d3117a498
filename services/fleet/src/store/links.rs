//! What booking was last told about a device (`devices.told`).

use recovery_kit::Error;
use sqlx::{AnyConnection, Row as _};

/// The encoded status booking was last told about device `id`, if any.
pub(crate) async fn told(tx: &mut AnyConnection, id: &str) -> Result<Option<Vec<u8>>, Error> {
    let row = sqlx::query("SELECT told FROM devices WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(match row {
        Some(row) => row.try_get("told")?,
        None => None,
    })
}

/// Remembers what booking is being told about device `id`.
pub(crate) async fn set_told(tx: &mut AnyConnection, id: &str, told: &[u8]) -> Result<(), Error> {
    sqlx::query("UPDATE devices SET told = $1 WHERE id = $2")
        .bind(told.to_vec())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
