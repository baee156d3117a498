//! Waitlist requests validated into domain inputs, and entries and offers
//! in wire form.

use jiff::{SignedDuration, Timestamp};
use recovery_kit::idempotency::{Key, without_request_id};
use recovery_kit::ids::parse_id;
use recovery_kit::page::{Binding, Page};
use recovery_kit::time::to_micros;
use recovery_kit::wire::{instant, stored_timestamp};
use recovery_kit::{Error, Scope, Violations};
use recovery_proto::booking::v1 as pb;

use super::{Named, kind_resources, optional_id, text};
use crate::store::Held;
use crate::store::waitlist::{Entry, EntryState, EntryStatus, Offer, OfferStatus};

/// The longest window one entry waits for.
const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(24 * 14);

/// `JoinWaitlist`.
pub(crate) struct NewEntry {
    pub(crate) key: Option<Key>,
    pub(crate) location_id: String,
    pub(crate) treatment_id: String,
    pub(crate) client_id: String,
    pub(crate) from: Timestamp,
    pub(crate) to: Timestamp,
    pub(crate) preference: Option<String>,
}

impl NewEntry {
    /// Validates `JoinWaitlist`; `scope` is the caller's, `now` when it
    /// came (the window must not have ended).
    pub(crate) fn parse(
        req: &pb::JoinWaitlistRequest,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let mut v = Violations::new();
        let fingerprint = without_request_id(req, |r| r.request_id.clear());
        let key = Key::new(
            "JoinWaitlist",
            scope.tenant().unwrap_or_default(),
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        if req.location_id.is_empty() {
            v.add("location_id", "required");
        }
        let treatment_id = v.check("treatment_id", parse_id(&req.treatment_id));
        let client_id = v.check("client_id", text(&req.client_id));
        let from = v.check("start_time", instant(req.start_time.as_ref()));
        let to = v.check("end_time", instant(req.end_time.as_ref()));
        let preference = optional_id(&req.resource_id, "resource_id", &mut v);
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                v.add("end_time", "must be after start_time");
            } else if to.duration_since(from) > MAX_WINDOW {
                v.add("end_time", "at most 14 days after start_time");
            } else if to <= now {
                v.add("end_time", "the window has ended");
            }
        }
        let (((treatment_id, client_id), from), to) =
            v.finish_with(treatment_id.zip(client_id).zip(from).zip(to))?;
        Ok(Self {
            key,
            location_id: req.location_id.clone(),
            treatment_id,
            client_id,
            from,
            to,
            preference,
        })
    }
}

/// `ListWaitlistEntries`.
pub(crate) struct EntriesQuery {
    pub(crate) location_id: String,
    pub(crate) client_id: Option<String>,
    pub(crate) state: Option<EntryState>,
    pub(crate) page: Page,
}

impl EntriesQuery {
    pub(crate) fn parse(
        req: &pb::ListWaitlistEntriesRequest,
        binding: &Binding,
    ) -> Result<Self, Error> {
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, binding, &mut v);
        if req.location_id.is_empty() {
            v.add("location_id", "required");
        }
        let client_id = if req.client_id.is_empty() {
            None
        } else {
            v.check("client_id", text(&req.client_id))
        };
        let state = match pb::WaitlistEntryState::try_from(req.state) {
            Ok(pb::WaitlistEntryState::Unspecified) => None,
            Ok(pb::WaitlistEntryState::Waiting) => Some(EntryState::Waiting),
            Ok(pb::WaitlistEntryState::Booked) => Some(EntryState::Booked),
            Ok(pb::WaitlistEntryState::Left) => Some(EntryState::Left),
            Ok(pb::WaitlistEntryState::Expired) => Some(EntryState::Expired),
            Err(_) => {
                v.add("state", "not a WAITLIST_ENTRY_STATE_…");
                None
            }
        };
        v.finish()?;
        Ok(Self {
            location_id: req.location_id.clone(),
            client_id,
            state,
            page,
        })
    }
}

/// `AcceptOffer`.
pub(crate) struct Acceptance {
    pub(crate) id: String,
    pub(crate) key: Option<Key>,
}

impl Acceptance {
    pub(crate) fn parse(req: &pb::AcceptOfferRequest, scope: &Scope) -> Result<Self, Error> {
        let mut v = Violations::new();
        let fingerprint = without_request_id(req, |r| r.request_id.clear());
        let key = Key::new(
            "AcceptOffer",
            scope.tenant().unwrap_or_default(),
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let id = v.check("id", parse_id(&req.id));
        let id = v.finish_with(id)?;
        Ok(Self { id, key })
    }
}

impl Entry {
    /// The state a reader sees at `now`: a waiting entry whose window
    /// ended is expired.
    pub(crate) fn state(&self, now: Timestamp) -> EntryState {
        match self.status {
            EntryStatus::Waiting if self.to <= to_micros(now) => EntryState::Expired,
            EntryStatus::Waiting => EntryState::Waiting,
            EntryStatus::Booked => EntryState::Booked,
            EntryStatus::Left => EntryState::Left,
        }
    }

    /// The wire form at `now`, with its open offer.
    pub(crate) fn to_wire(
        &self,
        offer: Option<pb::WaitlistOffer>,
        now: Timestamp,
    ) -> pb::WaitlistEntry {
        let state = match self.state(now) {
            EntryState::Waiting => pb::WaitlistEntryState::Waiting,
            EntryState::Booked => pb::WaitlistEntryState::Booked,
            EntryState::Left => pb::WaitlistEntryState::Left,
            EntryState::Expired => pb::WaitlistEntryState::Expired,
        };
        pb::WaitlistEntry {
            id: self.id.clone(),
            location_id: self.location_id.clone(),
            treatment_id: self.treatment_id.clone(),
            client_id: self.client_id.clone(),
            start_time: stored_timestamp(self.from),
            end_time: stored_timestamp(self.to),
            resource_id: self.resource_id.clone().unwrap_or_default(),
            state: state as i32,
            offer: offer.filter(|o| o.state == pb::OfferState::Open as i32),
            booking_id: self.booking_id.clone().unwrap_or_default(),
            create_time: stored_timestamp(self.create_time),
        }
    }
}

impl Offer {
    /// Whether it still holds its slot at `now`.
    pub(crate) fn is_open(&self, now: Timestamp) -> bool {
        self.status == OfferStatus::Open && self.expire > to_micros(now)
    }

    /// The wire form at `now`, with the resources its hold keeps.
    pub(crate) fn to_wire(&self, held: &[Held], now: Timestamp) -> pb::WaitlistOffer {
        let status = match self.status {
            OfferStatus::Open if !self.is_open(now) => OfferStatus::Expired,
            other => other,
        };
        pb::WaitlistOffer {
            id: self.id.clone(),
            entry_id: self.entry_id.clone(),
            client_id: self.client_id.clone(),
            location_id: self.location_id.clone(),
            treatment_id: self.treatment_id.clone(),
            hold_id: self.hold_id.clone(),
            start_time: stored_timestamp(self.start),
            end_time: stored_timestamp(self.end),
            expire_time: stored_timestamp(self.expire),
            resources: kind_resources(held),
            state: status.wire(),
            booking_id: self.booking_id.clone().unwrap_or_default(),
            create_time: stored_timestamp(self.create_time),
        }
    }
}

impl Named for EntryStatus {
    const TABLE: &'static [(Self, &'static str, i32)] = &[
        (
            EntryStatus::Waiting,
            "waiting",
            pb::WaitlistEntryState::Waiting as i32,
        ),
        (
            EntryStatus::Booked,
            "booked",
            pb::WaitlistEntryState::Booked as i32,
        ),
        (
            EntryStatus::Left,
            "left",
            pb::WaitlistEntryState::Left as i32,
        ),
    ];
}

impl Named for OfferStatus {
    const TABLE: &'static [(Self, &'static str, i32)] = &[
        (OfferStatus::Open, "open", pb::OfferState::Open as i32),
        (
            OfferStatus::Accepted,
            "accepted",
            pb::OfferState::Accepted as i32,
        ),
        (
            OfferStatus::Declined,
            "declined",
            pb::OfferState::Declined as i32,
        ),
        (
            OfferStatus::Expired,
            "expired",
            pb::OfferState::Expired as i32,
        ),
        (
            OfferStatus::Withdrawn,
            "withdrawn",
            pb::OfferState::Withdrawn as i32,
        ),
    ];
}
