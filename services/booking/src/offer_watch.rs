//! `WatchOffers`: a location's open waitlist offers as a snapshot, then
//! every offer made or closed (what a front-desk screen shows).

use std::sync::Arc;

use recovery_kit::events::Missed;
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error, Scope};
use recovery_proto::booking::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::store;
use crate::{Bookings, OFFER_TOPIC};

/// The stream a watcher reads.
pub(crate) type OffersStream = ReceiverStream<Result<pb::WatchOffersResponse, Status>>;

impl Bookings {
    /// The location's offers open now, in wire form.
    pub(crate) async fn open_offers(
        &self,
        scope: &Scope,
        location_id: &str,
    ) -> Result<Vec<pb::WaitlistOffer>, Error> {
        let now = self.clock.now();
        let mut conn = self.db.read().await?;
        let offers =
            store::waitlist::open_offers_at(&mut conn, scope, location_id, to_micros(now)).await?;
        let mut out = Vec::with_capacity(offers.len());
        for offer in &offers {
            let held = store::allocations::held(&mut conn, &offer.hold_id).await?;
            out.push(offer.to_wire(&held, now));
        }
        Ok(out)
    }

    async fn offers_snapshot(
        &self,
        scope: &Scope,
        location_id: &str,
    ) -> Result<pb::WatchOffersResponse, Error> {
        Ok(pb::WatchOffersResponse {
            event: Some(pb::watch_offers_response::Event::Snapshot(
                pb::OffersSnapshot {
                    offers: self.open_offers(scope, location_id).await?,
                },
            )),
        })
    }

    pub(crate) async fn watch_offers(
        self: Arc<Self>,
        caller: &Caller,
        location_id: &str,
    ) -> Result<OffersStream, Error> {
        let scope = caller.scope()?;
        let location = self
            .directory
            .location(caller, location_id, "location_id")
            .await?;
        // Subscribe before the snapshot, so that no change falls between.
        let mut events =
            self.bus
                .subscribe(OFFER_TOPIC, location.tenant_id.clone(), location.id.clone());
        let first = self.offers_snapshot(&scope, &location.id).await?;
        let (tx, rx) = mpsc::channel(64);
        let _ = tx.send(Ok(first)).await;
        let mut shutdown = self.shutdown.clone();
        let this = self;
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    () = shutdown.wait() => break,
                    () = tx.closed() => break,
                    event = events.next() => event,
                };
                let message = match event {
                    Ok(event) => {
                        let Ok(offer) =
                            <pb::WaitlistOffer as prost::Message>::decode(event.payload.as_slice())
                        else {
                            continue;
                        };
                        pb::WatchOffersResponse {
                            event: Some(pb::watch_offers_response::Event::Changed(offer)),
                        }
                    }
                    Err(Missed::Lagged) => match this.offers_snapshot(&scope, &location.id).await {
                        Ok(snapshot) => snapshot,
                        Err(error) => {
                            let _ = tx.send(Err(error.into())).await;
                            break;
                        }
                    },
                    Err(Missed::Closed) => break,
                };
                if tx.send(Ok(message)).await.is_err() {
                    break;
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}
