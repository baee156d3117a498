//! `protocols_audit`: who changed what, when. Rows are written in the
//! change's transaction and never deleted; erasure empties their details.

use recovery_kit::db::optional;
use recovery_kit::{Error, Scope};
use sqlx::{AnyConnection, Row as _};

use super::owner;
use crate::wire::audit::AuditQuery;

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditRow {
    pub(crate) id: String,
    /// The client the change was about; `None` for the tenant's own
    /// settings.
    pub(crate) client_id: Option<String>,
    /// The key that made the change.
    pub(crate) actor: String,
    pub(crate) action: String,
    /// May hold personal data: erasure empties it.
    pub(crate) detail: String,
    /// Microseconds since the epoch.
    pub(crate) occur_time: i64,
}

/// Writes `row` for the scope's tenant.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    scope: &Scope,
    row: &AuditRow,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO protocols_audit (id, tenant_id, client_id, actor, action, detail, occur_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&row.id)
    .bind(owner(scope)?)
    .bind(row.client_id.as_deref().unwrap_or_default())
    .bind(&row.actor)
    .bind(&row.action)
    .bind(&row.detail)
    .bind(row.occur_time)
    .execute(conn)
    .await?;
    Ok(())
}

/// A page (fetched with `Keyset::fetch`) of the trail, newest first.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    scope: &Scope,
    query: &AuditQuery,
) -> Result<Vec<AuditRow>, Error> {
    let after = query.page.after.as_ref();
    let rows = sqlx::query(&format!(
        "SELECT id, client_id, actor, action, detail, occur_time FROM protocols_audit \
         WHERE {tenant} AND {of_client} AND {from} AND {to} AND {after_that} \
         ORDER BY occur_time DESC, id DESC LIMIT {limit}",
        tenant = scope.filter("tenant_id", 1),
        of_client = optional(query.client_id.is_some(), "client_id = $2", &[2]),
        from = optional(query.from.is_some(), "occur_time >= $3", &[3]),
        to = optional(query.to.is_some(), "occur_time < $4", &[4]),
        after_that = query.page.older_than("occur_time", 5),
        limit = query.page.fetch(),
    ))
    .bind(scope.tenant())
    .bind(query.client_id.as_deref())
    .bind(query.from.map(recovery_kit::time::to_micros))
    .bind(query.to.map(recovery_kit::time::to_micros))
    .bind(after.map(|(at, _)| *at))
    .bind(after.map(|(_, id)| id.as_str()))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let client_id: String = row.try_get("client_id")?;
            Ok(AuditRow {
                id: row.try_get("id")?,
                client_id: (!client_id.is_empty()).then_some(client_id),
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                detail: row.try_get("detail")?,
                occur_time: row.try_get("occur_time")?,
            })
        })
        .collect()
}
