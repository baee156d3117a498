//! Every SQL statement of tenancy, one statement set for both engines, a
//! file per area. Reads that callers may only make within their tenant take
//! a [`recovery_kit::Scope`] and bind [`recovery_kit::Scope::tenant`] as
//! `($n IS NULL OR tenant_id = $n)`; reads made to change a row take a
//! [`recovery_kit::Lock`]. Rows come back as named structs, never tuples.

pub(crate) mod keys;
pub(crate) mod locations;
pub(crate) mod tenants;

use recovery_kit::{Error, Role};

/// A role as stored (`Role::as_str`).
fn role(stored: &str) -> Result<Role, Error> {
    Role::parse(stored)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("stored role {stored:?} is unknown")))
}
