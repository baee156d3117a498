//! The audit trail: every change to client data (and to the tenant's
//! thresholds) writes a row in the change's own transaction; managers read
//! the trail, which erasure keeps without its details.

use recovery_kit::ids::new_id;
use recovery_kit::time::to_micros;
use recovery_kit::{Error, Scope};
use sqlx::AnyConnection;

use crate::store::audit::AuditRow;
use crate::wire::audit::AuditQuery;
use crate::{Change, Listed, Protocols, store};

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    ClientCreated,
    ClientUpdated,
    ClientErased,
    ScreeningRecorded,
    WaiverSigned,
    ActivityLogged,
    SessionRecorded,
    ProtocolAssigned,
    RulesUpdated,
}

impl Action {
    /// The stable name stored and shown, e.g. `client.created`.
    fn as_str(self) -> &'static str {
        match self {
            Action::ClientCreated => "client.created",
            Action::ClientUpdated => "client.updated",
            Action::ClientErased => "client.erased",
            Action::ScreeningRecorded => "screening.recorded",
            Action::WaiverSigned => "waiver.signed",
            Action::ActivityLogged => "activity.logged",
            Action::SessionRecorded => "session.recorded",
            Action::ProtocolAssigned => "protocol.assigned",
            Action::RulesUpdated => "rules.updated",
        }
    }
}

impl Change<'_> {
    /// Records this change, `action` about client `client_id` (`None`: the
    /// tenant's own settings), in the change's transaction `conn`. `detail`
    /// may hold personal data: erasure empties it.
    pub(crate) async fn audit(
        &self,
        conn: &mut AnyConnection,
        client_id: Option<&str>,
        action: Action,
        detail: String,
    ) -> Result<(), Error> {
        let row = AuditRow {
            id: new_id(),
            client_id: client_id.map(str::to_owned),
            actor: self.actor.to_owned(),
            action: action.as_str().to_owned(),
            detail,
            occur_time: to_micros(self.now),
        };
        store::audit::insert(conn, self.scope, &row).await
    }
}

impl Protocols {
    /// A page of the trail, newest first: one client's (erased or not), or
    /// the whole tenant's.
    pub(crate) async fn audit_trail(
        &self,
        scope: &Scope,
        query: AuditQuery,
    ) -> Result<Listed<AuditRow>, Error> {
        let mut conn = store::reader(&self.db).await?;
        if let Some(client_id) = &query.client_id {
            // Another tenant's client is NOT_FOUND; an erased one keeps its
            // trail.
            store::clients::find(&mut conn, scope, client_id, recovery_kit::Lock::Read).await?;
        }
        let mut rows = store::audit::list(&mut conn, scope, &query).await?;
        let next_page_token = query
            .page
            .finish(&mut rows, |row| (row.occur_time, row.id.as_str()));
        Ok(Listed {
            items: rows,
            next_page_token,
        })
    }
}
