//! The audit trail, read by managers.

use jiff::Timestamp;
use recovery_kit::page::{Binding, Keyset};
use recovery_kit::wire::stored_timestamp;
use recovery_kit::{Error, Violations};
use recovery_proto::protocols::v1 as pb;

use super::{optional_id, period};
use crate::store::audit::AuditRow;

/// A validated `ListAuditEvents`.
pub(crate) struct AuditQuery {
    /// One client's trail; `None`: the whole tenant's.
    pub(crate) client_id: Option<String>,
    pub(crate) from: Option<Timestamp>,
    pub(crate) to: Option<Timestamp>,
    pub(crate) page: Keyset,
}

impl AuditQuery {
    pub(crate) fn parse(
        req: &pb::ListAuditEventsRequest,
        binding: &Binding,
    ) -> Result<Self, Error> {
        let mut v = Violations::new();
        let client_id = v.check("client_id", optional_id(&req.client_id));
        let (from, to) = period(req.start_time.as_ref(), req.end_time.as_ref(), &mut v);
        let page = Keyset::parse(req.page_size, &req.page_token, binding, &mut v);
        let client_id = v.finish_with(client_id)?;
        Ok(Self {
            client_id,
            from,
            to,
            page,
        })
    }
}

/// Wire form of an audit row.
pub(crate) fn audit_event(row: AuditRow) -> pb::AuditEvent {
    pb::AuditEvent {
        id: row.id,
        actor: row.actor,
        occur_time: stored_timestamp(row.occur_time),
        action: row.action,
        client_id: row.client_id.unwrap_or_default(),
        detail: row.detail,
    }
}
