//! Waivers: what a client (or, for a minor, a guardian) signed; the newest
//! signature is current.

use jiff::civil::Date;
use recovery_kit::ids::new_id;
use recovery_kit::{Caller, Error, Lock, Scope};
use recovery_proto::protocols::v1 as pb;

use crate::audit::Action;
use crate::wire::waivers::NewWaiver;
use crate::wire::{date, today};
use crate::{Protocols, clients, store};

/// Age in whole years on `on` (the birthday counts).
fn age(dob: Date, on: Date) -> i16 {
    let before_birthday = (on.month(), on.day()) < (dob.month(), dob.day());
    on.year() - dob.year() - i16::from(before_birthday)
}

impl Protocols {
    /// `SignWaiver`: once per `request_id`, for a client not erased; a
    /// minor's waiver (by the tenant's adult age) needs a guardian.
    pub(crate) async fn file_waiver(
        &self,
        caller: &Caller,
        scope: &Scope,
        new: NewWaiver,
    ) -> Result<pb::Waiver, Error> {
        let change = self.change(caller, scope);
        let key = new.key.as_ref();
        let (waiver, fresh) = self
            .create_once(change, key, &new, |tx, (change, new)| {
                Box::pin(async move {
                    let client_id = new.client_id.as_str();
                    let client =
                        clients::live(tx, change.scope, client_id, Lock::ForUpdate).await?;
                    let adult_age = store::rules::config(tx, change.scope).await?.adult_age;
                    if new.guardian.is_empty()
                        && let Ok(dob) = date(&client.date_of_birth)
                        && age(dob, today(new.sign_time)) < i16::from(adult_age)
                    {
                        return Err(Error::invalid(
                            "waiver.guardian_name",
                            "required: the client is a minor, a parent or guardian signs",
                        ));
                    }
                    let id = new_id();
                    store::waivers::insert(tx, change, &id, new).await?;
                    let detail = format!(
                        "version {}, signer {:?}, guardian {:?}",
                        new.version, new.signer, new.guardian
                    );
                    change
                        .audit(tx, Some(client_id), Action::WaiverSigned, detail)
                        .await?;
                    Ok(new.to_wire(id, change.now, change.actor))
                })
            })
            .await?;
        if fresh {
            tracing::info!(client_id = %new.client_id, waiver_id = %waiver.id, "waiver signed");
        }
        Ok(waiver)
    }

    /// `GetWaiver`: the client's current waiver.
    pub(crate) async fn waiver(&self, scope: &Scope, client_id: &str) -> Result<pb::Waiver, Error> {
        let mut conn = store::reader(&self.db).await?;
        store::clients::find(&mut conn, scope, client_id, Lock::Read).await?;
        store::waivers::current(&mut conn, scope, client_id)
            .await?
            .ok_or_else(|| Error::not_found("waiver of client", client_id))
    }
}
