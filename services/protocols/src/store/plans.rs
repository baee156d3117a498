//! `protocols_templates` and `protocols_assignments`.

use prost::Message as _;
use recovery_kit::db::optional;
use recovery_kit::page::Page;
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::wire::stored_timestamp;
use recovery_kit::{Error, Scope};
use recovery_proto::protocols::v1 as pb;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::owner;
use crate::Change;
use crate::store::history::Span;

/// Stored steps: a protobuf-encoded `ProtocolTemplate` holding only steps.
fn steps(row: &AnyRow) -> Result<Vec<pb::ProtocolStep>, Error> {
    let steps: Vec<u8> = row.try_get("steps")?;
    Ok(pb::ProtocolTemplate::decode(steps.as_slice())
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("stored steps")))?
        .steps)
}

fn template(row: &AnyRow) -> Result<pb::ProtocolTemplate, Error> {
    Ok(pb::ProtocolTemplate {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        description: row.try_get("description")?,
        steps: steps(row)?,
        create_time: stored_timestamp(row.try_get("create_time")?),
        created_by: row.try_get("created_by")?,
    })
}

/// Writes template `id` (its name, description and steps; the rest is
/// ignored).
pub(crate) async fn insert_template(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    id: &str,
    template: &pb::ProtocolTemplate,
) -> Result<(), Error> {
    let steps = pb::ProtocolTemplate {
        steps: template.steps.clone(),
        ..Default::default()
    };
    sqlx::query(
        "INSERT INTO protocols_templates (id, tenant_id, display_name, description, \
         steps, create_time, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(owner(change.scope)?)
    .bind(&template.display_name)
    .bind(&template.description)
    .bind(steps.encode_to_vec())
    .bind(to_micros(change.now))
    .bind(change.actor)
    .execute(conn)
    .await?;
    Ok(())
}

/// A page (fetched with [`Page::fetch`]) of templates, by id.
pub(crate) async fn templates(
    conn: &mut AnyConnection,
    scope: &Scope,
    page: &Page,
) -> Result<Vec<pb::ProtocolTemplate>, Error> {
    sqlx::query(&format!(
        "SELECT id, display_name, description, steps, create_time, created_by \
         FROM protocols_templates WHERE {tenant} AND {after_that} ORDER BY id LIMIT {limit}",
        tenant = scope.filter("tenant_id", 1),
        after_that = optional(page.after.is_some(), "id > $2", &[2]),
        limit = page.fetch(),
    ))
    .bind(scope.tenant())
    .bind(page.after.as_deref())
    .fetch_all(conn)
    .await?
    .iter()
    .map(template)
    .collect()
}

/// Whether template `id` is in scope.
pub(crate) async fn template_exists(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
) -> Result<bool, Error> {
    Ok(sqlx::query(&format!(
        "SELECT id FROM protocols_templates WHERE id = $1 AND {tenant}",
        tenant = scope.filter("tenant_id", 2)
    ))
    .bind(id)
    .bind(scope.tenant())
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// An assignment as written.
pub(crate) struct NewAssignmentRow<'a> {
    pub(crate) id: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) template_id: &'a str,
    /// `None` when anchored on a time.
    pub(crate) anchor_activity_id: Option<&'a str>,
    pub(crate) anchor: Span,
}

/// Writes an assignment.
pub(crate) async fn insert_assignment(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    row: &NewAssignmentRow<'_>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO protocols_assignments (id, tenant_id, client_id, template_id, \
         anchor_activity_id, anchor_start, anchor_end, assign_time, assigned_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(row.id)
    .bind(owner(change.scope)?)
    .bind(row.client_id)
    .bind(row.template_id)
    .bind(row.anchor_activity_id.unwrap_or_default())
    .bind(to_micros(row.anchor.start))
    .bind(to_micros(row.anchor.end))
    .bind(to_micros(change.now))
    .bind(change.actor)
    .execute(conn)
    .await?;
    Ok(())
}

/// An assignment with its template's steps.
pub(crate) struct Assigned {
    pub(crate) id: String,
    pub(crate) template_id: String,
    pub(crate) anchor: Span,
    pub(crate) steps: Vec<pb::ProtocolStep>,
}

/// The client's newest 100 assignments, newest first.
pub(crate) async fn assignments(
    conn: &mut AnyConnection,
    scope: &Scope,
    client_id: &str,
) -> Result<Vec<Assigned>, Error> {
    sqlx::query(&format!(
        "SELECT a.id, a.template_id, a.anchor_start, a.anchor_end, t.steps \
         FROM protocols_assignments a JOIN protocols_templates t ON t.id = a.template_id \
         WHERE {tenant} AND a.client_id = $2 \
         ORDER BY a.id DESC LIMIT 100",
        tenant = scope.filter("a.tenant_id", 1)
    ))
    .bind(scope.tenant())
    .bind(client_id)
    .fetch_all(conn)
    .await?
    .iter()
    .map(|row| {
        Ok(Assigned {
            id: row.try_get("id")?,
            template_id: row.try_get("template_id")?,
            anchor: Span {
                start: from_micros(row.try_get("anchor_start")?),
                end: from_micros(row.try_get("anchor_end")?),
            },
            steps: steps(row)?,
        })
    })
    .collect()
}
