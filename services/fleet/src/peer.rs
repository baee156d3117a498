//! The fleet as booking's peer (`recovery_peers::Devices`), in process: the
//! same wire checks and area calls as the gRPC face, acting as the service
//! for one tenant.

use jiff::Timestamp;
use recovery_kit::auth::BoxFuture;
use recovery_kit::time::to_proto;
use recovery_kit::{Caller, Error, Role};
use recovery_peers::remote::settings_map;
use recovery_peers::{DeviceNeed, Devices, Reserved, Usage};
use recovery_proto::fleet::v1 as pb;

use crate::{Fleet, wire};

/// The caller the in-process peer acts as: the service, for `tenant_id`.
fn service(tenant_id: &str) -> Caller {
    Caller {
        tenant_id: Some(tenant_id.to_owned()),
        role: Role::Service,
        key_id: "recoveryd".to_owned(),
    }
}

/// What `ReserveDevice` by requirement for a booking is sent as over gRPC:
/// in process the same request goes through the same checks, so a request
/// id means the same reservation whichever way it came.
fn reserve_request(
    booking_id: &str,
    location_id: &str,
    (start, end): (Timestamp, Timestamp),
    need: DeviceNeed,
    request_id: &str,
) -> pb::ReserveDeviceRequest {
    pb::ReserveDeviceRequest {
        target: Some(pb::reserve_device_request::Target::Requirement(
            pb::DeviceRequirement {
                location_id: location_id.to_owned(),
                kind: need.kind as i32,
                attachment: need.attachment as i32,
                min_battery_percent: need.min_battery_percent,
            },
        )),
        start_time: Some(to_proto(start)),
        end_time: Some(to_proto(end)),
        duration: None,
        purpose: Some(pb::reserve_device_request::Purpose::BookingId(
            booking_id.to_owned(),
        )),
        request_id: request_id.to_owned(),
    }
}

impl Devices for Fleet {
    fn reserve<'a>(
        &'a self,
        tenant_id: &'a str,
        booking_id: &'a str,
        location_id: &'a str,
        window: (Timestamp, Timestamp),
        need: DeviceNeed,
        request_id: &'a str,
    ) -> BoxFuture<'a, Result<Reserved, Error>> {
        Box::pin(async move {
            let caller = service(tenant_id);
            let request = reserve_request(booking_id, location_id, window, need, request_id);
            let (reserve, key) =
                wire::reserve_device(&request, &caller.scope()?, self.clock.now())?;
            let response = self.reserve(&caller, reserve, key).await?;
            let reservation = response
                .reservation
                .ok_or_else(|| Error::Internal(anyhow::anyhow!("a reservation answers none")))?;
            Ok(Reserved {
                reservation_id: reservation.id,
                device_id: reservation.device_id,
                kind: need.kind,
            })
        })
    }

    fn release_booking<'a>(
        &'a self,
        tenant_id: &'a str,
        booking_id: &'a str,
        except: &'a [String],
    ) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(async move {
            let release =
                wire::release_booking_reservations(&pb::ReleaseBookingReservationsRequest {
                    booking_id: booking_id.to_owned(),
                    keep_reservation_ids: except.to_vec(),
                })?;
            let released = self.release_booking(&service(tenant_id), &release).await?;
            Ok(released.len())
        })
    }

    fn usage<'a>(
        &'a self,
        tenant_id: &'a str,
        reservation_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Usage>, Error>> {
        Box::pin(async move {
            let id = wire::id(reservation_id, "reservation_id")?;
            let row = self.reservation(&service(tenant_id), &id).await?;
            if row.check_in_time.is_none() {
                return Ok(None);
            }
            let reservation = wire::reservation(&row);
            Ok(Some(Usage {
                device_id: row.device_id,
                settings: settings_map(reservation.settings.as_ref()),
            }))
        })
    }
}
