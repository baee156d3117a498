//! What booking's outbox hands on: device releases to fleet and completed
//! sessions to protocols' history. Delivered at least once; both ends are
//! idempotent (fleet releases what is still held, protocols records each
//! booking once).

use std::collections::BTreeMap;

use recovery_kit::auth::BoxFuture;
use recovery_kit::events::Event;
use recovery_kit::outbox::Consumer;
use recovery_kit::time::from_micros;
use recovery_kit::{Db, Error, Lock, Scope};
use recovery_peers::CompletedSession;
use recovery_proto::booking::v1 as pb;
use recovery_proto::fleet::v1 as fleet;

use crate::store;
use crate::{Peers, RELEASE_DEVICES_TOPIC, SESSION_COMPLETED_TOPIC};

/// The consumer of booking's workflow events.
pub(crate) struct Workflow {
    db: Db,
    peers: Peers,
}

impl Workflow {
    pub(crate) fn new(db: Db, peers: Peers) -> Self {
        Self { db, peers }
    }

    async fn release(&self, event: &Event) -> Result<(), Error> {
        let request = decode::<fleet::ReleaseBookingReservationsRequest>(event)?;
        let released = self
            .peers
            .devices
            .release_booking(
                &event.tenant_id,
                &request.booking_id,
                &request.keep_reservation_ids,
            )
            .await?;
        tracing::info!(booking_id = %request.booking_id, released, "booking's devices released");
        Ok(())
    }

    async fn record(&self, event: &Event) -> Result<(), Error> {
        let id = decode::<pb::GetBookingRequest>(event)?.id;
        let (booking, devices) = {
            let mut conn = self.db.read().await?;
            let Some(booking) =
                store::bookings::get(&mut conn, &Scope::All, &id, Lock::Read).await?
            else {
                tracing::warn!(booking_id = %id, "completed booking not found; event dropped");
                return Ok(());
            };
            let devices = store::workflow::devices(&mut conn, &id).await?;
            (booking, devices)
        };
        let (mut device_id, mut device_settings) = (None, BTreeMap::new());
        if let Some(first) = devices.first() {
            device_id = Some(first.device_id.clone());
            let usage = self
                .peers
                .devices
                .usage(&booking.tenant_id, &first.reservation_id)
                .await?;
            if let Some(usage) = usage {
                device_id = Some(usage.device_id);
                device_settings = usage.settings;
            }
        }
        let (start, duration) = happened(&booking);
        let session = CompletedSession {
            booking_id: booking.id.clone(),
            client_id: booking.client_id.clone(),
            modality: booking.modality,
            start,
            duration,
            location_id: booking.location_id.clone(),
            device_id,
            device_settings,
            soreness_before: booking.soreness_before.and_then(|s| i32::try_from(s).ok()),
            soreness_after: booking.soreness_after.and_then(|s| i32::try_from(s).ok()),
            notes: booking.session_notes.clone(),
        };
        self.peers
            .history
            .record(&booking.tenant_id, &session)
            .await?;
        tracing::info!(booking_id = %booking.id, "session recorded in the history");
        Ok(())
    }
}

/// Whether a peer's answer is a refusal that a retry would get again.
pub(crate) fn is_final(error: &Error) -> bool {
    match error {
        Error::InvalidArgument(_)
        | Error::NotFound { .. }
        | Error::AlreadyExists { .. }
        | Error::FailedPrecondition { .. }
        | Error::PermissionDenied(_) => true,
        Error::Upstream(status) => matches!(
            status.code(),
            tonic::Code::InvalidArgument
                | tonic::Code::NotFound
                | tonic::Code::AlreadyExists
                | tonic::Code::FailedPrecondition
                | tonic::Code::PermissionDenied
        ),
        Error::Unauthenticated(_)
        | Error::Unavailable(_)
        | Error::ResourceExhausted { .. }
        | Error::Internal(_) => false,
    }
}

/// The event's payload as `T`; a payload this build cannot read is an
/// internal error (the event stays, for a build that can).
fn decode<T: prost::Message + Default>(event: &Event) -> Result<T, Error> {
    T::decode(event.payload.as_slice()).map_err(|e| {
        Error::Internal(anyhow::Error::new(e).context(format!("outbox event {}", event.id)))
    })
}

impl Consumer for Workflow {
    fn name(&self) -> &'static str {
        "booking.workflow"
    }

    fn wants(&self, topic: &str) -> bool {
        topic == RELEASE_DEVICES_TOPIC || topic == SESSION_COMPLETED_TOPIC
    }

    fn consume<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let done = match event.topic {
                RELEASE_DEVICES_TOPIC => self.release(event).await,
                SESSION_COMPLETED_TOPIC => self.record(event).await,
                _ => Ok(()),
            };
            match done {
                // A refusal will not change on a retry (the client was
                // erased meanwhile, say): retrying would hold up every
                // event behind this one.
                Err(error) if is_final(&error) => {
                    tracing::warn!(
                        event_id = %event.id,
                        topic = event.topic,
                        error = %error,
                        "peer refused a workflow event; dropped"
                    );
                    Ok(())
                }
                other => other,
            }
        })
    }
}

/// When the session happened and how long it took: from `StartSession` to
/// `CompleteSession` as staff ran it (a client taken early, a session run
/// long), the booked window where a time is missing; at least a second and
/// at most the four hours a history session may last.
fn happened(booking: &store::Booking) -> (jiff::Timestamp, jiff::SignedDuration) {
    let start = from_micros(booking.session_start.unwrap_or(booking.start));
    let end = from_micros(booking.session_end.unwrap_or(booking.end));
    let booked = from_micros(booking.end).duration_since(from_micros(booking.start));
    let took = end.duration_since(start);
    let took = if took.is_positive() { took } else { booked };
    let took = took.clamp(
        jiff::SignedDuration::from_secs(1),
        jiff::SignedDuration::from_hours(4),
    );
    (start, took)
}
