//! The gRPC face of booking: each call checks the caller's role, converts
//! the request (`wire`), makes one call into its area and answers.

use std::sync::Arc;

use recovery_kit::wire::list_page;
use recovery_kit::{Role, authorize};
use recovery_proto::Paged as _;
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_server::BookingService;
use tonic::{Request, Response, Status};

use crate::Bookings;
use crate::lifecycle::Status as Stage;
use crate::offer_watch::OffersStream;
use crate::watch::ScheduleStream;
use crate::wire::NewBooking;
use crate::wire::{self, AvailabilityQuery, BookingQuery, Cancellation, Completion, NewBlackout};
use crate::wire::{Acceptance, EntriesQuery, NewEntry};
use crate::wire::{NewHold, NewResource, NewTreatment, Reschedule, ResourcePatch};
use crate::wire::{NewPlan, SuggestQuery, TreatmentPatch, TreatmentsQuery, Watch};

/// Anyone with a key: the catalog and the resources are read by all.
const ANYONE: &[Role] = &Role::ALL;
/// Who edits the catalog and the resources.
const MANAGERS: &[Role] = &[Role::Operator, Role::Manager];
/// Who books, holds, cancels, reschedules and checks clients in.
const DESK: &[Role] = &[Role::Operator, Role::Manager, Role::FrontDesk, Role::Staff];
/// Who runs sessions.
const FLOOR: &[Role] = &[Role::Operator, Role::Manager, Role::Staff];
/// Other services of the platform, acting for a tenant.
const SERVICES: &[Role] = &[Role::Service];
/// The desk, and protocols suggesting slots for a recommendation.
const DESK_AND_PEERS: &[Role] = &[
    Role::Operator,
    Role::Manager,
    Role::FrontDesk,
    Role::Staff,
    Role::Service,
];

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl BookingService for Bookings {
    async fn create_treatment(
        &self,
        request: Request<pb::CreateTreatmentRequest>,
    ) -> Answer<pb::CreateTreatmentResponse> {
        let caller = authorize(&request, MANAGERS)?;
        let new = NewTreatment::parse(request.get_ref(), caller)?;
        let treatment = self.create_treatment(caller, new).await?;
        Ok(Response::new(pb::CreateTreatmentResponse {
            treatment: Some(treatment),
        }))
    }

    async fn get_treatment(
        &self,
        request: Request<pb::GetTreatmentRequest>,
    ) -> Answer<pb::GetTreatmentResponse> {
        let caller = authorize(&request, ANYONE)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let treatment = self.get_treatment(caller, &id).await?;
        Ok(Response::new(pb::GetTreatmentResponse {
            treatment: Some(treatment),
        }))
    }

    async fn list_treatments(
        &self,
        request: Request<pb::ListTreatmentsRequest>,
    ) -> Answer<pb::ListTreatmentsResponse> {
        let caller = authorize(&request, ANYONE)?;
        let req = request.get_ref();
        let query = TreatmentsQuery::parse(req, &self.db.pages(caller, &req.unpaged())?)?;
        Ok(Response::new(self.list_treatments(caller, query).await?))
    }

    async fn update_treatment(
        &self,
        request: Request<pb::UpdateTreatmentRequest>,
    ) -> Answer<pb::UpdateTreatmentResponse> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let patch = TreatmentPatch::parse(request.into_inner())?;
        let treatment = self.update_treatment(&caller, patch).await?;
        Ok(Response::new(pb::UpdateTreatmentResponse {
            treatment: Some(treatment),
        }))
    }

    async fn archive_treatment(
        &self,
        request: Request<pb::ArchiveTreatmentRequest>,
    ) -> Answer<pb::ArchiveTreatmentResponse> {
        let caller = authorize(&request, MANAGERS)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let treatment = self.archive_treatment(caller, &id).await?;
        Ok(Response::new(pb::ArchiveTreatmentResponse {
            treatment: Some(treatment),
        }))
    }

    async fn create_resource(
        &self,
        request: Request<pb::CreateResourceRequest>,
    ) -> Answer<pb::CreateResourceResponse> {
        let caller = authorize(&request, MANAGERS)?;
        let new = NewResource::parse(request.get_ref(), &caller.scope()?)?;
        let resource = self.create_resource(caller, new).await?;
        Ok(Response::new(pb::CreateResourceResponse {
            resource: Some(resource),
        }))
    }

    async fn get_resource(
        &self,
        request: Request<pb::GetResourceRequest>,
    ) -> Answer<pb::GetResourceResponse> {
        let caller = authorize(&request, ANYONE)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let resource = self.get_resource(caller, &id).await?;
        Ok(Response::new(pb::GetResourceResponse {
            resource: Some(resource),
        }))
    }

    async fn list_resources(
        &self,
        request: Request<pb::ListResourcesRequest>,
    ) -> Answer<pb::ListResourcesResponse> {
        let caller = authorize(&request, ANYONE)?;
        let req = request.get_ref();
        let page = list_page(&self.db, caller, req.paging())?;
        Ok(Response::new(
            self.list_resources(caller, &req.location_id, page).await?,
        ))
    }

    async fn update_resource(
        &self,
        request: Request<pb::UpdateResourceRequest>,
    ) -> Answer<pb::UpdateResourceResponse> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let patch = ResourcePatch::parse(request.into_inner())?;
        let resource = self.update_resource(&caller, patch).await?;
        Ok(Response::new(pb::UpdateResourceResponse {
            resource: Some(resource),
        }))
    }

    async fn add_blackout(
        &self,
        request: Request<pb::AddBlackoutRequest>,
    ) -> Answer<pb::AddBlackoutResponse> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let new = NewBlackout::parse(request.into_inner())?;
        let resource = self.add_blackout(&caller, new).await?;
        Ok(Response::new(pb::AddBlackoutResponse {
            resource: Some(resource),
        }))
    }

    async fn remove_blackout(
        &self,
        request: Request<pb::RemoveBlackoutRequest>,
    ) -> Answer<pb::RemoveBlackoutResponse> {
        let caller = authorize(&request, MANAGERS)?;
        let (resource_id, blackout_id) = wire::blackout_ref(request.get_ref())?;
        let resource = self
            .remove_blackout(caller, &resource_id, &blackout_id)
            .await?;
        Ok(Response::new(pb::RemoveBlackoutResponse {
            resource: Some(resource),
        }))
    }

    async fn search_availability(
        &self,
        request: Request<pb::SearchAvailabilityRequest>,
    ) -> Answer<pb::SearchAvailabilityResponse> {
        let caller = authorize(&request, DESK)?;
        let query = AvailabilityQuery::parse(request.get_ref())?;
        let encoded_slots = self.search_availability(caller, query).await?;
        Ok(Response::new(pb::SearchAvailabilityResponse {
            slots: Vec::new(),
            encoded_slots,
        }))
    }

    async fn hold_slot(
        &self,
        request: Request<pb::HoldSlotRequest>,
    ) -> Answer<pb::HoldSlotResponse> {
        let caller = authorize(&request, DESK)?;
        let new = NewHold::parse(request.get_ref())?;
        let hold = self.hold_slot(caller, new).await?;
        Ok(Response::new(pb::HoldSlotResponse { hold: Some(hold) }))
    }

    async fn create_booking(
        &self,
        request: Request<pb::CreateBookingRequest>,
    ) -> Answer<pb::CreateBookingResponse> {
        let caller = authorize(&request, DESK)?;
        let new = NewBooking::parse(request.get_ref(), &caller.scope()?)?;
        let booking = self.create_booking(caller, new).await?;
        Ok(Response::new(pb::CreateBookingResponse {
            booking: Some(booking),
        }))
    }

    async fn get_booking(
        &self,
        request: Request<pb::GetBookingRequest>,
    ) -> Answer<pb::GetBookingResponse> {
        let caller = authorize(&request, DESK)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let booking = self.get_booking(caller, &id).await?;
        Ok(Response::new(pb::GetBookingResponse {
            booking: Some(booking),
        }))
    }

    async fn list_bookings(
        &self,
        request: Request<pb::ListBookingsRequest>,
    ) -> Answer<pb::ListBookingsResponse> {
        let caller = authorize(&request, DESK)?;
        let req = request.get_ref();
        let query = BookingQuery::parse(req, &self.db.pages(caller, &req.unpaged())?)?;
        Ok(Response::new(self.list_bookings(caller, query).await?))
    }

    async fn reschedule_booking(
        &self,
        request: Request<pb::RescheduleBookingRequest>,
    ) -> Answer<pb::RescheduleBookingResponse> {
        let caller = authorize(&request, DESK)?;
        let change = Reschedule::parse(request.get_ref())?;
        let booking = self.reschedule_booking(caller, change).await?;
        Ok(Response::new(pb::RescheduleBookingResponse {
            booking: Some(booking),
        }))
    }

    async fn cancel_booking(
        &self,
        request: Request<pb::CancelBookingRequest>,
    ) -> Answer<pb::CancelBookingResponse> {
        let caller = authorize(&request, DESK)?;
        let cancellation = Cancellation::parse(request.get_ref())?;
        let booking = self.cancel_booking(caller, cancellation).await?;
        Ok(Response::new(pb::CancelBookingResponse {
            booking: Some(booking),
        }))
    }

    async fn check_in(&self, request: Request<pb::CheckInRequest>) -> Answer<pb::CheckInResponse> {
        let caller = authorize(&request, DESK)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let booking = self.lifecycle(caller, &id, Stage::CheckedIn).await?;
        Ok(Response::new(pb::CheckInResponse {
            booking: Some(booking),
        }))
    }

    async fn start_session(
        &self,
        request: Request<pb::StartSessionRequest>,
    ) -> Answer<pb::StartSessionResponse> {
        let caller = authorize(&request, FLOOR)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let booking = self.lifecycle(caller, &id, Stage::InSession).await?;
        Ok(Response::new(pb::StartSessionResponse {
            booking: Some(booking),
        }))
    }

    async fn complete_session(
        &self,
        request: Request<pb::CompleteSessionRequest>,
    ) -> Answer<pb::CompleteSessionResponse> {
        let caller = authorize(&request, FLOOR)?;
        let completion = Completion::parse(request.get_ref())?;
        let booking = self.complete_session(caller, completion).await?;
        Ok(Response::new(pb::CompleteSessionResponse {
            booking: Some(booking),
        }))
    }

    async fn mark_no_show(
        &self,
        request: Request<pb::MarkNoShowRequest>,
    ) -> Answer<pb::MarkNoShowResponse> {
        let caller = authorize(&request, DESK)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let booking = self.lifecycle(caller, &id, Stage::NoShow).await?;
        Ok(Response::new(pb::MarkNoShowResponse {
            booking: Some(booking),
        }))
    }

    async fn forget_client(
        &self,
        request: Request<pb::ForgetClientRequest>,
    ) -> Answer<pb::ForgetClientResponse> {
        let caller = authorize(&request, SERVICES)?;
        let client_id = wire::forgotten_client(request.get_ref())?;
        let changed = self.forget_for(caller, &client_id).await?;
        Ok(Response::new(pb::ForgetClientResponse {
            bookings: i32::try_from(changed).unwrap_or(i32::MAX),
        }))
    }

    type WatchScheduleStream = ScheduleStream;

    async fn watch_schedule(
        &self,
        request: Request<pb::WatchScheduleRequest>,
    ) -> Answer<ScheduleStream> {
        let caller = authorize(&request, DESK)?.clone();
        let watch = Watch::parse(request.into_inner())?;
        let this: Arc<Self> = Arc::new(self.clone_handle());
        Ok(Response::new(this.watch_schedule(&caller, watch).await?))
    }

    async fn suggest_slots(
        &self,
        request: Request<pb::SuggestSlotsRequest>,
    ) -> Answer<pb::SuggestSlotsResponse> {
        let caller = authorize(&request, DESK_AND_PEERS)?;
        let query = SuggestQuery::parse(request.get_ref())?;
        Ok(Response::new(self.suggest_slots(caller, query).await?))
    }

    async fn book_plan(
        &self,
        request: Request<pb::BookPlanRequest>,
    ) -> Answer<pb::BookPlanResponse> {
        let caller = authorize(&request, DESK)?;
        let plan = NewPlan::parse(request.get_ref(), &caller.scope()?)?;
        Ok(Response::new(self.book_plan(caller, plan).await?))
    }

    async fn join_waitlist(
        &self,
        request: Request<pb::JoinWaitlistRequest>,
    ) -> Answer<pb::JoinWaitlistResponse> {
        let caller = authorize(&request, DESK)?;
        let new = NewEntry::parse(request.get_ref(), &caller.scope()?, self.clock.now())?;
        let entry = self.join_waitlist(caller, new).await?;
        Ok(Response::new(pb::JoinWaitlistResponse {
            entry: Some(entry),
        }))
    }

    async fn get_waitlist_entry(
        &self,
        request: Request<pb::GetWaitlistEntryRequest>,
    ) -> Answer<pb::GetWaitlistEntryResponse> {
        let caller = authorize(&request, DESK)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let entry = self.get_waitlist_entry(caller, &id).await?;
        Ok(Response::new(pb::GetWaitlistEntryResponse {
            entry: Some(entry),
        }))
    }

    async fn list_waitlist_entries(
        &self,
        request: Request<pb::ListWaitlistEntriesRequest>,
    ) -> Answer<pb::ListWaitlistEntriesResponse> {
        let caller = authorize(&request, DESK)?;
        let req = request.get_ref();
        let query = EntriesQuery::parse(req, &self.db.pages(caller, &req.unpaged())?)?;
        Ok(Response::new(
            self.list_waitlist_entries(caller, query).await?,
        ))
    }

    async fn leave_waitlist(
        &self,
        request: Request<pb::LeaveWaitlistRequest>,
    ) -> Answer<pb::LeaveWaitlistResponse> {
        let caller = authorize(&request, DESK)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let entry = self.leave_waitlist(caller, &id).await?;
        Ok(Response::new(pb::LeaveWaitlistResponse {
            entry: Some(entry),
        }))
    }

    async fn accept_offer(
        &self,
        request: Request<pb::AcceptOfferRequest>,
    ) -> Answer<pb::AcceptOfferResponse> {
        let caller = authorize(&request, DESK)?;
        let acceptance = Acceptance::parse(request.get_ref(), &caller.scope()?)?;
        Ok(Response::new(self.accept_offer(caller, acceptance).await?))
    }

    async fn decline_offer(
        &self,
        request: Request<pb::DeclineOfferRequest>,
    ) -> Answer<pb::DeclineOfferResponse> {
        let caller = authorize(&request, DESK)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let offer = self.decline_offer(caller, &id).await?;
        Ok(Response::new(pb::DeclineOfferResponse {
            offer: Some(offer),
        }))
    }

    type WatchOffersStream = OffersStream;

    async fn watch_offers(&self, request: Request<pb::WatchOffersRequest>) -> Answer<OffersStream> {
        let caller = authorize(&request, DESK)?.clone();
        let location_id = request.into_inner().location_id;
        let this: Arc<Self> = Arc::new(self.clone_handle());
        Ok(Response::new(
            this.watch_offers(&caller, &location_id).await?,
        ))
    }

    async fn reassign_booking(
        &self,
        request: Request<pb::ReassignBookingRequest>,
    ) -> Answer<pb::ReassignBookingResponse> {
        let caller = authorize(&request, DESK)?;
        let reassign = wire::Reassign::parse(request.get_ref())?;
        let booking = self
            .reassign_booking(caller, &reassign.id, reassign.resource_id.as_deref())
            .await?;
        Ok(Response::new(pb::ReassignBookingResponse {
            booking: Some(booking),
        }))
    }

    async fn sync_device(
        &self,
        request: Request<pb::SyncDeviceRequest>,
    ) -> Answer<pb::SyncDeviceResponse> {
        let caller = authorize(&request, SERVICES)?;
        let status = recovery_peers::remote::sync_status(request.get_ref());
        let resource = self.sync_device_for(caller, &status).await?;
        Ok(Response::new(pb::SyncDeviceResponse { resource }))
    }

    async fn get_location_settings(
        &self,
        request: Request<pb::GetLocationSettingsRequest>,
    ) -> Answer<pb::GetLocationSettingsResponse> {
        let caller = authorize(&request, ANYONE)?;
        let location_id = wire::id(&request.get_ref().location_id, "location_id")?;
        let settings = self.location_settings(caller, &location_id).await?;
        Ok(Response::new(pb::GetLocationSettingsResponse {
            settings: Some(settings),
        }))
    }

    async fn update_location_settings(
        &self,
        request: Request<pb::UpdateLocationSettingsRequest>,
    ) -> Answer<pb::UpdateLocationSettingsResponse> {
        let caller = authorize(&request, MANAGERS)?;
        let update = wire::SettingsUpdate::parse(request.get_ref())?;
        let settings = self
            .update_location_settings(caller, &update.location_id, update.auto_reassign)
            .await?;
        Ok(Response::new(pb::UpdateLocationSettingsResponse {
            settings: Some(settings),
        }))
    }
}
