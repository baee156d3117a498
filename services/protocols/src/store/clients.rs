//! `protocols_clients`, and erasure across every table that holds
//! something personal.

use recovery_kit::db::{engine_of, like_escape, optional};
use recovery_kit::page::Page;
use recovery_kit::time::to_micros;
use recovery_kit::wire::stored_timestamp;
use recovery_kit::{Engine, Error, Lock, Scope};
use recovery_proto::protocols::v1 as pb;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row as _};

use super::owner;
use crate::Change;
use crate::wire::clients::ClientFields;

/// A client's columns, for every read of one.
macro_rules! client_columns {
    () => {
        "id, given_name, family_name, email, phone, date_of_birth, emergency_name, \
         emergency_phone, emergency_relationship, create_time, update_time, created_by, \
         updated_by, erase_time"
    };
}
pub(super) use client_columns;

const CLIENT_COLUMNS: &str = client_columns!();

pub(super) fn client(row: &AnyRow) -> Result<pb::Client, Error> {
    let ec_name: String = row.try_get("emergency_name")?;
    let ec_phone: String = row.try_get("emergency_phone")?;
    let ec_rel: String = row.try_get("emergency_relationship")?;
    let erase_time: Option<i64> = row.try_get("erase_time")?;
    let has_contact = !(ec_name.is_empty() && ec_phone.is_empty() && ec_rel.is_empty());
    Ok(pb::Client {
        id: row.try_get("id")?,
        given_name: row.try_get("given_name")?,
        family_name: row.try_get("family_name")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        date_of_birth: row.try_get("date_of_birth")?,
        emergency_contact: has_contact.then_some(pb::EmergencyContact {
            name: ec_name,
            phone: ec_phone,
            relationship: ec_rel,
        }),
        create_time: stored_timestamp(row.try_get("create_time")?),
        update_time: stored_timestamp(row.try_get("update_time")?),
        created_by: row.try_get("created_by")?,
        updated_by: row.try_get("updated_by")?,
        erase_time: erase_time.and_then(stored_timestamp),
    })
}

/// The client `id` in `scope` (locked for the rest of a write transaction
/// with [`Lock::ForUpdate`]): NOT_FOUND when it does not exist or is
/// another tenant's.
pub(crate) async fn find(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
    lock: Lock,
) -> Result<pb::Client, Error> {
    let row = sqlx::query(&format!(
        "SELECT {CLIENT_COLUMNS} FROM protocols_clients \
         WHERE id = $1 AND {tenant}{lock}",
        tenant = scope.filter("tenant_id", 2),
        lock = lock.clause_for(conn)
    ))
    .bind(id)
    .bind(scope.tenant())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found("client", id))?;
    client(&row)
}

/// `sql` with `$1` the id, `$2` the tenant, `$3` to `$10` the fields, `$11`
/// the search text, `$12` the time and `$13` the key that wrote them.
fn with_fields<'q>(
    sql: &'q str,
    id: &'q str,
    tenant: Option<&'q str>,
    fields: &'q ClientFields,
    change: &Change<'q>,
) -> Query<'q, Any, AnyArguments<'q>> {
    sqlx::query(sql)
        .bind(id)
        .bind(tenant)
        .bind(&fields.given_name)
        .bind(&fields.family_name)
        .bind(&fields.email)
        .bind(&fields.phone)
        .bind(
            fields
                .date_of_birth
                .map(|d| d.to_string())
                .unwrap_or_default(),
        )
        .bind(&fields.emergency_name)
        .bind(&fields.emergency_phone)
        .bind(&fields.emergency_relationship)
        .bind(fields.search_text())
        .bind(to_micros(change.now))
        .bind(change.actor)
}

/// Registers client `id`.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    id: &str,
    fields: &ClientFields,
) -> Result<(), Error> {
    with_fields(
        "INSERT INTO protocols_clients (id, tenant_id, given_name, family_name, email, \
         phone, date_of_birth, emergency_name, emergency_phone, emergency_relationship, \
         search_text, create_time, update_time, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $13)",
        id,
        Some(owner(change.scope)?),
        fields,
        change,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Overwrites client `id`'s fields.
pub(crate) async fn update(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    id: &str,
    fields: &ClientFields,
) -> Result<(), Error> {
    with_fields(
        &format!(
            "UPDATE protocols_clients SET given_name = $3, family_name = $4, email = $5, \
             phone = $6, date_of_birth = $7, emergency_name = $8, emergency_phone = $9, \
             emergency_relationship = $10, search_text = $11, update_time = $12, \
             updated_by = $13 WHERE id = $1 AND {tenant}",
            tenant = change.scope.filter("tenant_id", 2)
        ),
        id,
        change.scope.tenant(),
        fields,
        change,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of the clients not erased whose name, email or phone contain
/// `text` (lowercase; empty: every client), by id.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    scope: &Scope,
    text: &str,
    page: &Page,
) -> Result<Vec<pb::Client>, Error> {
    let pattern = (!text.is_empty()).then(|| format!("%{}%", like_escape(text)));
    sqlx::query(&format!(
        "SELECT {CLIENT_COLUMNS} FROM protocols_clients \
         WHERE {tenant} AND erase_time IS NULL AND {after} AND {matching} \
         ORDER BY id LIMIT {limit}",
        tenant = scope.filter("tenant_id", 1),
        after = optional(page.after.is_some(), "id > $2", &[2]),
        matching = optional(pattern.is_some(), "search_text LIKE $3 ESCAPE '\\'", &[3]),
        limit = page.fetch(),
    ))
    .bind(scope.tenant())
    .bind(page.after.as_deref())
    .bind(pattern)
    .fetch_all(conn)
    .await?
    .iter()
    .map(client)
    .collect()
}

/// The version of `scope`'s client list (migration 40060): bumped by every
/// change to its clients.
pub(crate) async fn list_version(
    conn: &mut AnyConnection,
    scope: &Scope,
) -> Result<i64, sqlx::Error> {
    let version: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM protocols_client_list_versions WHERE {tenant}",
        tenant = scope.filter("tenant_id", 1)
    ))
    .bind(scope.tenant())
    .fetch_optional(conn)
    .await?;
    Ok(version.unwrap_or(0))
}

/// Empties client `id`'s personal fields, screening answers, free text,
/// audit details and the stored answers of idempotent creates that mention
/// it; keeps anonymous session and activity rows and who did what when.
pub(crate) async fn erase(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    id: &str,
) -> Result<(), Error> {
    sqlx::query(&format!(
        "UPDATE protocols_clients SET given_name = '', family_name = '', email = '', \
         phone = '', date_of_birth = '', emergency_name = '', emergency_phone = '', \
         emergency_relationship = '', search_text = '', update_time = $1, updated_by = $2, \
         erase_time = $1 WHERE id = $3 AND {tenant}",
        tenant = change.scope.filter("tenant_id", 4)
    ))
    .bind(to_micros(change.now))
    .bind(change.actor)
    .bind(id)
    .bind(change.scope.tenant())
    .execute(&mut *conn)
    .await?;
    let tenant = change.scope.filter("tenant_id", 1);
    let statements = [
        // Health answers are personal data through and through.
        format!(
            "DELETE FROM protocols_screening_answers WHERE screening_id IN \
             (SELECT id FROM protocols_screenings WHERE {tenant} AND client_id = $2)"
        ),
        format!("DELETE FROM protocols_screenings WHERE {tenant} AND client_id = $2"),
        // The waiver's version and times stay; the names go.
        format!(
            "UPDATE protocols_waivers SET signer_name = '', guardian_name = '' \
             WHERE {tenant} AND client_id = $2"
        ),
        // Sessions and activities stay for anonymous statistics; free
        // text may name people or conditions.
        format!(
            "UPDATE protocols_sessions SET notes = '' \
             WHERE {tenant} AND client_id = $2"
        ),
        format!(
            "UPDATE protocols_activities SET notes = '' \
             WHERE {tenant} AND client_id = $2"
        ),
        // Who did what and when stays; the details go.
        format!(
            "UPDATE protocols_audit SET detail = '' \
             WHERE {tenant} AND client_id = $2"
        ),
    ];
    for sql in &statements {
        sqlx::query(sql)
            .bind(change.scope.tenant())
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    // Stored answers of the tenant's idempotent creates that mention the
    // client.
    let forget = match engine_of(conn) {
        Engine::Sqlite => {
            "DELETE FROM protocols_idempotency WHERE scope LIKE $1 \
             AND instr(response, CAST($2 AS BLOB)) > 0"
        }
        Engine::Postgres => {
            "DELETE FROM protocols_idempotency WHERE scope LIKE $1 \
             AND position(convert_to($2, 'UTF8') in response) > 0"
        }
    };
    sqlx::query(forget)
        .bind(format!("%/{}", owner(change.scope)?))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
