//! Waivers, validated on receive.

use jiff::Timestamp;
use recovery_kit::idempotency::Key;
use recovery_kit::ids::parse_id;
use recovery_kit::wire::optional_instant;
use recovery_kit::{Error, Scope, Violations};
use recovery_proto::protocols::v1 as pb;

use super::{Create, name, optional_name, past_instant};

/// A validated `SignWaiver`.
pub(crate) struct NewWaiver {
    pub(crate) client_id: String,
    pub(crate) version: String,
    pub(crate) signer: String,
    /// Empty when the client signed for themselves.
    pub(crate) guardian: String,
    pub(crate) sign_time: Timestamp,
    pub(crate) expires: Option<Timestamp>,
    pub(crate) key: Option<Key>,
}

impl NewWaiver {
    /// Validates a waiver signed by `now` at the latest (when, by default).
    pub(crate) fn parse(
        req: &pb::SignWaiverRequest,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let w = req.waiver.clone().unwrap_or_default();
        let mut v = Violations::new();
        let client_id = v.check("waiver.client_id", parse_id(&w.client_id));
        let version = v.check("waiver.version", name(&w.version));
        let signer = v.check("waiver.signer_name", name(&w.signer_name));
        let guardian = v.check("waiver.guardian_name", optional_name(&w.guardian_name));
        let sign_time = v.check("waiver.sign_time", past_instant(w.sign_time.as_ref(), now));
        let expires = v
            .check(
                "waiver.expire_time",
                optional_instant(w.expire_time.as_ref()),
            )
            .flatten();
        if let (Some(sign_time), Some(expires)) = (sign_time, expires)
            && expires <= sign_time
        {
            v.add("waiver.expire_time", "must be after sign_time");
        }
        let key = req.key(scope, &mut v);
        let (client_id, (version, (signer, (guardian, sign_time)))) =
            v.finish_with(client_id.zip(version.zip(signer.zip(guardian.zip(sign_time)))))?;
        Ok(Self {
            client_id,
            version,
            signer,
            guardian,
            sign_time,
            expires,
            key,
        })
    }

    /// The waiver as recorded: its `id`, at `now` by `actor`.
    pub(crate) fn to_wire(&self, id: String, now: Timestamp, actor: &str) -> pb::Waiver {
        use recovery_kit::wire::timestamp;
        pb::Waiver {
            id,
            client_id: self.client_id.clone(),
            version: self.version.clone(),
            sign_time: timestamp(self.sign_time),
            expire_time: self.expires.and_then(timestamp),
            signer_name: self.signer.clone(),
            guardian_name: self.guardian.clone(),
            record_time: timestamp(now),
            recorded_by: actor.to_owned(),
        }
    }
}
