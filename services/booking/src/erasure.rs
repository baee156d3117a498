//! Erasure travels: when protocols erases a client, booking empties what it
//! holds that is personal (session notes, soreness, cancel reasons) and
//! keeps the anonymous booking rows. An erased client cannot be booked, so
//! they leave the waitlist and an open offer of theirs is withdrawn (its
//! slot passed on).

use recovery_kit::auth::BoxFuture;
use recovery_kit::{Caller, Error, Role};

use crate::{Bookings, store};

impl Bookings {
    /// Forgets what is personal about `client_id` in `tenant_id`'s bookings;
    /// how many bookings changed. Idempotent.
    pub(crate) async fn forget(&self, tenant_id: &str, client_id: &str) -> Result<u64, Error> {
        let mut tx = self.db.begin().await?;
        let changed = store::bookings::forget_client(&mut tx, tenant_id, client_id).await?;
        let now = recovery_kit::time::to_micros(self.clock.now());
        store::waitlist::leave_all(&mut tx, tenant_id, client_id, now).await?;
        let open = store::waitlist::open_offer_of_client(&mut tx, tenant_id, client_id).await?;
        let mut withdrawn = None;
        if let Some(offer) = open
            && store::waitlist::close_offer(
                &mut tx,
                &offer.id,
                store::waitlist::OfferStatus::Withdrawn,
                now,
            )
            .await?
        {
            self.withdraw_hold(&mut tx, &offer, now).await?;
            withdrawn = Some(offer.id);
        }
        tx.commit().await?;
        if let Some(offer_id) = withdrawn {
            self.outbox.wake();
            self.publish_offer_id(&offer_id).await;
        }
        tracing::info!(client_id, bookings = changed, "client forgotten");
        Ok(changed)
    }

    /// `ForgetClient`: a service acting for one tenant.
    pub(crate) async fn forget_for(&self, caller: &Caller, client_id: &str) -> Result<u64, Error> {
        let (Role::Service, Some(tenant_id)) = (caller.role, caller.tenant_id.as_deref()) else {
            return Err(Error::PermissionDenied(format!(
                "a service acting for a tenant forgets clients: name it in {}",
                recovery_kit::auth::TENANT_HEADER
            )));
        };
        self.forget(tenant_id, client_id).await
    }
}

impl recovery_peers::Erasure for Bookings {
    fn forget_client<'a>(
        &'a self,
        tenant_id: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.forget(tenant_id, client_id).await?;
            Ok(())
        })
    }
}
