//! Screenings: the health questionnaire (and blood pressure) a client
//! answers before cold or compression; the newest is current.

use recovery_kit::ids::new_id;
use recovery_kit::{Caller, Error, Lock, Scope};
use recovery_proto::protocols::v1 as pb;

use crate::audit::Action;
use crate::wire::screening::NewScreening;
use crate::{Protocols, clients, store};

impl Protocols {
    /// `RecordScreening`: once per `request_id`, for a client not erased.
    pub(crate) async fn screen_client(
        &self,
        caller: &Caller,
        scope: &Scope,
        new: NewScreening,
    ) -> Result<pb::Screening, Error> {
        let change = self.change(caller, scope);
        let key = new.key.as_ref();
        let (screening, fresh) = self
            .create_once(change, key, &new, |tx, (change, new)| {
                Box::pin(async move {
                    let client_id = new.client_id.as_str();
                    clients::live(tx, change.scope, client_id, Lock::ForUpdate).await?;
                    store::screening::insert(tx, change, &new_id(), new).await?;
                    let present: Vec<&str> = new
                        .answers
                        .iter()
                        .filter(|a| a.present)
                        .map(|a| a.condition)
                        .collect();
                    let detail = format!(
                        "questionnaire {}, {} answers, present: {present:?}",
                        new.version,
                        new.answers.len()
                    );
                    change
                        .audit(tx, Some(client_id), Action::ScreeningRecorded, detail)
                        .await?;
                    store::screening::current(tx, change.scope, client_id)
                        .await?
                        .ok_or_else(|| Error::Internal(anyhow::anyhow!("screening just written")))
                })
            })
            .await?;
        if fresh {
            tracing::info!(client_id = %new.client_id, screening_id = %screening.id, "screening recorded");
        }
        Ok(screening)
    }

    /// `GetScreening`: the client's current screening.
    pub(crate) async fn screening(
        &self,
        scope: &Scope,
        client_id: &str,
    ) -> Result<pb::Screening, Error> {
        let mut conn = store::reader(&self.db).await?;
        store::clients::find(&mut conn, scope, client_id, Lock::Read).await?;
        store::screening::current(&mut conn, scope, client_id)
            .await?
            .ok_or_else(|| Error::not_found("screening of client", client_id))
    }
}
