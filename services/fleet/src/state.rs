//! The device state machine, without I/O.
//!
//! A device's *stored* state is one of available, in use, charging,
//! maintenance, offline or retired. What callers see is its *effective*
//! state: an available or charging device whose hub has been silent longer
//! than the offline threshold is offline, and one held by a reservation
//! whose window is under way is reserved (see `EFFECTIVE_STATE` in
//! `store/devices.rs`).
//! Moves start from the effective state and land on a stored one.

use recovery_proto::fleet::v1 as pb;

names! {
    /// Where a device stands.
    pub(crate) enum State: pb::DeviceState, "a device state" {
        Available = "available" => Available,
        Reserved = "reserved" => Reserved,
        InUse = "in_use" => InUse,
        Charging = "charging" => Charging,
        Maintenance = "maintenance" => Maintenance,
        Offline = "offline" => Offline,
        Retired = "retired" => Retired,
    }
}

/// What staff, managers and the service do to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Move {
    /// Hand it out for a session.
    CheckOut,
    /// Take it back after a session.
    CheckIn,
    /// Take it out of service.
    StartMaintenance,
    /// Put it back into service.
    EndMaintenance,
    /// Retire it for good.
    Retire,
}

impl Move {
    /// The state this move aims at, for error messages.
    pub(crate) fn target(self) -> State {
        match self {
            Move::CheckOut => State::InUse,
            Move::CheckIn | Move::EndMaintenance => State::Available,
            Move::StartMaintenance => State::Maintenance,
            Move::Retire => State::Retired,
        }
    }
}

/// The stored state after `mv` from the effective state `from`, or `None`
/// when the move is illegal there.
pub(crate) fn after(from: State, mv: Move) -> Option<State> {
    use State::{Available, Charging, InUse, Maintenance, Offline, Reserved, Retired};
    match (mv, from) {
        (Move::CheckOut, Available | Reserved | Charging) => Some(InUse),
        (Move::CheckIn, InUse) | (Move::EndMaintenance, Maintenance) => Some(Available),
        (Move::StartMaintenance, Available | Charging | Offline) => Some(Maintenance),
        (Move::Retire, Available | Charging | Offline | Maintenance) => Some(Retired),
        (
            Move::CheckOut
            | Move::CheckIn
            | Move::StartMaintenance
            | Move::EndMaintenance
            | Move::Retire,
            _,
        ) => None,
    }
}

/// Whether a device in `state` may take a reservation (now or later).
pub(crate) fn reservable(state: State) -> bool {
    matches!(
        state,
        State::Available | State::Reserved | State::Charging | State::InUse
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_move_from_every_state() {
        use State::{Available, Charging, InUse, Maintenance, Offline, Reserved, Retired};
        let legal = [
            (Move::CheckOut, Available, InUse),
            (Move::CheckOut, Reserved, InUse),
            (Move::CheckOut, Charging, InUse),
            (Move::CheckIn, InUse, Available),
            (Move::StartMaintenance, Available, Maintenance),
            (Move::StartMaintenance, Charging, Maintenance),
            (Move::StartMaintenance, Offline, Maintenance),
            (Move::EndMaintenance, Maintenance, Available),
            (Move::Retire, Available, Retired),
            (Move::Retire, Charging, Retired),
            (Move::Retire, Offline, Retired),
            (Move::Retire, Maintenance, Retired),
        ];
        let moves = [
            Move::CheckOut,
            Move::CheckIn,
            Move::StartMaintenance,
            Move::EndMaintenance,
            Move::Retire,
        ];
        let mut count = 0;
        for mv in moves {
            for from in State::ALL.iter().copied() {
                let expected = legal
                    .iter()
                    .find(|(m, f, _)| *m == mv && *f == from)
                    .map(|(_, _, to)| *to);
                assert_eq!(after(from, mv), expected, "{mv:?} from {from:?}");
                count += 1;
            }
        }
        assert_eq!(count, 35);
        // Nothing leaves retired.
        assert!(moves.iter().all(|m| after(Retired, *m).is_none()));
    }

    #[test]
    fn names_round_trip() {
        for s in State::ALL.iter().copied() {
            assert_eq!(State::parse(s.as_str()), Some(s));
            assert_eq!(State::from_wire(s.to_wire() as i32), Ok(Some(s)));
        }
        assert!(State::from_wire(99).is_err());
    }
}
