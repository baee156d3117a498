//! `WatchSchedule`: a location's day as a snapshot, then every change;
//! slots held by waitlist offers show as held, then released.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use recovery_kit::events::Missed;
use recovery_kit::time::from_proto;
use recovery_kit::{Caller, Error, Scope};
use recovery_proto::booking::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::store::BookingFilter;
use crate::wire::{self, Watch};
use crate::{BOOKING_TOPIC, Bookings, OFFER_TOPIC};

/// The stream a watcher reads.
pub(crate) type ScheduleStream = ReceiverStream<Result<pb::WatchScheduleResponse, Status>>;

/// The slot an offer holds, as the schedule shows it.
fn held_slot(offer: &pb::WaitlistOffer) -> pb::Hold {
    pb::Hold {
        id: offer.hold_id.clone(),
        location_id: offer.location_id.clone(),
        treatment_id: offer.treatment_id.clone(),
        client_id: offer.client_id.clone(),
        start_time: offer.start_time,
        end_time: offer.end_time,
        resources: offer.resources.clone(),
        expire_time: offer.expire_time,
        ..Default::default()
    }
}

/// Whether `start` lies in `[from, to)`.
fn within(start: Option<&prost_types::Timestamp>, (from, to): (Timestamp, Timestamp)) -> bool {
    start
        .and_then(|t| from_proto(t).ok())
        .is_some_and(|s| s >= from && s < to)
}

/// What a watcher is told of an offer of the day: its slot held while it
/// is open, released once it is not.
fn offer_change(offer: &pb::WaitlistOffer) -> pb::WatchScheduleResponse {
    use pb::watch_schedule_response::Event;
    let slot = held_slot(offer);
    pb::WatchScheduleResponse {
        event: Some(if offer.state == pb::OfferState::Open as i32 {
            Event::Held(slot)
        } else {
            Event::Released(slot)
        }),
    }
}

fn changed(booking: pb::Booking) -> pb::WatchScheduleResponse {
    pb::WatchScheduleResponse {
        event: Some(pb::watch_schedule_response::Event::Changed(booking)),
    }
}

impl Bookings {
    async fn day_snapshot(
        &self,
        scope: &Scope,
        location_id: &str,
        day: &str,
        (from, to): (Timestamp, Timestamp),
    ) -> Result<pb::WatchScheduleResponse, Error> {
        let filter = BookingFilter::Window {
            location_id,
            from,
            to,
        };
        let bookings = self.bookings(scope, &filter, None, None, i64::MAX).await?;
        let holds = self
            .open_offers(scope, location_id)
            .await?
            .iter()
            .filter(|o| within(o.start_time.as_ref(), (from, to)))
            .map(held_slot)
            .collect();
        Ok(pb::WatchScheduleResponse {
            event: Some(pb::watch_schedule_response::Event::Snapshot(
                pb::ScheduleSnapshot {
                    bookings,
                    day: day.to_owned(),
                    holds,
                },
            )),
        })
    }

    pub(crate) async fn watch_schedule(
        self: Arc<Self>,
        caller: &Caller,
        watch: Watch,
    ) -> Result<ScheduleStream, Error> {
        let scope = caller.scope()?;
        let location = self
            .directory
            .location(caller, &watch.location_id, "location_id")
            .await?;
        let (_, tz) = wire::location(&location).map_err(Error::Internal)?;
        let day = watch
            .day
            .unwrap_or_else(|| self.clock.now().to_zoned_datetime(tz.clone()).date());
        let (from, to) = wire::day_bounds(day, &tz).map_err(Error::Internal)?;
        let day = day.to_string();
        // Subscribe before the snapshot, so that no change falls between.
        let mut events = self.bus.subscribe(
            BOOKING_TOPIC,
            location.tenant_id.clone(),
            location.id.clone(),
        );
        let mut offers =
            self.bus
                .subscribe(OFFER_TOPIC, location.tenant_id.clone(), location.id.clone());
        let first = self
            .day_snapshot(&scope, &location.id, &day, (from, to))
            .await?;
        let mut seen: HashSet<String> = match &first.event {
            Some(pb::watch_schedule_response::Event::Snapshot(s)) => {
                s.bookings.iter().map(|b| b.id.clone()).collect()
            }
            _ => HashSet::new(),
        };
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
                    offer = offers.next() => match offer {
                        Ok(event) => {
                            let Ok(offer) = <pb::WaitlistOffer as prost::Message>::decode(
                                event.payload.as_slice(),
                            ) else {
                                continue;
                            };
                            if !within(offer.start_time.as_ref(), (from, to)) {
                                continue;
                            }
                            if tx.send(Ok(offer_change(&offer))).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        // Lagged: the snapshot below carries the holds too.
                        Err(missed) => Err(missed),
                    },
                };
                let message = match event {
                    Ok(event) => {
                        let Ok(booking) =
                            <pb::Booking as prost::Message>::decode(event.payload.as_slice())
                        else {
                            continue;
                        };
                        let start = booking.start_time.as_ref().and_then(|t| from_proto(t).ok());
                        let today = start.is_some_and(|s| s >= from && s < to);
                        // A booking moved away from the day is news too.
                        if !today && !seen.contains(&booking.id) {
                            continue;
                        }
                        seen.insert(booking.id.clone());
                        changed(booking)
                    }
                    Err(Missed::Lagged) => {
                        match this
                            .day_snapshot(&scope, &location.id, &day, (from, to))
                            .await
                        {
                            Ok(snapshot) => snapshot,
                            Err(error) => {
                                let _ = tx.send(Err(error.into())).await;
                                break;
                            }
                        }
                    }
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
