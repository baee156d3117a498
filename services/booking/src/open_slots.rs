//! A search's open slots as `SearchAvailabilityResponse` sends them,
//! encoded once in each view asked and kept with the calendar they were found on
//! (`calendars`), so that a search sends a slice of bytes.

use std::sync::OnceLock;

use jiff::Timestamp;
use prost::bytes::Bytes;
use recovery_proto::booking::v1 as pb;

/// Open slots in start order, encoded in each view (when first asked) as
/// `SearchAvailabilityResponse` sends them: a kept full answer is about
/// 200 KB on a busy day of 20 chambers, and each search takes a slice of
/// it rather than cloning and encoding some 6,000 chamber ids again.
pub(crate) struct OpenSlots {
    starts: Vec<Timestamp>,
    slots: Vec<pb::Slot>,
    full: OnceLock<Encoded>,
    basic: OnceLock<Encoded>,
}

/// Slots encoded one after another, and where each one ends.
struct Encoded {
    bytes: Bytes,
    ends: Vec<usize>,
}

impl Encoded {
    fn of(slots: &[pb::Slot]) -> Self {
        let (bytes, ends) = pb::SearchAvailabilityResponse::encode_slots(slots);
        Self { bytes, ends }
    }

    /// Slot `i`'s bytes.
    fn piece(&self, i: usize) -> std::ops::Range<usize> {
        let from = i.checked_sub(1).map_or(0, |before| self.ends[before]);
        from..self.ends[i]
    }
}

impl OpenSlots {
    /// `slots`: start, full wire form.
    pub(crate) fn of(mut slots: Vec<(Timestamp, pb::Slot)>) -> Self {
        slots.sort_by_key(|(start, _)| *start);
        let (starts, slots) = slots.into_iter().unzip();
        Self {
            starts,
            slots,
            full: OnceLock::new(),
            basic: OnceLock::new(),
        }
    }

    /// The encoding (in the full or basic view) of the slots starting in
    /// `[earliest, latest]`: a slice of the kept bytes.
    pub(crate) fn encoded(&self, basic: bool, (earliest, latest): (Timestamp, Timestamp)) -> Bytes {
        let first = self.starts.partition_point(|s| *s < earliest);
        let end = self.starts.partition_point(|s| *s <= latest);
        if first >= end {
            return Bytes::new();
        }
        let kept = if basic {
            self.basic.get_or_init(|| {
                let basic: Vec<pb::Slot> = self.slots.iter().map(crate::wire::basic_slot).collect();
                Encoded::of(&basic)
            })
        } else {
            self.full.get_or_init(|| Encoded::of(&self.slots))
        };
        kept.bytes
            .slice(kept.piece(first).start..kept.piece(end - 1).end)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_second(minute * 60).unwrap()
    }

    fn slot(minute: i64) -> (Timestamp, pb::Slot) {
        let wire = pb::Slot {
            start_time: Some(recovery_kit::time::to_proto(at(minute))),
            end_time: Some(recovery_kit::time::to_proto(at(minute + 3))),
            free: vec![pb::KindResources {
                kind: 1,
                resource_ids: vec!["a".into(), "b".into()],
                count: 2,
            }],
        };
        (at(minute), wire)
    }

    /// The starts of the slots `encoded` sent, and whether each named its
    /// resources.
    fn sent(bytes: Bytes) -> Vec<(i64, bool)> {
        pb::SearchAvailabilityResponse::decode(bytes)
            .unwrap()
            .slots
            .iter()
            .map(|s| {
                let named = !s.free[0].resource_ids.is_empty();
                assert_eq!(s.free[0].count, 2);
                (s.start_time.unwrap().seconds / 60, named)
            })
            .collect()
    }

    #[test]
    fn a_window_of_starts_is_one_slice_in_either_view() {
        // Found out of order: kept in start order.
        let open = OpenSlots::of(vec![slot(6), slot(0), slot(3), slot(9)]);
        let full = |from, to| sent(open.encoded(false, (at(from), at(to))));
        assert_eq!(
            full(0, 9),
            [(0, true), (3, true), (6, true), (9, true)],
            "both ends included"
        );
        assert_eq!(full(1, 8), [(3, true), (6, true)]);
        assert_eq!(full(3, 3), [(3, true)]);
        assert!(full(10, 20).is_empty());
        assert!(full(-5, -1).is_empty());
        assert!(full(4, 5).is_empty());
        assert_eq!(
            sent(open.encoded(true, (at(3), at(100)))),
            [(3, false), (6, false), (9, false)]
        );
        assert!(
            OpenSlots::of(Vec::new())
                .encoded(false, (at(0), at(9)))
                .is_empty()
        );
    }
}
