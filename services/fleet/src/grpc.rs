//! The gRPC face of the fleet: per RPC the role check, the request into
//! domain values (`wire`), one call into an area, the answer back.

use recovery_kit::{Caller, Error, Role, authorize};
use recovery_proto::Paged as _;
use recovery_proto::fleet::v1 as pb;
use recovery_proto::fleet::v1::fleet_service_server::FleetService;
use tonic::{Request, Response, Status, Streaming};

use crate::{Fleet, wire};

/// Register, update, retire, maintenance.
const MANAGERS: &[Role] = &[Role::Operator, Role::Manager];
/// Check out, check in, release one reservation, list reservations.
const FLOOR: &[Role] = &[Role::Operator, Role::Manager, Role::Staff];
/// Reads and the board.
const READERS: &[Role] = &[Role::Operator, Role::Manager, Role::Staff, Role::FrontDesk];
/// Reserve, read and release a booking's reservations: the floor, and
/// the booking service acting for a tenant.
const BOOKING_FLOOR: &[Role] = &[Role::Operator, Role::Manager, Role::Staff, Role::Service];
/// Read a reservation: readers, and the booking service acting for a tenant.
const RESERVATION_READERS: &[Role] = &[
    Role::Operator,
    Role::Manager,
    Role::Staff,
    Role::FrontDesk,
    Role::Service,
];
/// Telemetry.
const HUBS: &[Role] = &[Role::Device];

/// The caller of `request` if its role is one of `roles`; a service must
/// name the tenant it acts for (these RPCs touch a tenant's data).
fn authorize_acting<'r, T>(request: &'r Request<T>, roles: &[Role]) -> Result<&'r Caller, Error> {
    let caller = authorize(request, roles)?;
    if caller.role == Role::Service && caller.tenant_id.is_none() {
        return Err(Error::PermissionDenied(format!(
            "a service acts for a tenant here: send {}",
            recovery_kit::auth::TENANT_HEADER
        )));
    }
    Ok(caller)
}

#[tonic::async_trait]
impl FleetService for Fleet {
    async fn register_device(
        &self,
        request: Request<pb::RegisterDeviceRequest>,
    ) -> Result<Response<pb::RegisterDeviceResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?;
        let (fields, key) = wire::register_device(request.get_ref(), &caller.scope()?)?;
        let device = self.register(caller, fields, key).await?;
        Ok(Response::new(pb::RegisterDeviceResponse {
            device: Some(device),
        }))
    }

    async fn get_device(
        &self,
        request: Request<pb::GetDeviceRequest>,
    ) -> Result<Response<pb::GetDeviceResponse>, Status> {
        let caller = authorize(&request, READERS)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let device = self.device(caller, &id).await?;
        Ok(Response::new(pb::GetDeviceResponse {
            device: Some(wire::device(&device)),
        }))
    }

    async fn list_devices(
        &self,
        request: Request<pb::ListDevicesRequest>,
    ) -> Result<Response<pb::ListDevicesResponse>, Status> {
        let caller = authorize(&request, READERS)?;
        let req = request.get_ref();
        let (filter, page) =
            wire::list_devices(req, caller, &self.db.pages(caller, &req.unpaged())?)?;
        let listed = self.devices(caller, filter, page).await?;
        Ok(Response::new(pb::ListDevicesResponse {
            devices: listed.items.iter().map(wire::device).collect(),
            next_page_token: listed.next_page_token,
        }))
    }

    async fn update_device(
        &self,
        request: Request<pb::UpdateDeviceRequest>,
    ) -> Result<Response<pb::UpdateDeviceResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?;
        let patch = wire::update_device(request.get_ref())?;
        let device = self.update_device(caller, patch).await?;
        Ok(Response::new(pb::UpdateDeviceResponse {
            device: Some(wire::device(&device)),
        }))
    }

    async fn retire_device(
        &self,
        request: Request<pb::RetireDeviceRequest>,
    ) -> Result<Response<pb::RetireDeviceResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let device = self.retire_device(caller, &id).await?;
        Ok(Response::new(pb::RetireDeviceResponse {
            device: Some(wire::device(&device)),
        }))
    }

    async fn reserve_device(
        &self,
        request: Request<pb::ReserveDeviceRequest>,
    ) -> Result<Response<pb::ReserveDeviceResponse>, Status> {
        let caller = authorize_acting(&request, BOOKING_FLOOR)?;
        let now = self.clock.now();
        let (reserve, key) = wire::reserve_device(request.get_ref(), &caller.scope()?, now)?;
        Ok(Response::new(self.reserve(caller, reserve, key).await?))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::GetReservationResponse>, Status> {
        let caller = authorize_acting(&request, RESERVATION_READERS)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let reservation = self.reservation(caller, &id).await?;
        Ok(Response::new(pb::GetReservationResponse {
            reservation: Some(wire::reservation(&reservation)),
        }))
    }

    async fn check_out_device(
        &self,
        request: Request<pb::CheckOutDeviceRequest>,
    ) -> Result<Response<pb::CheckOutDeviceResponse>, Status> {
        let caller = authorize(&request, FLOOR)?;
        let id = wire::id(&request.get_ref().reservation_id, "reservation_id")?;
        let (reservation, device) = self.check_out(caller, &id).await?;
        Ok(Response::new(pb::CheckOutDeviceResponse {
            reservation: Some(wire::reservation(&reservation)),
            device: Some(wire::device(&device)),
        }))
    }

    async fn check_in_device(
        &self,
        request: Request<pb::CheckInDeviceRequest>,
    ) -> Result<Response<pb::CheckInDeviceResponse>, Status> {
        let caller = authorize(&request, FLOOR)?;
        let req = request.get_ref();
        let id = wire::id(&req.reservation_id, "reservation_id")?;
        // The settings are checked against the device once it is read.
        let (reservation, device) = self.check_in(caller, &id, req.settings.as_ref()).await?;
        Ok(Response::new(pb::CheckInDeviceResponse {
            reservation: Some(wire::reservation(&reservation)),
            device: Some(wire::device(&device)),
        }))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
        let caller = authorize(&request, FLOOR)?;
        let id = wire::id(&request.get_ref().reservation_id, "reservation_id")?;
        let reservation = self.release(caller, &id).await?;
        Ok(Response::new(pb::ReleaseReservationResponse {
            reservation: Some(wire::reservation(&reservation)),
        }))
    }

    async fn release_booking_reservations(
        &self,
        request: Request<pb::ReleaseBookingReservationsRequest>,
    ) -> Result<Response<pb::ReleaseBookingReservationsResponse>, Status> {
        let caller = authorize_acting(&request, BOOKING_FLOOR)?;
        let release = wire::release_booking_reservations(request.get_ref())?;
        let released = self.release_booking(caller, &release).await?;
        Ok(Response::new(pb::ReleaseBookingReservationsResponse {
            released: released.iter().map(wire::reservation).collect(),
        }))
    }

    async fn list_reservations(
        &self,
        request: Request<pb::ListReservationsRequest>,
    ) -> Result<Response<pb::ListReservationsResponse>, Status> {
        let caller = authorize(&request, FLOOR)?;
        let req = request.get_ref();
        let (query, page) = wire::list_reservations(req, &self.db.pages(caller, &req.unpaged())?)?;
        let listed = self.reservations(caller, query, page).await?;
        Ok(Response::new(pb::ListReservationsResponse {
            reservations: listed.items.iter().map(wire::reservation).collect(),
            next_page_token: listed.next_page_token,
        }))
    }

    async fn report_telemetry(
        &self,
        request: Request<Streaming<pb::ReportTelemetryRequest>>,
    ) -> Result<Response<pb::ReportTelemetryResponse>, Status> {
        let caller = authorize(&request, HUBS)?.clone();
        let accepted = self.ingest(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::ReportTelemetryResponse { accepted }))
    }

    async fn list_telemetry(
        &self,
        request: Request<pb::ListTelemetryRequest>,
    ) -> Result<Response<pb::ListTelemetryResponse>, Status> {
        let caller = authorize(&request, READERS)?;
        let req = request.get_ref();
        let (query, page) = wire::list_telemetry(req, &self.db.pages(caller, &req.unpaged())?)?;
        let listed = self.telemetry(caller, query, page).await?;
        Ok(Response::new(pb::ListTelemetryResponse {
            readings: listed.items.iter().map(wire::reading_to_wire).collect(),
            next_page_token: listed.next_page_token,
        }))
    }

    async fn start_maintenance(
        &self,
        request: Request<pb::StartMaintenanceRequest>,
    ) -> Result<Response<pb::StartMaintenanceResponse>, Status> {
        // Staff on the floor take a faulty device out of service at once;
        // bringing it back is a manager's call.
        let caller = authorize(&request, FLOOR)?;
        let start = wire::start_maintenance(request.get_ref())?;
        let (device, record) = self.start_maintenance(caller, start).await?;
        Ok(Response::new(pb::StartMaintenanceResponse {
            device: Some(wire::device(&device)),
            record: Some(wire::record(&record)),
        }))
    }

    async fn end_maintenance(
        &self,
        request: Request<pb::EndMaintenanceRequest>,
    ) -> Result<Response<pb::EndMaintenanceResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?;
        let (device_id, notes) = wire::end_maintenance(request.get_ref())?;
        let (device, record) = self.end_maintenance(caller, &device_id, notes).await?;
        Ok(Response::new(pb::EndMaintenanceResponse {
            device: Some(wire::device(&device)),
            record: Some(wire::record(&record)),
        }))
    }

    async fn list_maintenance_records(
        &self,
        request: Request<pb::ListMaintenanceRecordsRequest>,
    ) -> Result<Response<pb::ListMaintenanceRecordsResponse>, Status> {
        let caller = authorize(&request, READERS)?;
        let req = request.get_ref();
        let (device_id, page) =
            wire::list_maintenance_records(req, &self.db.pages(caller, &req.unpaged())?)?;
        let listed = self.maintenance_records(caller, &device_id, page).await?;
        Ok(Response::new(pb::ListMaintenanceRecordsResponse {
            records: listed.items.iter().map(wire::record).collect(),
            next_page_token: listed.next_page_token,
        }))
    }

    async fn list_due_for_service(
        &self,
        request: Request<pb::ListDueForServiceRequest>,
    ) -> Result<Response<pb::ListDueForServiceResponse>, Status> {
        let caller = authorize(&request, READERS)?;
        let req = request.get_ref();
        let (filter, page) =
            wire::due_for_service(req, caller, &self.db.pages(caller, &req.unpaged())?)?;
        let listed = self.due_for_service(caller, filter, page).await?;
        Ok(Response::new(pb::ListDueForServiceResponse {
            devices: listed.items.iter().map(wire::device).collect(),
            next_page_token: listed.next_page_token,
        }))
    }

    type WatchDevicesStream = crate::watch::Board;

    async fn watch_devices(
        &self,
        request: Request<pb::WatchDevicesRequest>,
    ) -> Result<Response<Self::WatchDevicesStream>, Status> {
        let caller = authorize(&request, READERS)?;
        let location_id = wire::id(&request.get_ref().location_id, "location_id")?;
        Ok(Response::new(self.watch(caller, &location_id).await?))
    }
}
