//! The recovery API: generated messages, clients and servers.

#![allow(unreachable_pub, clippy::all, clippy::pedantic)]

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
