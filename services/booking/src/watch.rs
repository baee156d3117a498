//! `WatchSchedule`: a location's day as a snapshot, then every change.

use std::collections::HashSet;

use jiff::Timestamp;
use recovery_kit::events::Missed;
use recovery_kit::time::{from_proto, to_micros};
use recovery_kit::{Caller, Error};
use recovery_proto::booking::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::model;
use crate::store::{self};
use crate::{BOOKING_TOPIC, Bookings, DESK};

/// The stream a watcher reads.
pub(crate) type ScheduleStream = ReceiverStream<Result<pb::WatchScheduleResponse, Status>>;

fn changed(booking: pb::Booking) -> pb::WatchScheduleResponse {
    pb::WatchScheduleResponse {
        event: Some(pb::watch_schedule_response::Event::Changed(booking)),
    }
}

impl Bookings {
    async fn day_snapshot(
        &self,
        caller: &Caller,
        location_id: &str,
        day: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<pb::WatchScheduleResponse, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM bookings WHERE ($1 = '' OR tenant_id = $1) AND location_id = $2 \
             AND start_us >= $3 AND start_us < $4 ORDER BY start_us, id",
            store::BOOKING_COLUMNS
        ))
        .bind(caller.scope_text())
        .bind(location_id)
        .bind(to_micros(from))
        .bind(to_micros(to))
        .fetch_all(self.db.reader())
        .await?;
        let mut bookings = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut booking = store::booking(row)?;
            booking.resources = store::held(self.db.reader(), &booking.id).await?;
            bookings.push(booking);
        }
        Ok(pb::WatchScheduleResponse {
            event: Some(pb::watch_schedule_response::Event::Snapshot(
                pb::ScheduleSnapshot {
                    bookings,
                    day: day.to_owned(),
                },
            )),
        })
    }

    pub(crate) async fn watch_schedule(
        self: std::sync::Arc<Self>,
        caller: Caller,
        req: pb::WatchScheduleRequest,
    ) -> Result<ScheduleStream, Error> {
        caller.require(DESK)?;
        let location = self
            .directory
            .location(&caller, &req.location_id, "location_id")
            .await?;
        let (_, tz) = model::location(&location).map_err(Error::Internal)?;
        let day = if req.day.is_empty() {
            self.clock.now().to_zoned_datetime(tz.clone()).date()
        } else {
            model::date(&req.day).map_err(|e| Error::invalid("day", e))?
        };
        let (from, to) = model::day_bounds(day, &tz).map_err(Error::Internal)?;
        let day = day.to_string();
        // Subscribe before the snapshot, so that no change falls between.
        let mut events = self.bus.subscribe(
            BOOKING_TOPIC,
            location.tenant_id.clone(),
            location.id.clone(),
        );
        let first = self
            .day_snapshot(&caller, &location.id, &day, from, to)
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
                            .day_snapshot(&caller, &location.id, &day, from, to)
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
