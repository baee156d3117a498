//! `recovery.booking.v1.SearchAvailabilityResponse`, written by hand so that
//! a server can send slots it encoded once. A day of a busy location is
//! some 300 slots naming 15-20 free chambers each (about 200 KB); booking
//! keeps that answer per calendar version, and cloning and encoding it
//! again for every search was most of a search's CPU. On the wire the
//! message is the generated one's: field 1, `repeated Slot slots`.

use std::fmt;

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType, message, skip_field};
use prost::{DecodeError, Message};

use crate::booking::v1::Slot;

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
}
