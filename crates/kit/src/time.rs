//! Time: an injectable clock, and conversions between the wire
//! (`google.protobuf.Timestamp`), the domain (`jiff::Timestamp`) and storage
//! (BIGINT microseconds since the epoch).

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

/// Where "now" comes from. Tests drive a [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Mutex::new(start))
    }

    /// Moves the clock forward (or back) by `by`.
    pub fn advance(&self, by: SignedDuration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now.saturating_add(by).unwrap_or(*now);
    }

    /// Sets the clock.
    pub fn set(&self, to: Timestamp) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Storage form: microseconds since the Unix epoch.
pub fn to_micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// From storage form; out-of-range values clamp to jiff's limits.
pub fn from_micros(micros: i64) -> Timestamp {
    Timestamp::from_microsecond(micros).unwrap_or(if micros < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Wire form.
pub fn to_proto(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

/// Wire form from storage form.
pub fn micros_to_proto(micros: i64) -> prost_types::Timestamp {
    to_proto(from_micros(micros))
}

/// From wire form; `Err` names what is wrong, for a field violation.
pub fn from_proto(t: &prost_types::Timestamp) -> Result<Timestamp, String> {
    Timestamp::new(t.seconds, t.nanos).map_err(|_| "timestamp out of range".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t: Timestamp = "2026-03-08T07:00:00.123456Z".parse().unwrap();
        assert_eq!(from_micros(to_micros(t)), t);
        assert_eq!(from_proto(&to_proto(t)).unwrap(), t);
        assert!(
            from_proto(&prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0
            })
            .is_err()
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(SignedDuration::from_mins(5));
        assert_eq!(clock.now(), start + SignedDuration::from_mins(5));
    }
}
