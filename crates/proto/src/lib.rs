//! The recovery API: generated messages, clients and servers.

#![allow(unreachable_pub, clippy::all, clippy::pedantic)]

mod encoded;

/// Encoded `FileDescriptorSet` of every recovery proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/recovery_descriptor.bin"));

/// `recovery.tenancy.v1`: tenants, locations and API keys.
pub mod tenancy {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("recovery.tenancy.v1");
    }
}

/// `recovery.booking.v1`: treatments, resources, availability, bookings.
pub mod booking {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("recovery.booking.v1");

        pub use crate::encoded::{ListBookingsResponse, SearchAvailabilityResponse};
    }
}

/// `recovery.protocols.v1`: clients, screening, waivers, activities, recovery
/// history, protocols and the rules check.
pub mod protocols {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("recovery.protocols.v1");
    }
}

/// `recovery.fleet.v1`: devices, reservations, telemetry and maintenance.
pub mod fleet {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("recovery.fleet.v1");
    }
}

/// A list request: a page size, a page token, and a filter (every other
/// field). A page token is bound to the filter: [`Paged::unpaged`] is what
/// it is bound to.
pub trait Paged: prost::Message + Clone {
    /// The request without its page size and token: the list's filter.
    fn unpaged(&self) -> Self;

    /// The page size and token asked for, and [`Paged::unpaged`]: what a
    /// page of the list is made from.
    fn paging(&self) -> (i32, &str, Self);
}

macro_rules! paged {
    ($($request:ty),* $(,)?) => {
        $(impl Paged for $request {
            fn unpaged(&self) -> Self {
                Self {
                    page_size: 0,
                    page_token: String::new(),
                    ..self.clone()
                }
            }

            fn paging(&self) -> (i32, &str, Self) {
                (self.page_size, &self.page_token, self.unpaged())
            }
        })*
    };
}

paged!(
    tenancy::v1::ListTenantsRequest,
    tenancy::v1::ListLocationsRequest,
    tenancy::v1::ListApiKeysRequest,
    booking::v1::ListTreatmentsRequest,
    booking::v1::ListResourcesRequest,
    booking::v1::ListBookingsRequest,
    booking::v1::ListWaitlistEntriesRequest,
    protocols::v1::ListClientsRequest,
    protocols::v1::ListActivitiesRequest,
    protocols::v1::ListTimelineRequest,
    protocols::v1::ListProtocolTemplatesRequest,
    protocols::v1::ListAuditEventsRequest,
    fleet::v1::ListDevicesRequest,
    fleet::v1::ListReservationsRequest,
    fleet::v1::ListTelemetryRequest,
    fleet::v1::ListMaintenanceRecordsRequest,
    fleet::v1::ListDueForServiceRequest,
);
