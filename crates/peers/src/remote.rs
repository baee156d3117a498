//! The peers over gRPC, for a service run apart: each call carries the
//! platform's service key, the tenant it acts for (`x-recovery-tenant`) and
//! a deadline; a peer that does not answer is UNAVAILABLE, never a hang.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use recovery_kit::auth::BoxFuture;
use recovery_kit::telemetry::{TracedChannel, traced};
use recovery_kit::{Error, time};
use recovery_proto::booking::v1 as booking;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::fleet::v1 as fleet;
use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use recovery_proto::protocols::v1 as protocols;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::{
    Batch, Clients, CompletedSession, DeviceLinks, DeviceNeed, DeviceStatus, Devices, Erasure,
    Finding, Follows, History, Judged, Proposal, Reserved, SlotQuery, Slots, Standing,
    SuggestedSlot, TENANT_HEADER, Usage, Verdict,
};

/// How long a call to a peer may take.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// A peer service at a URL, called with the service key.
#[derive(Clone)]
pub struct Peer {
    name: &'static str,
    channel: TracedChannel,
    service_key: String,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// The peer `name` at `url` (connected lazily, so services may start in
    /// any order).
    pub fn new(name: &'static str, url: &str, service_key: &str) -> anyhow::Result<Self> {
        let channel = traced(
            Channel::from_shared(url.to_owned())?
                .connect_timeout(DEADLINE)
                .connect_lazy(),
            url,
        );
        Ok(Self {
            name,
            channel,
            service_key: service_key.to_owned(),
        })
    }

    fn request<T>(&self, tenant_id: &str, message: T) -> Result<tonic::Request<T>, Error> {
        // No reader kept (`Db::reading`) while the peer is waited for.
        recovery_kit::db::let_go();
        let mut request = tonic::Request::new(message);
        request.set_timeout(DEADLINE);
        let metadata = request.metadata_mut();
        metadata.insert(
            "authorization",
            format!("Bearer {}", self.service_key)
                .parse()
                .map_err(|_| Error::Unauthenticated("malformed service key"))?,
        );
        metadata.insert(
            TENANT_HEADER,
            tenant_id
                .parse()
                .map_err(|_| Error::invalid("tenant_id", "not a valid tenant id"))?,
        );
        Ok(request)
    }

    /// What a peer's failure means to our caller: the peer's own refusals
    /// pass through with their code, reason and details; anything else is
    /// UNAVAILABLE, naming the peer.
    fn failed(&self, status: Status) -> Error {
        match status.code() {
            Code::NotFound
            | Code::FailedPrecondition
            | Code::InvalidArgument
            | Code::AlreadyExists => Error::Upstream(status),
            _ => Error::Unavailable(format!("{}: {status}", self.name)),
        }
    }
}

/// Protocols over gRPC: the client, the rules and the history.
#[derive(Debug, Clone)]
pub struct RemoteProtocols(pub Peer);

impl Clients for RemoteProtocols {
    fn standing<'a>(
        &'a self,
        tenant_id: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Standing, Error>> {
        Box::pin(async move {
            let request = self.0.request(
                tenant_id,
                protocols::GetClientRequest {
                    id: client_id.to_owned(),
                },
            )?;
            let client = ProtocolServiceClient::new(self.0.channel.clone())
                .get_client(request)
                .await
                .map_err(|s| self.0.failed(s))?
                .into_inner()
                .client
                .unwrap_or_default();
            Ok(if client.erase_time.is_some() {
                Standing::Erased
            } else {
                Standing::Active
            })
        })
    }

    fn evaluate<'a>(
        &'a self,
        tenant_id: &'a str,
        proposal: &'a Proposal,
    ) -> BoxFuture<'a, Result<Verdict, Error>> {
        Box::pin(async move {
            let request = self.0.request(
                tenant_id,
                protocols::EvaluateSessionRequest {
                    client_id: proposal.client_id.clone(),
                    modality: proposal.modality.wire(),
                    start_time: Some(time::to_proto(proposal.start)),
                    duration: Some(recovery_kit::wire::duration_to_wire(proposal.duration)),
                    location_id: proposal.location_id.clone(),
                    booked: booked_wire(&proposal.booked),
                },
            )?;
            let evaluation = ProtocolServiceClient::new(self.0.channel.clone())
                .evaluate_session(request)
                .await
                .map_err(|s| self.0.failed(s))?
                .into_inner()
                .evaluation
                .unwrap_or_default();
            Ok(verdict(evaluation))
        })
    }

    fn evaluate_many<'a>(
        &'a self,
        tenant_id: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Judged, Error>> {
        Box::pin(async move {
            let (activity_id, last_activity) = match &batch.follows {
                Follows::Nothing => (String::new(), false),
                Follows::Activity(id) => (id.clone(), false),
                Follows::LastActivity => (String::new(), true),
            };
            let request = self.0.request(
                tenant_id,
                protocols::EvaluateSessionsRequest {
                    client_id: batch.client_id.clone(),
                    sessions: batch
                        .sessions
                        .iter()
                        .map(|s| protocols::ProposedSession {
                            modality: s.modality.wire(),
                            start_time: Some(time::to_proto(s.start)),
                            duration: Some(recovery_kit::wire::duration_to_wire(s.duration)),
                            location_id: s.location_id.clone(),
                        })
                        .collect(),
                    booked: booked_wire(&batch.booked),
                    activity_id,
                    last_activity,
                },
            )?;
            let response = ProtocolServiceClient::new(self.0.channel.clone())
                .evaluate_sessions(request)
                .await
                .map_err(|s| self.0.failed(s))?
                .into_inner();
            let activity = response.activity.and_then(|a| {
                let start = time::from_proto(a.start_time.as_ref()?).ok()?;
                let end = time::from_proto(a.end_time.as_ref()?).ok()?;
                Some((start, end))
            });
            Ok(Judged {
                verdicts: response.evaluations.into_iter().map(verdict).collect(),
                activity,
                cryo_window: response
                    .cryo_window
                    .as_ref()
                    .and_then(|d| recovery_kit::wire::signed_duration(d).ok())
                    .unwrap_or(jiff::SignedDuration::from_hours(5)),
            })
        })
    }
}

fn booked_wire(booked: &[crate::Booked]) -> Vec<protocols::BookedSession> {
    booked
        .iter()
        .map(|b| protocols::BookedSession {
            modality: b.modality.wire(),
            start_time: Some(time::to_proto(b.start)),
            duration: Some(recovery_kit::wire::duration_to_wire(b.duration)),
        })
        .collect()
}

fn findings(list: Vec<protocols::Finding>) -> Vec<Finding> {
    list.into_iter()
        .map(|f| Finding {
            reason: f.reason,
            message: f.message,
        })
        .collect()
}

/// The rules' evaluation as a verdict.
fn verdict(evaluation: protocols::Evaluation) -> Verdict {
    Verdict {
        refusals: findings(evaluation.refusals),
        warnings: findings(evaluation.warnings),
        recommended_duration: evaluation
            .recommended_duration
            .as_ref()
            .and_then(|d| recovery_kit::wire::signed_duration(d).ok()),
    }
}

impl History for RemoteProtocols {
    fn record<'a>(
        &'a self,
        tenant_id: &'a str,
        session: &'a CompletedSession,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let request = self.0.request(
                tenant_id,
                protocols::RecordSessionRequest {
                    session: Some(protocols::RecoverySession {
                        client_id: session.client_id.clone(),
                        modality: session.modality.wire(),
                        start_time: Some(time::to_proto(session.start)),
                        duration: Some(recovery_kit::wire::duration_to_wire(session.duration)),
                        device_id: session.device_id.clone().unwrap_or_default(),
                        device_settings: session.device_settings.clone().into_iter().collect(),
                        soreness_before: session.soreness_before,
                        soreness_after: session.soreness_after,
                        notes: session.notes.clone(),
                        location_id: session.location_id.clone(),
                        booking_id: session.booking_id.clone(),
                        ..Default::default()
                    }),
                    // The booking is the idempotency key: a second delivery
                    // answers the first session.
                    request_id: format!("booking:{}", session.booking_id),
                },
            )?;
            ProtocolServiceClient::new(self.0.channel.clone())
                .record_session(request)
                .await
                .map_err(|s| self.0.failed(s))?;
            Ok(())
        })
    }
}

/// Fleet over gRPC: devices for bookings.
#[derive(Debug, Clone)]
pub struct RemoteFleet(pub Peer);

impl Devices for RemoteFleet {
    fn reserve<'a>(
        &'a self,
        tenant_id: &'a str,
        booking_id: &'a str,
        location_id: &'a str,
        (start, end): (Timestamp, Timestamp),
        need: DeviceNeed,
        request_id: &'a str,
    ) -> BoxFuture<'a, Result<Reserved, Error>> {
        Box::pin(async move {
            let request = self.0.request(
                tenant_id,
                fleet::ReserveDeviceRequest {
                    target: Some(fleet::reserve_device_request::Target::Requirement(
                        fleet::DeviceRequirement {
                            location_id: location_id.to_owned(),
                            kind: need.kind as i32,
                            attachment: need.attachment as i32,
                            min_battery_percent: need.min_battery_percent,
                        },
                    )),
                    start_time: Some(time::to_proto(start)),
                    end_time: Some(time::to_proto(end)),
                    duration: None,
                    purpose: Some(fleet::reserve_device_request::Purpose::BookingId(
                        booking_id.to_owned(),
                    )),
                    request_id: request_id.to_owned(),
                },
            )?;
            let response = FleetServiceClient::new(self.0.channel.clone())
                .reserve_device(request)
                .await
                .map_err(|s| self.0.failed(s))?
                .into_inner();
            let reservation = response.reservation.unwrap_or_default();
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
            let request = self.0.request(
                tenant_id,
                fleet::ReleaseBookingReservationsRequest {
                    booking_id: booking_id.to_owned(),
                    keep_reservation_ids: except.to_vec(),
                },
            )?;
            let released = FleetServiceClient::new(self.0.channel.clone())
                .release_booking_reservations(request)
                .await
                .map_err(|s| self.0.failed(s))?
                .into_inner()
                .released;
            Ok(released.len())
        })
    }

    fn usage<'a>(
        &'a self,
        tenant_id: &'a str,
        reservation_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Usage>, Error>> {
        Box::pin(async move {
            let request = self.0.request(
                tenant_id,
                fleet::GetReservationRequest {
                    id: reservation_id.to_owned(),
                },
            )?;
            let reservation = FleetServiceClient::new(self.0.channel.clone())
                .get_reservation(request)
                .await
                .map_err(|s| self.0.failed(s))?
                .into_inner()
                .reservation
                .unwrap_or_default();
            if reservation.check_in_time.is_none() {
                return Ok(None);
            }
            Ok(Some(Usage {
                device_id: reservation.device_id,
                settings: settings_map(reservation.settings.as_ref()),
            }))
        })
    }
}

/// A check-in's settings as the history keeps them: only what was recorded.
pub fn settings_map(settings: Option<&fleet::UsageSettings>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    if let Some(s) = settings {
        if s.speed_level > 0 {
            map.insert("speed_level".to_owned(), s.speed_level.to_string());
        }
        if let Ok(attachment) = fleet::Attachment::try_from(s.attachment)
            && attachment != fleet::Attachment::Unspecified
        {
            let name = attachment.as_str_name();
            let name = name.strip_prefix("ATTACHMENT_").unwrap_or(name);
            map.insert("attachment".to_owned(), name.to_lowercase());
        }
        if s.pressure_level > 0 {
            map.insert("pressure_level".to_owned(), s.pressure_level.to_string());
        }
    }
    map
}

/// Booking over gRPC: erasures, and the devices it offers as resources.
#[derive(Debug, Clone)]
pub struct RemoteBooking(pub Peer);

impl Erasure for RemoteBooking {
    fn forget_client<'a>(
        &'a self,
        tenant_id: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let request = self.0.request(
                tenant_id,
                booking::ForgetClientRequest {
                    client_id: client_id.to_owned(),
                },
            )?;
            BookingServiceClient::new(self.0.channel.clone())
                .forget_client(request)
                .await
                .map_err(|s| self.0.failed(s))?;
            Ok(())
        })
    }
}

impl Slots for RemoteBooking {
    fn suggest<'a>(
        &'a self,
        tenant_id: &'a str,
        query: &'a SlotQuery,
    ) -> BoxFuture<'a, Result<Vec<SuggestedSlot>, Error>> {
        Box::pin(async move {
            let request = self.0.request(tenant_id, crate::slot_request(query))?;
            let response = BookingServiceClient::new(self.0.channel.clone())
                .suggest_slots(request)
                .await
                .map_err(|s| self.0.failed(s))?
                .into_inner();
            Ok(response
                .suggestions
                .into_iter()
                .filter_map(crate::suggested_slot)
                .collect())
        })
    }
}

impl DeviceLinks for RemoteBooking {
    fn sync_device<'a>(
        &'a self,
        tenant_id: &'a str,
        status: &'a DeviceStatus,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let request = self.0.request(tenant_id, sync_request(status))?;
            BookingServiceClient::new(self.0.channel.clone())
                .sync_device(request)
                .await
                .map_err(|s| self.0.failed(s))?;
            Ok(())
        })
    }
}

/// A device's status as `SyncDevice` carries it (and fleet's outbox).
pub fn sync_request(status: &DeviceStatus) -> booking::SyncDeviceRequest {
    booking::SyncDeviceRequest {
        device_id: status.device_id.clone(),
        location_id: status.location_id.clone(),
        kind: status.kind as i32,
        display_name: status.display_name.clone(),
        state: status.state as i32,
        cold: status.cold,
    }
}

/// The status a `SyncDevice` request carries; unknown enum numbers (a
/// newer sender) read as unspecified.
pub fn sync_status(request: &booking::SyncDeviceRequest) -> DeviceStatus {
    DeviceStatus {
        device_id: request.device_id.clone(),
        location_id: request.location_id.clone(),
        kind: fleet::DeviceKind::try_from(request.kind).unwrap_or_default(),
        display_name: request.display_name.clone(),
        state: fleet::DeviceState::try_from(request.state).unwrap_or_default(),
        cold: request.cold,
    }
}
