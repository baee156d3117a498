//! Telemetry on the wire: hubs' readings and the history.

use jiff::{SignedDuration, Timestamp};
use recovery_kit::ids::parse_id;
use recovery_kit::page::{Binding, Keyset};
use recovery_kit::wire::{optional_instant, stored_timestamp};
use recovery_kit::{Error, Violations};
use recovery_proto::fleet::v1 as pb;

use super::name;
use crate::store::ReadingRow;
use crate::telemetry::{Reading, ReadingsQuery, seq_of};

/// How far ahead of the server's clock a hub's clock may run.
const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// The `index`-th reading of a stream, received at `now`.
pub(crate) fn reading(
    reading: Option<&pb::TelemetryReading>,
    index: usize,
    now: Timestamp,
    v: &mut Violations,
) -> Option<Reading> {
    let field = format!("readings[{index}]");
    let Some(r) = reading else {
        v.add(format!("{field}.reading"), "required");
        return None;
    };
    let device_id = v.check(&format!("{field}.device_id"), parse_id(&r.device_id));
    let battery = match r.battery_percent {
        Some(b) if b > 100 => {
            v.add(format!("{field}.battery_percent"), "must be 0 to 100");
            None
        }
        other => Some(other),
    };
    let temperature = match r.temperature_celsius {
        Some(t) if !t.is_finite() || !(-273.0..=200.0).contains(&t) => {
            v.add(
                format!("{field}.temperature_celsius"),
                "must be -273 to 200",
            );
            None
        }
        other => Some(other),
    };
    let firmware = v.check(
        &format!("{field}.firmware_version"),
        name(&r.firmware_version, false),
    );
    let time = match v.check(
        &format!("{field}.reading_time"),
        optional_instant(r.reading_time.as_ref()),
    ) {
        Some(None) => Some(now),
        Some(Some(t)) if t <= now + CLOCK_SKEW => Some(t),
        Some(Some(_)) => {
            v.add(format!("{field}.reading_time"), "must not be in the future");
            None
        }
        None => None,
    };
    Some(Reading {
        device_id: device_id?,
        battery_percent: battery?,
        charging: r.charging,
        temperature_c: temperature?,
        firmware_version: firmware?,
        time: time?,
    })
}

/// `ListTelemetry`: the device and where the page starts, and the page.
pub(crate) fn list_telemetry(
    req: &pb::ListTelemetryRequest,
    binding: &Binding,
) -> Result<(ReadingsQuery, Keyset), Error> {
    let mut v = Violations::new();
    let id = v.check("device_id", parse_id(&req.device_id));
    let page = Keyset::parse(req.page_size, &req.page_token, binding, &mut v);
    let after = match &page.after {
        None => None,
        Some((time, key)) => {
            let seq = seq_of(key);
            if seq.is_none() {
                v.add("page_token", "not a token from a previous page");
            }
            seq.map(|seq| (*time, seq))
        }
    };
    let device_id = v.finish_with(id)?;
    Ok((ReadingsQuery { device_id, after }, page))
}

/// The wire form of a stored reading.
pub(crate) fn reading_to_wire(row: &ReadingRow) -> pb::TelemetryReading {
    pb::TelemetryReading {
        device_id: row.device_id.clone(),
        battery_percent: row.battery_percent,
        charging: row.charging,
        temperature_celsius: row.temperature_c,
        firmware_version: row.firmware_version.clone(),
        reading_time: stored_timestamp(row.reading_time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_readings_name_every_field() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut v = Violations::new();
        let r = reading(
            Some(&pb::TelemetryReading {
                device_id: "nope".into(),
                battery_percent: Some(140),
                temperature_celsius: Some(f64::NAN),
                ..Default::default()
            }),
            3,
            now,
            &mut v,
        );
        assert!(r.is_none());
        let Err(Error::InvalidArgument(list)) = v.finish() else {
            panic!("expected violations");
        };
        let fields: Vec<_> = list.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "readings[3].device_id",
                "readings[3].battery_percent",
                "readings[3].temperature_celsius"
            ]
        );
    }
}
