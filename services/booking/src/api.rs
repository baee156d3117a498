//! The gRPC face of booking: each call finds its caller and hands over.

use std::sync::Arc;

use recovery_kit::Caller;
use recovery_proto::booking::v1 as pb;
use recovery_proto::booking::v1::booking_service_server::BookingService;
use tonic::{Request, Response, Status};

use crate::Bookings;
use crate::watch::ScheduleStream;

type Answer<T> = Result<Response<T>, Status>;

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    Ok(Caller::of(request)?.clone())
}

#[tonic::async_trait]
impl BookingService for Bookings {
    async fn create_treatment(
        &self,
        request: Request<pb::CreateTreatmentRequest>,
    ) -> Answer<pb::CreateTreatmentResponse> {
        let caller = caller(&request)?;
        let treatment = self.create_treatment(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::CreateTreatmentResponse {
            treatment: Some(treatment),
        }))
    }

    async fn get_treatment(
        &self,
        request: Request<pb::GetTreatmentRequest>,
    ) -> Answer<pb::GetTreatmentResponse> {
        let caller = caller(&request)?;
        let treatment = self.get_treatment(&caller, &request.get_ref().id).await?;
        Ok(Response::new(pb::GetTreatmentResponse {
            treatment: Some(treatment),
        }))
    }

    async fn list_treatments(
        &self,
        request: Request<pb::ListTreatmentsRequest>,
    ) -> Answer<pb::ListTreatmentsResponse> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.list_treatments(&caller, request.get_ref()).await?,
        ))
    }

    async fn update_treatment(
        &self,
        request: Request<pb::UpdateTreatmentRequest>,
    ) -> Answer<pb::UpdateTreatmentResponse> {
        let caller = caller(&request)?;
        let treatment = self.update_treatment(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::UpdateTreatmentResponse {
            treatment: Some(treatment),
        }))
    }

    async fn archive_treatment(
        &self,
        request: Request<pb::ArchiveTreatmentRequest>,
    ) -> Answer<pb::ArchiveTreatmentResponse> {
        let caller = caller(&request)?;
        let treatment = self
            .archive_treatment(&caller, &request.get_ref().id)
            .await?;
        Ok(Response::new(pb::ArchiveTreatmentResponse {
            treatment: Some(treatment),
        }))
    }

    async fn create_resource(
        &self,
        request: Request<pb::CreateResourceRequest>,
    ) -> Answer<pb::CreateResourceResponse> {
        let caller = caller(&request)?;
        let resource = self.create_resource(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::CreateResourceResponse {
            resource: Some(resource),
        }))
    }

    async fn get_resource(
        &self,
        request: Request<pb::GetResourceRequest>,
    ) -> Answer<pb::GetResourceResponse> {
        let caller = caller(&request)?;
        let resource = self.get_resource(&caller, &request.get_ref().id).await?;
        Ok(Response::new(pb::GetResourceResponse {
            resource: Some(resource),
        }))
    }

    async fn list_resources(
        &self,
        request: Request<pb::ListResourcesRequest>,
    ) -> Answer<pb::ListResourcesResponse> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.list_resources(&caller, request.get_ref()).await?,
        ))
    }

    async fn update_resource(
        &self,
        request: Request<pb::UpdateResourceRequest>,
    ) -> Answer<pb::UpdateResourceResponse> {
        let caller = caller(&request)?;
        let resource = self.update_resource(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::UpdateResourceResponse {
            resource: Some(resource),
        }))
    }

    async fn add_blackout(
        &self,
        request: Request<pb::AddBlackoutRequest>,
    ) -> Answer<pb::AddBlackoutResponse> {
        let caller = caller(&request)?;
        let resource = self.add_blackout(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::AddBlackoutResponse {
            resource: Some(resource),
        }))
    }

    async fn remove_blackout(
        &self,
        request: Request<pb::RemoveBlackoutRequest>,
    ) -> Answer<pb::RemoveBlackoutResponse> {
        let caller = caller(&request)?;
        let resource = self.remove_blackout(&caller, request.get_ref()).await?;
        Ok(Response::new(pb::RemoveBlackoutResponse {
            resource: Some(resource),
        }))
    }

    async fn search_availability(
        &self,
        request: Request<pb::SearchAvailabilityRequest>,
    ) -> Answer<pb::SearchAvailabilityResponse> {
        let caller = caller(&request)?;
        let slots = self.search_availability(&caller, request.get_ref()).await?;
        Ok(Response::new(pb::SearchAvailabilityResponse { slots }))
    }

    async fn hold_slot(
        &self,
        request: Request<pb::HoldSlotRequest>,
    ) -> Answer<pb::HoldSlotResponse> {
        let caller = caller(&request)?;
        let hold = self.hold_slot(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::HoldSlotResponse { hold: Some(hold) }))
    }

    async fn create_booking(
        &self,
        request: Request<pb::CreateBookingRequest>,
    ) -> Answer<pb::CreateBookingResponse> {
        let caller = caller(&request)?;
        let booking = self.create_booking(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::CreateBookingResponse {
            booking: Some(booking),
        }))
    }

    async fn get_booking(
        &self,
        request: Request<pb::GetBookingRequest>,
    ) -> Answer<pb::GetBookingResponse> {
        let caller = caller(&request)?;
        let booking = self.get_booking(&caller, &request.get_ref().id).await?;
        Ok(Response::new(pb::GetBookingResponse {
            booking: Some(booking),
        }))
    }

    async fn list_bookings(
        &self,
        request: Request<pb::ListBookingsRequest>,
    ) -> Answer<pb::ListBookingsResponse> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.list_bookings(&caller, request.get_ref()).await?,
        ))
    }

    async fn reschedule_booking(
        &self,
        request: Request<pb::RescheduleBookingRequest>,
    ) -> Answer<pb::RescheduleBookingResponse> {
        let caller = caller(&request)?;
        let booking = self.reschedule_booking(&caller, request.get_ref()).await?;
        Ok(Response::new(pb::RescheduleBookingResponse {
            booking: Some(booking),
        }))
    }

    async fn cancel_booking(
        &self,
        request: Request<pb::CancelBookingRequest>,
    ) -> Answer<pb::CancelBookingResponse> {
        let caller = caller(&request)?;
        let booking = self.cancel_booking(&caller, request.get_ref()).await?;
        Ok(Response::new(pb::CancelBookingResponse {
            booking: Some(booking),
        }))
    }

    async fn check_in(&self, request: Request<pb::CheckInRequest>) -> Answer<pb::CheckInResponse> {
        let caller = caller(&request)?;
        let booking = self
            .lifecycle(&caller, &request.get_ref().id, "checked_in")
            .await?;
        Ok(Response::new(pb::CheckInResponse {
            booking: Some(booking),
        }))
    }

    async fn start_session(
        &self,
        request: Request<pb::StartSessionRequest>,
    ) -> Answer<pb::StartSessionResponse> {
        let caller = caller(&request)?;
        let booking = self
            .lifecycle(&caller, &request.get_ref().id, "in_session")
            .await?;
        Ok(Response::new(pb::StartSessionResponse {
            booking: Some(booking),
        }))
    }

    async fn complete_session(
        &self,
        request: Request<pb::CompleteSessionRequest>,
    ) -> Answer<pb::CompleteSessionResponse> {
        let caller = caller(&request)?;
        let booking = self
            .lifecycle(&caller, &request.get_ref().id, "completed")
            .await?;
        Ok(Response::new(pb::CompleteSessionResponse {
            booking: Some(booking),
        }))
    }

    async fn mark_no_show(
        &self,
        request: Request<pb::MarkNoShowRequest>,
    ) -> Answer<pb::MarkNoShowResponse> {
        let caller = caller(&request)?;
        let booking = self
            .lifecycle(&caller, &request.get_ref().id, "no_show")
            .await?;
        Ok(Response::new(pb::MarkNoShowResponse {
            booking: Some(booking),
        }))
    }

    type WatchScheduleStream = ScheduleStream;

    async fn watch_schedule(
        &self,
        request: Request<pb::WatchScheduleRequest>,
    ) -> Answer<ScheduleStream> {
        let caller = caller(&request)?;
        let this: Arc<Self> = Arc::new(self.clone_handle());
        let stream = this.watch_schedule(caller, request.into_inner()).await?;
        Ok(Response::new(stream))
    }
}
