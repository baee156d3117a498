//! Devices come with the booking: a saga with compensation, keyed by the
//! booking id. A saga row is committed before the first reservation and
//! deleted by the booking's own transaction; when a step fails, the
//! booking's reservations are released and the row goes. A crash between
//! the steps leaves the row: the sweeper releases what the booking does not
//! hold (everything, when it never committed).

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use recovery_kit::Error;
use recovery_kit::server::{Shutdown, spawn_every};
use recovery_kit::time::to_micros;
use recovery_peers::{DeviceNeed, Reserved};

use crate::Bookings;
use crate::store;

/// How often the sweeper looks for sagas left behind.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// How old a saga row must be to count as left behind: longer than any
/// booking call takes.
pub(crate) const ABANDONED_AFTER: SignedDuration = SignedDuration::from_secs(60);
/// Saga rows swept at once.
const SWEEP_BATCH: i64 = 100;

/// The devices a booking reserves: whose, where, when, what.
pub(crate) struct Reservation<'a> {
    pub(crate) tenant_id: &'a str,
    pub(crate) booking_id: &'a str,
    pub(crate) location_id: &'a str,
    pub(crate) window: (Timestamp, Timestamp),
    pub(crate) needs: &'a [DeviceNeed],
    /// Makes fleet request ids unique per attempt: `{booking_id}/{i}` for a
    /// new booking, `{booking_id}/{round}/{i}` for a move.
    pub(crate) round: Option<&'a str>,
    /// Reservations the booking already holds (a move): never released by
    /// this saga's compensation.
    pub(crate) keep: &'a [String],
}

impl Bookings {
    /// Steps 1 and 2: records the saga, then reserves every needed device.
    /// When one cannot be reserved, what was reserved is released, the saga
    /// row goes, and fleet's refusal is the answer.
    pub(crate) async fn reserve_devices(
        &self,
        r: &Reservation<'_>,
    ) -> Result<Vec<Reserved>, Error> {
        {
            let mut tx = self.db.begin().await?;
            let now = to_micros(self.clock.now());
            store::workflow::begin_saga(&mut tx, r.booking_id, r.tenant_id, now).await?;
            tx.commit().await?;
        }
        let mut reserved = Vec::with_capacity(r.needs.len());
        for (i, need) in r.needs.iter().enumerate() {
            let request_id = match r.round {
                None => format!("{}/{i}", r.booking_id),
                Some(round) => format!("{}/{round}/{i}", r.booking_id),
            };
            let got = self
                .peers
                .devices
                .reserve(
                    r.tenant_id,
                    r.booking_id,
                    r.location_id,
                    r.window,
                    *need,
                    &request_id,
                )
                .await;
            match got {
                Ok(device) => reserved.push(device),
                Err(error) => {
                    self.compensate(r.tenant_id, r.booking_id, r.keep).await;
                    return Err(error);
                }
            }
        }
        Ok(reserved)
    }

    /// Undoes a saga: releases the booking's reservations but `keep`, then
    /// deletes its row. A failure here leaves the row for the sweeper.
    pub(crate) async fn compensate(&self, tenant_id: &str, booking_id: &str, keep: &[String]) {
        let released = self
            .peers
            .devices
            .release_booking(tenant_id, booking_id, keep)
            .await;
        match released {
            Ok(n) => {
                tracing::info!(booking_id, released = n, "device reservations released");
                if let Err(error) = self.end_saga(booking_id).await {
                    tracing::warn!(booking_id, error = %error, "saga row left for the sweeper");
                }
            }
            Err(error) => {
                tracing::warn!(booking_id, error = %error, "release failed; the sweeper will retry");
            }
        }
    }

    async fn end_saga(&self, booking_id: &str) -> Result<(), Error> {
        let mut tx = self.db.begin().await?;
        store::workflow::end_saga(&mut tx, booking_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Finishes sagas left behind for longer than a minute (by the injected
    /// clock): releases every reservation their booking does not hold (all
    /// of them when it never committed) and deletes the row. Returns how
    /// many sagas it finished. Runs at start and every 30 s; tests call it.
    pub async fn sweep_sagas(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let before = to_micros(now.saturating_sub(ABANDONED_AFTER).unwrap_or(now));
        let stale = {
            let mut conn = self.db.read().await?;
            store::workflow::stale_sagas(&mut conn, before, SWEEP_BATCH).await?
        };
        let mut finished = 0;
        for saga in stale {
            let keep: Vec<String> = {
                let mut conn = self.db.read().await?;
                store::workflow::devices(&mut conn, &saga.booking_id)
                    .await?
                    .into_iter()
                    .map(|d| d.reservation_id)
                    .collect()
            };
            let released = self
                .peers
                .devices
                .release_booking(&saga.tenant_id, &saga.booking_id, &keep)
                .await?;
            self.end_saga(&saga.booking_id).await?;
            tracing::info!(booking_id = %saga.booking_id, released, "abandoned saga swept");
            finished += 1;
        }
        Ok(finished)
    }

    /// Sweeps at start and then `every`, until `shutdown`.
    pub(crate) fn spawn_sweeper(self: &Arc<Self>, every: Duration, shutdown: Shutdown) {
        spawn_every(every, shutdown, Arc::clone(self), |this| async move {
            if let Err(error) = this.sweep_sagas().await {
                tracing::warn!(error = %error, "saga sweep failed");
            }
        });
    }
}
