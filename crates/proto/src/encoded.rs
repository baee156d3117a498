//! Answers a server keeps and sends again, written by hand so that it can
//! send them as it encoded them once; on the wire each message is the
//! generated one's, and a client decodes it as such.
//!
//! - `recovery.booking.v1.SearchAvailabilityResponse`: a day of a busy
//!   location is some 300 slots naming 15-20 free chambers each (about
//!   200 KB); booking keeps that answer per calendar version, and cloning
//!   and encoding it again for every search was most of a search's CPU.
//!   Field 1, `repeated Slot slots`.
//! - `recovery.booking.v1.ListBookingsResponse`: a day's first page of
//!   bookings, kept per list version; cloning its 50 bookings and encoding
//!   them again was a tenth of a list's CPU. Field 1, `repeated Booking
//!   bookings`, field 2, `string next_page_token`.

use std::fmt;

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType, message, skip_field};
use prost::{DecodeError, Message};

use crate::booking::v1::{Booking, Slot};

/// Open slots of a treatment at a location (see `SearchAvailability`).
#[derive(Clone, Default, PartialEq)]
pub struct SearchAvailabilityResponse {
    /// The slots, in start order.
    pub slots: Vec<Slot>,
    /// More slots, already encoded as this message's field 1 (each a key,
    /// a length and a `Slot`): sent after `slots` as they are. Decoding
    /// puts every slot in `slots` and leaves this empty.
    pub encoded_slots: Bytes,
}

impl SearchAvailabilityResponse {
    /// `slots` encoded as [`SearchAvailabilityResponse::encoded_slots`]
    /// holds them, and where each one ends in those bytes.
    #[must_use]
    pub fn encode_slots(slots: &[Slot]) -> (Bytes, Vec<usize>) {
        let mut buf = Vec::with_capacity(message::encoded_len_repeated(1, slots));
        let mut ends = Vec::with_capacity(slots.len());
        for slot in slots {
            message::encode(1, slot, &mut buf);
            ends.push(buf.len());
        }
        (Bytes::from(buf), ends)
    }
}

impl Message for SearchAvailabilityResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        message::encode_repeated(1, &self.slots, buf);
        buf.put_slice(&self.encoded_slots);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag == 1 {
            message::merge_repeated(wire_type, &mut self.slots, buf, ctx).map_err(|mut error| {
                error.push("SearchAvailabilityResponse", "slots");
                error
            })
        } else {
            skip_field(wire_type, tag, buf, ctx)
        }
    }

    fn encoded_len(&self) -> usize {
        message::encoded_len_repeated(1, &self.slots) + self.encoded_slots.len()
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.encoded_slots = Bytes::new();
    }
}

impl fmt::Debug for SearchAvailabilityResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchAvailabilityResponse")
            .field("slots", &self.slots)
            .field("encoded_slots", &self.encoded_slots.len())
            .finish()
    }
}

/// A page of bookings (see `ListBookings`).
#[derive(Clone, Default, PartialEq)]
pub struct ListBookingsResponse {
    /// The bookings of the page.
    pub bookings: Vec<Booking>,
    /// Where the next page starts; empty on the last page.
    pub next_page_token: String,
    /// A whole answer encoded before ([`ListBookingsResponse::encode_whole`]),
    /// sent after the fields above as it is: a server sets either. Decoding
    /// puts everything in the fields and leaves this empty.
    pub encoded: Bytes,
}

impl ListBookingsResponse {
    /// This answer encoded, to keep and send again as
    /// [`ListBookingsResponse::encoded`].
    #[must_use]
    pub fn encode_whole(&self) -> Bytes {
        Bytes::from(self.encode_to_vec())
    }

    /// The answer `encoded` holds, to send as it is.
    #[must_use]
    pub fn of_encoded(encoded: Bytes) -> Self {
        Self {
            encoded,
            ..Self::default()
        }
    }
}

impl Message for ListBookingsResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        message::encode_repeated(1, &self.bookings, buf);
        if !self.next_page_token.is_empty() {
            prost::encoding::string::encode(2, &self.next_page_token, buf);
        }
        buf.put_slice(&self.encoded);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let (merged, field) = match tag {
            1 => (
                message::merge_repeated(wire_type, &mut self.bookings, buf, ctx),
                "bookings",
            ),
            2 => (
                prost::encoding::string::merge(wire_type, &mut self.next_page_token, buf, ctx),
                "next_page_token",
            ),
            _ => return skip_field(wire_type, tag, buf, ctx),
        };
        merged.map_err(|mut error| {
            error.push("ListBookingsResponse", field);
            error
        })
    }

    fn encoded_len(&self) -> usize {
        let token = if self.next_page_token.is_empty() {
            0
        } else {
            prost::encoding::string::encoded_len(2, &self.next_page_token)
        };
        message::encoded_len_repeated(1, &self.bookings) + token + self.encoded.len()
    }

    fn clear(&mut self) {
        self.bookings.clear();
        self.next_page_token.clear();
        self.encoded = Bytes::new();
    }
}

impl fmt::Debug for ListBookingsResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListBookingsResponse")
            .field("bookings", &self.bookings)
            .field("next_page_token", &self.next_page_token)
            .field("encoded", &self.encoded.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(minute: i64, ids: &[&str]) -> Slot {
        Slot {
            start_time: Some(prost_types::Timestamp {
                seconds: minute * 60,
                nanos: 0,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: minute * 60 + 180,
                nanos: 0,
            }),
            free: vec![crate::booking::v1::KindResources {
                kind: 1,
                resource_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
                count: ids.len() as i32,
            }],
        }
    }

    #[test]
    fn encoded_slots_decode_as_slots_after_the_others() {
        let kept = [slot(10, &["a", "b"]), slot(20, &["b"]), slot(30, &[])];
        let (bytes, ends) = SearchAvailabilityResponse::encode_slots(&kept);
        assert_eq!(ends.len(), 3);
        let answer = SearchAvailabilityResponse {
            slots: vec![slot(0, &["z"])],
            encoded_slots: bytes.slice(ends[0]..ends[2]),
        };
        let wire = answer.encode_to_vec();
        assert_eq!(wire.len(), answer.encoded_len());
        let decoded = SearchAvailabilityResponse::decode(wire.as_slice()).expect("decodes");
        assert_eq!(
            decoded.slots,
            vec![slot(0, &["z"]), kept[1].clone(), kept[2].clone()]
        );
        assert!(decoded.encoded_slots.is_empty());
    }

    #[test]
    fn encodes_as_the_message_of_slots() {
        let slots = vec![slot(10, &["a"]), slot(20, &["b", "c"])];
        let (bytes, _) = SearchAvailabilityResponse::encode_slots(&slots);
        let decoded_only = SearchAvailabilityResponse {
            slots: slots.clone(),
            encoded_slots: Bytes::new(),
        };
        let encoded_only = SearchAvailabilityResponse {
            slots: Vec::new(),
            encoded_slots: bytes,
        };
        assert_eq!(decoded_only.encode_to_vec(), encoded_only.encode_to_vec());
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut wire = slot_answer_wire();
        // Field 7, varint 5: a later field this build does not know.
        wire.extend_from_slice(&[7 << 3, 5]);
        let decoded = SearchAvailabilityResponse::decode(wire.as_slice()).expect("decodes");
        assert_eq!(decoded.slots.len(), 1);
    }

    fn slot_answer_wire() -> Vec<u8> {
        SearchAvailabilityResponse {
            slots: vec![slot(10, &["a"])],
            encoded_slots: Bytes::new(),
        }
        .encode_to_vec()
    }

    fn page() -> ListBookingsResponse {
        ListBookingsResponse {
            bookings: vec![
                Booking {
                    id: "b1".into(),
                    client_id: "c1".into(),
                    ..Booking::default()
                },
                Booking {
                    id: "b2".into(),
                    ..Booking::default()
                },
            ],
            next_page_token: "next".into(),
            encoded: Bytes::new(),
        }
    }

    #[test]
    fn a_page_kept_encoded_goes_out_as_it_was_and_decodes_whole() {
        let page = page();
        let kept = ListBookingsResponse::of_encoded(page.encode_whole());
        assert_eq!(kept.encoded_len(), page.encoded_len());
        let wire = kept.encode_to_vec();
        assert_eq!(wire, page.encode_to_vec());
        let decoded = ListBookingsResponse::decode(wire.as_slice()).expect("decodes");
        assert_eq!(decoded, page);
        assert!(decoded.encoded.is_empty());
    }

    #[test]
    fn a_page_decodes_as_the_generated_message_would() {
        // The generated message's encoding: bookings, then the token, and
        // an unknown field 9 (varint 1) after them.
        let mut wire = Vec::new();
        for booking in &page().bookings {
            message::encode(1, booking, &mut wire);
        }
        prost::encoding::string::encode(2, &"next".to_owned(), &mut wire);
        wire.extend_from_slice(&[9 << 3, 1]);
        let decoded = ListBookingsResponse::decode(wire.as_slice()).expect("decodes");
        assert_eq!(decoded, page());
        let last = ListBookingsResponse {
            next_page_token: String::new(),
            ..page()
        };
        assert_eq!(
            ListBookingsResponse::decode(last.encode_to_vec().as_slice()).expect("decodes"),
            last,
            "no token on the last page"
        );
    }
}
