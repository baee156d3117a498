//! One chamber, one record: a chamber registered once in fleet is a
//! bookable resource; fleet's state decides whether it is offered (each
//! non-ready state never offered or booked, offered again once ready);
//! bookings on a chamber that goes out of service are streamed at risk and
//! moved to the other chamber, keeping their id, never double-booked,
//! refused when nothing is free, or moved by themselves when the location
//! says so; a burst of telemetry tells booking nothing new.

use std::time::{Duration, Instant};

use jiff::SignedDuration;
use recovery_kit::testing::TestDb;
use recovery_kit::testing::answers::fact;
use recovery_kit::time::{Clock as _, to_proto};
use recovery_proto::booking::v1 as pb;
use recovery_proto::fleet::v1 as fleet_pb;
use tonic::Code;

use crate::common::chamber_device;
use crate::support::{Studio, TEN_AM, at, reason, refused, start, stored, t};

/// Registers a cryo chamber in fleet (ready at -90 °C or colder) and lets
/// fleet's word reach booking; its device id.
async fn register_chamber(studio: &Studio, name: &str) -> String {
    let device = studio
        .fleet_client(&studio.manager)
        .await
        .register_device(fleet_pb::RegisterDeviceRequest {
            device: Some(fleet_pb::Device {
                model: "Arctic 3".into(),
                ..chamber_device(
                    &studio.location_id,
                    name,
                    &format!("CH-{}", name.replace(' ', "-")),
                )
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    relay(studio).await;
    device.id
}

/// Hands fleet's waiting events to booking now (the relay, by hand).
async fn relay(studio: &Studio) {
    studio.fleet.outbox().pass().await.unwrap();
    assert_eq!(studio.fleet.outbox().backlog().await.unwrap(), 0);
}

/// Booking's resources at the location.
async fn resources(studio: &Studio) -> Vec<pb::Resource> {
    studio
        .client(&studio.desk)
        .await
        .list_resources(pb::ListResourcesRequest {
            location_id: studio.location_id.clone(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .resources
}

/// The resource linked to fleet device `device_id`.
async fn linked(studio: &Studio, device_id: &str) -> pb::Resource {
    resources(studio)
        .await
        .into_iter()
        .find(|r| r.device_id == device_id)
        .expect("a resource linked to the device")
}

/// Takes the studio's hand-made chamber out for the week, so only chambers
/// registered in fleet serve.
async fn only_fleet_chambers(studio: &Studio) {
    studio
        .client(&studio.manager)
        .await
        .add_blackout(pb::AddBlackoutRequest {
            resource_id: studio.chamber_id.clone(),
            blackout: Some(pb::Blackout {
                start_time: t("2026-12-01T00:00:00Z"),
                end_time: t("2026-12-09T00:00:00Z"),
                reason: "replaced by fleet chambers".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
}

/// The hub reports `temperature` for `device_id`.
async fn report(studio: &Studio, device_id: &str, temperatures: &[f64]) {
    let readings: Vec<_> = temperatures
        .iter()
        .map(|c| fleet_pb::ReportTelemetryRequest {
            reading: Some(fleet_pb::TelemetryReading {
                device_id: device_id.into(),
                temperature_celsius: Some(*c),
                ..Default::default()
            }),
        })
        .collect();
    studio
        .fleet_client(&studio.hub)
        .await
        .report_telemetry(tokio_stream::iter(readings))
        .await
        .unwrap();
}

async fn maintenance(studio: &Studio, device_id: &str, on: bool) {
    let mut fleet = studio.fleet_client(&studio.manager).await;
    if on {
        fleet
            .start_maintenance(fleet_pb::StartMaintenanceRequest {
                device_id: device_id.into(),
                reason: "door seal".into(),
                notes: String::new(),
            })
            .await
            .unwrap();
    } else {
        fleet
            .end_maintenance(fleet_pb::EndMaintenanceRequest {
                device_id: device_id.into(),
                notes: "seal replaced".into(),
            })
            .await
            .unwrap();
    }
}

/// The free chambers of each open cryo slot in `[from, to)`.
async fn offered(studio: &Studio, from: &str, to: &str) -> Vec<(jiff::Timestamp, Vec<String>)> {
    studio
        .search(from, to)
        .await
        .into_iter()
        .map(|s| {
            (
                recovery_kit::time::from_proto(s.start_time.as_ref().unwrap()).unwrap(),
                s.free.into_iter().flat_map(|f| f.resource_ids).collect(),
            )
        })
        .collect()
}

/// Books cryo for `name` at `start` on `resource_id`.
async fn book_on(
    studio: &Studio,
    name: &str,
    start: &str,
    resource_id: &str,
) -> Result<pb::Booking, tonic::Status> {
    let request = pb::CreateBookingRequest {
        resource_id: resource_id.into(),
        ..studio.booking(name, start).await
    };
    studio.create_booking(request).await
}

/// The chamber a booking holds.
fn chamber_of(booking: &pb::Booking) -> String {
    booking
        .resources
        .iter()
        .find(|k| k.kind() == pb::ResourceKind::CryoChamber)
        .and_then(|k| k.resource_ids.first().cloned())
        .expect("a chamber")
}

/// Asserts the refusal of a booking on a chamber that is not ready: the
/// code, the reason, the cause and the device's state; and that nothing was
/// booked.
async fn refused_not_ready(studio: &Studio, name: &str, start: &str, state: &str, cold: &str) {
    let status = studio.book(name, start).await.expect_err("refused");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(&status), "SLOT_UNAVAILABLE");
    assert_eq!(fact(&status, "cause").as_deref(), Some("DEVICE_NOT_READY"));
    assert_eq!(fact(&status, "device_state").as_deref(), Some(state));
    assert_eq!(fact(&status, "cold").as_deref(), Some(cold));
    assert!(studio.bookings_of(name).await.is_empty(), "nothing booked");
}

async fn a_chamber_registered_once_in_fleet_is_a_bookable_resource(db: TestDb) {
    let studio = start(db).await;
    only_fleet_chambers(&studio).await;
    let device = register_chamber(&studio, "Arctic A").await;
    let resource = linked(&studio, &device).await;
    assert_eq!(resource.display_name, "Arctic A");
    assert_eq!(resource.kind(), pb::ResourceKind::CryoChamber);
    assert_eq!(resource.device_state(), fleet_pb::DeviceState::Available);
    assert_eq!(resource.device_cold, None, "no temperature yet");
    assert!(resource.precool.is_some(), "a chamber pre-cools");
    // Once: a second delivery of the same word changes nothing.
    let status = recovery_peers::DeviceStatus {
        device_id: device.clone(),
        location_id: studio.location_id.clone(),
        kind: fleet_pb::DeviceKind::CryoChamber,
        display_name: "Arctic A".into(),
        state: fleet_pb::DeviceState::Available,
        cold: None,
    };
    recovery_peers::DeviceLinks::sync_device(&*studio.bookings, &studio.tenant_id, &status)
        .await
        .unwrap();
    let linked_to_device = resources(&studio)
        .await
        .into_iter()
        .filter(|r| r.device_id == device)
        .count();
    assert_eq!(linked_to_device, 1, "still one resource for the device");
    let slots = offered(&studio, TEN_AM, "2026-12-02T15:10:00Z").await;
    assert!(!slots.is_empty());
    assert!(
        slots
            .iter()
            .all(|(_, free)| free == &vec![resource.id.clone()])
    );
    let booking = studio.book("ana", TEN_AM).await.unwrap();
    assert_eq!(chamber_of(&booking), resource.id);
    assert!(booking.at_risk.is_none());
    // A renamed device renames its resource.
    studio
        .fleet_client(&studio.manager)
        .await
        .update_device(fleet_pb::UpdateDeviceRequest {
            device: Some(fleet_pb::Device {
                id: device.clone(),
                display_name: "Arctic North".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .unwrap();
    relay(&studio).await;
    assert_eq!(linked(&studio, &device).await.display_name, "Arctic North");

    // The same holds for a compression system: a compression station.
    let boots = studio
        .fleet_client(&studio.manager)
        .await
        .register_device(fleet_pb::RegisterDeviceRequest {
            device: Some(fleet_pb::Device {
                location_id: studio.location_id.clone(),
                kind: fleet_pb::DeviceKind::CompressionSystem as i32,
                display_name: "Boots".into(),
                serial_number: "NT-1".into(),
                spec: Some(fleet_pb::device::Spec::Compression(
                    fleet_pb::CompressionSpec {
                        pressure_levels: 7,
                        attachments: vec![fleet_pb::Attachment::Legs as i32],
                        zones: 5,
                    },
                )),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    relay(&studio).await;
    let station = linked(&studio, &boots.id).await;
    assert_eq!(station.kind(), pb::ResourceKind::CompressionStation);
    assert!(station.precool.is_none());
    maintenance(&studio, &boots.id, true).await;
    relay(&studio).await;
    assert_eq!(
        linked(&studio, &boots.id).await.device_state(),
        fleet_pb::DeviceState::Maintenance
    );
    // A massage gun is no resource.
    let gun = studio.gun("G-1").await;
    relay(&studio).await;
    assert!(resources(&studio).await.iter().all(|r| r.device_id != gun));
}

async fn a_chamber_not_ready_is_never_offered_or_booked_and_is_again_once_ready(db: TestDb) {
    let studio = start(db).await;
    only_fleet_chambers(&studio).await;
    let device = register_chamber(&studio, "Arctic A").await;
    let day = (TEN_AM, "2026-12-02T15:30:00Z");
    assert!(!offered(&studio, day.0, day.1).await.is_empty());

    // Maintenance.
    maintenance(&studio, &device, true).await;
    relay(&studio).await;
    assert_eq!(
        linked(&studio, &device).await.device_state(),
        fleet_pb::DeviceState::Maintenance
    );
    assert!(offered(&studio, day.0, day.1).await.is_empty());
    refused_not_ready(&studio, "ana", TEN_AM, "maintenance", "unknown").await;
    let hold = studio.hold(&studio.person("ana").await, TEN_AM).await;
    refused(hold, "SLOT_UNAVAILABLE");
    maintenance(&studio, &device, false).await;
    relay(&studio).await;
    // A hold made before the chamber goes into maintenance is not booked
    // after.
    let hold = studio
        .hold(&studio.person("ana").await, TEN_AM)
        .await
        .unwrap();
    maintenance(&studio, &device, true).await;
    relay(&studio).await;
    let status = studio.book_hold(&hold.id).await.expect_err("refused");
    assert_eq!(reason(&status), "SLOT_UNAVAILABLE");
    assert_eq!(fact(&status, "cause").as_deref(), Some("DEVICE_NOT_READY"));
    assert_eq!(
        fact(&status, "device_state").as_deref(),
        Some("maintenance")
    );
    assert!(studio.bookings_of("ana").await.is_empty(), "nothing booked");
    maintenance(&studio, &device, false).await;
    relay(&studio).await;
    assert!(
        !offered(&studio, day.0, day.1).await.is_empty(),
        "offered again"
    );

    // Offline: the hub went silent; fleet's sweep finds it.
    studio.clock.advance(SignedDuration::from_hours(25));
    let swept = studio.fleet.sweep().await.unwrap();
    assert_eq!(swept.offline, 1);
    relay(&studio).await;
    assert_eq!(
        linked(&studio, &device).await.device_state(),
        fleet_pb::DeviceState::Offline
    );
    assert!(offered(&studio, day.0, day.1).await.is_empty());
    refused_not_ready(&studio, "ana", TEN_AM, "offline", "unknown").await;
    // The hub is back, with the chamber at -100 °C.
    report(&studio, &device, &[-100.0]).await;
    relay(&studio).await;
    let resource = linked(&studio, &device).await;
    assert_eq!(resource.device_state(), fleet_pb::DeviceState::Available);
    assert_eq!(resource.device_cold, Some(true));
    assert!(
        !offered(&studio, day.0, day.1).await.is_empty(),
        "offered again"
    );

    // Warm: not offered for slots in the next hour, offered after it.
    let now = studio.clock.now();
    report(&studio, &device, &[-40.0]).await;
    relay(&studio).await;
    assert_eq!(linked(&studio, &device).await.device_cold, Some(false));
    let soon = (now + SignedDuration::from_mins(30)).to_string();
    let later = (now + SignedDuration::from_mins(61)).to_string();
    let until = (now + SignedDuration::from_mins(120)).to_string();
    let slots = offered(&studio, &now.to_string(), &until).await;
    assert!(!slots.is_empty());
    assert!(
        slots
            .iter()
            .all(|(start, _)| *start >= now + SignedDuration::from_hours(1)),
        "nothing in the next hour: {slots:?}"
    );
    let soon_slot = offered(&studio, &soon, &later).await;
    assert!(soon_slot.is_empty());
    refused_not_ready(&studio, "bea", &soon, "available", "false").await;
    report(&studio, &device, &[-95.0]).await;
    relay(&studio).await;
    let cold_slots = offered(&studio, &soon, &later).await;
    assert!(!cold_slots.is_empty(), "cold: offered again");
    // A hold taken while the chamber is cold is not booked once it warmed
    // up, for a session within the hour.
    let cy_start = cold_slots.get(1).expect("a second slot").0.to_string();
    let hold = studio
        .hold(&studio.person("cy").await, &cy_start)
        .await
        .unwrap();
    report(&studio, &device, &[-40.0]).await;
    relay(&studio).await;
    let warm = studio.book_hold(&hold.id).await.expect_err("refused");
    assert_eq!(reason(&warm), "SLOT_UNAVAILABLE");
    assert_eq!(fact(&warm, "cause").as_deref(), Some("DEVICE_NOT_READY"));
    assert_eq!(fact(&warm, "cold").as_deref(), Some("false"));
    assert!(studio.bookings_of("cy").await.is_empty(), "nothing booked");
    report(&studio, &device, &[-95.0]).await;
    relay(&studio).await;
    studio.book("bea", &soon).await.unwrap();

    // Retired: gone for good, and the resource says so.
    studio
        .fleet_client(&studio.manager)
        .await
        .retire_device(fleet_pb::RetireDeviceRequest { id: device.clone() })
        .await
        .unwrap();
    relay(&studio).await;
    assert_eq!(
        linked(&studio, &device).await.device_state(),
        fleet_pb::DeviceState::Retired
    );
    let tomorrow = ("2026-12-03T15:00:00Z", "2026-12-03T16:00:00Z");
    assert!(offered(&studio, tomorrow.0, tomorrow.1).await.is_empty());
    refused_not_ready(&studio, "cy", tomorrow.0, "retired", "true").await;
}

async fn a_chamber_reported_cold_needs_no_precool_and_one_without_a_reading_does(db: TestDb) {
    let studio = start(db).await;
    only_fleet_chambers(&studio).await;
    let device = register_chamber(&studio, "Arctic A").await;
    // 05:30 in New York; the studio opens at 06:00 (11:00Z).
    studio.clock.set(at("2026-12-01T10:30:00Z"));
    let opening = ("2026-12-01T11:00:00Z", "2026-12-01T11:30:00Z");
    let first = offered(&studio, opening.0, opening.1).await[0].0;
    assert_eq!(
        first,
        at("2026-12-01T11:12:00Z"),
        "idle: 10 minutes of pre-cool"
    );
    report(&studio, &device, &[-105.0]).await;
    relay(&studio).await;
    let first = offered(&studio, opening.0, opening.1).await[0].0;
    assert_eq!(first, at("2026-12-01T11:00:00Z"), "cold already: none");
    // Warmed up: not offered before the hour has passed (11:30), and then
    // only after 10 minutes of pre-cool (11:40, on the grid 11:42).
    report(&studio, &device, &[-20.0]).await;
    relay(&studio).await;
    let first = offered(&studio, opening.0, "2026-12-01T12:00:00Z").await[0].0;
    assert_eq!(first, at("2026-12-01T11:42:00Z"));
}

/// The next schedule change on `stream` for booking `id`, within 5 s.
async fn next_change(
    stream: &mut tonic::Streaming<pb::WatchScheduleResponse>,
    id: &str,
) -> pb::Booking {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let message = stream.message().await.unwrap().unwrap();
            if let Some(pb::watch_schedule_response::Event::Changed(b)) = message.event
                && b.id == id
            {
                return b;
            }
        }
    })
    .await
    .expect("the change within 5 s")
}

async fn bookings_at_risk_are_streamed_and_moved_keeping_their_id(db: TestDb) {
    let studio = start(db).await;
    only_fleet_chambers(&studio).await;
    let a = register_chamber(&studio, "Arctic A").await;
    let b = register_chamber(&studio, "Arctic B").await;
    let (chamber_a, chamber_b) = (linked(&studio, &a).await.id, linked(&studio, &b).await.id);
    let booking = book_on(&studio, "ana", TEN_AM, &chamber_a).await.unwrap();
    let mut stream = studio
        .watch(&studio.staff, &studio.location_id, "2026-12-02")
        .await;
    stream.message().await.unwrap().unwrap();
    // The desk's list of the day (kept after this call) shows it too.
    let mut desk = studio.client(&studio.desk).await;
    let day = pb::ListBookingsRequest {
        location_id: studio.location_id.clone(),
        day: "2026-12-02".into(),
        ..Default::default()
    };
    let listed = desk.list_bookings(day.clone()).await.unwrap().into_inner();
    assert!(listed.bookings[0].at_risk.is_none());

    maintenance(&studio, &a, true).await;
    relay(&studio).await;
    let seen = next_change(&mut stream, &booking.id).await;
    let risk = seen.at_risk.expect("at risk on the tablet");
    assert_eq!(risk.resource_id, chamber_a);
    assert_eq!(risk.device_id, a);
    assert_eq!(risk.device_state(), fleet_pb::DeviceState::Maintenance);
    let got = stored(&mut studio.client(&studio.desk).await, &booking.id).await;
    assert!(got.at_risk.is_some());
    let listed = desk.list_bookings(day.clone()).await.unwrap().into_inner();
    assert_eq!(
        listed.bookings[0].at_risk, got.at_risk,
        "the kept day is not shown"
    );

    // Staff move it to the other chamber: same booking, same time.
    let moved = studio
        .client(&studio.staff)
        .await
        .reassign_booking(pb::ReassignBookingRequest {
            id: booking.id.clone(),
            resource_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(moved.id, booking.id);
    assert_eq!(moved.start_time, booking.start_time);
    assert_eq!(chamber_of(&moved), chamber_b);
    assert!(moved.at_risk.is_none());
    let seen = next_change(&mut stream, &booking.id).await;
    assert_eq!(chamber_of(&seen), chamber_b);
    assert!(seen.at_risk.is_none());
    let listed = desk.list_bookings(day).await.unwrap().into_inner();
    assert_eq!(chamber_of(&listed.bookings[0]), chamber_b);
    assert!(listed.bookings[0].at_risk.is_none());
    // Chamber B is taken at that time now; A is out: nothing is offered.
    assert!(
        offered(&studio, TEN_AM, "2026-12-02T15:01:00Z")
            .await
            .is_empty()
    );
    // Back from maintenance, A is offered again; nothing was at risk on it.
    maintenance(&studio, &a, false).await;
    relay(&studio).await;
    let slots = offered(&studio, TEN_AM, "2026-12-02T15:01:00Z").await;
    assert_eq!(slots[0].1, vec![chamber_a]);
}

async fn a_move_is_refused_when_no_other_chamber_is_free(db: TestDb) {
    let studio = start(db).await;
    only_fleet_chambers(&studio).await;
    let a = register_chamber(&studio, "Arctic A").await;
    let b = register_chamber(&studio, "Arctic B").await;
    let (chamber_a, chamber_b) = (linked(&studio, &a).await.id, linked(&studio, &b).await.id);
    let ana = book_on(&studio, "ana", TEN_AM, &chamber_a).await.unwrap();
    book_on(&studio, "bea", TEN_AM, &chamber_b).await.unwrap();
    maintenance(&studio, &a, true).await;
    relay(&studio).await;
    let mut staff = studio.client(&studio.staff).await;
    let result = staff
        .reassign_booking(pb::ReassignBookingRequest {
            id: ana.id.clone(),
            resource_id: String::new(),
        })
        .await;
    refused(result, "SLOT_UNAVAILABLE");
    // Naming the taken chamber is refused the same way.
    let result = staff
        .reassign_booking(pb::ReassignBookingRequest {
            id: ana.id.clone(),
            resource_id: chamber_b.clone(),
        })
        .await;
    refused(result, "SLOT_UNAVAILABLE");
    // Nothing moved: Ana is still on A, at risk.
    let got = stored(&mut staff, &ana.id).await;
    assert_eq!(chamber_of(&got), chamber_a);
    assert!(got.at_risk.is_some());
    // Bad input names the field and changes nothing.
    let status = staff
        .reassign_booking(pb::ReassignBookingRequest {
            id: "nope".into(),
            resource_id: "nope".into(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        crate::support::fields(&status),
        vec!["id".to_owned(), "resource_id".to_owned()]
    );
}

async fn many_desks_moving_bookings_at_risk_never_double_book(db: TestDb) {
    let studio = start(db).await;
    only_fleet_chambers(&studio).await;
    let mut out = Vec::new();
    for name in ["A1", "A2", "A3", "A4"] {
        out.push(register_chamber(&studio, name).await);
    }
    let spare = register_chamber(&studio, "Spare").await;
    let spare_id = linked(&studio, &spare).await.id;
    let mut bookings = Vec::new();
    for (i, device) in out.iter().enumerate() {
        let chamber = linked(&studio, device).await.id;
        let b = book_on(&studio, &format!("client {i}"), TEN_AM, &chamber)
            .await
            .unwrap();
        bookings.push(b.id);
    }
    for device in &out {
        maintenance(&studio, device, true).await;
    }
    relay(&studio).await;
    let mut tasks = Vec::new();
    for id in bookings.clone() {
        let mut staff = studio.client(&studio.staff).await;
        tasks.push(tokio::spawn(async move {
            let began = Instant::now();
            let result = staff
                .reassign_booking(pb::ReassignBookingRequest {
                    id,
                    resource_id: String::new(),
                })
                .await;
            (result, began.elapsed())
        }));
    }
    let (mut moved, mut slowest) = (Vec::new(), Duration::ZERO);
    for task in tasks {
        let (result, took) = task.await.unwrap();
        slowest = slowest.max(took);
        match result {
            Ok(r) => moved.push(r.into_inner().booking.unwrap()),
            Err(status) => assert_eq!(reason(&status), "SLOT_UNAVAILABLE", "{status:?}"),
        }
    }
    assert_eq!(moved.len(), 1, "one spare chamber, one move");
    assert_eq!(chamber_of(&moved[0]), spare_id);
    assert!(
        slowest < Duration::from_secs(5),
        "the slowest move took {slowest:?}"
    );
    // The spare chamber holds exactly one booking at that time.
    let mut on_spare = 0;
    for id in &bookings {
        let b = studio
            .client(&studio.desk)
            .await
            .get_booking(pb::GetBookingRequest { id: id.clone() })
            .await
            .unwrap()
            .into_inner()
            .booking
            .unwrap();
        if chamber_of(&b) == spare_id {
            on_spare += 1;
        }
    }
    assert_eq!(on_spare, 1);
}

async fn the_location_setting_moves_bookings_at_risk_by_itself_and_audits_it(db: TestDb) {
    let studio = start(db).await;
    only_fleet_chambers(&studio).await;
    let a = register_chamber(&studio, "Arctic A").await;
    let b = register_chamber(&studio, "Arctic B").await;
    let (chamber_a, chamber_b) = (linked(&studio, &a).await.id, linked(&studio, &b).await.id);
    let mut manager = studio.client(&studio.manager).await;
    let defaults = manager
        .get_location_settings(pb::GetLocationSettingsRequest {
            location_id: studio.location_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert!(!defaults.auto_reassign);
    let auto_reassign = pb::UpdateLocationSettingsRequest {
        settings: Some(pb::LocationSettings {
            location_id: studio.location_id.clone(),
            auto_reassign: true,
            ..Default::default()
        }),
        update_mask: None,
    };
    // The front desk may not change it.
    let denied = studio
        .client(&studio.desk)
        .await
        .update_location_settings(auto_reassign.clone())
        .await
        .expect_err("managers only");
    assert_eq!(denied.code(), Code::PermissionDenied);
    manager
        .update_location_settings(auto_reassign)
        .await
        .unwrap();
    let ana = book_on(&studio, "ana", TEN_AM, &chamber_a).await.unwrap();
    let before = studio.clock.now();
    maintenance(&studio, &a, true).await;
    relay(&studio).await;
    let got = studio
        .client(&studio.desk)
        .await
        .get_booking(pb::GetBookingRequest { id: ana.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(got.id, ana.id);
    assert_eq!(chamber_of(&got), chamber_b, "moved by itself");
    assert!(got.at_risk.is_none());
    assert_eq!(got.update_time, Some(to_proto(before)), "changed now");
    // The audit: who, from, to, why.
    let row: (String, String, i64, String, String) = sqlx::query_as(
        "SELECT from_resource_id, to_resource_id, automatic, actor, cause \
         FROM booking_reassignments WHERE booking_id = $1",
    )
    .bind(&ana.id)
    .fetch_one(studio.db.db.reader())
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            chamber_a,
            chamber_b,
            1,
            "auto_reassign".to_owned(),
            "device maintenance".to_owned()
        )
    );
}

async fn a_burst_of_telemetry_tells_booking_only_what_changed(db: TestDb) {
    let studio = start(db).await;
    let device = register_chamber(&studio, "Arctic A").await;
    // 500 readings, all cold: one change (the first temperature).
    let cold: Vec<f64> = (0..500).map(|i| -100.0 - f64::from(i % 7)).collect();
    report(&studio, &device, &cold).await;
    assert_eq!(studio.fleet.outbox().backlog().await.unwrap(), 1);
    relay(&studio).await;
    report(&studio, &device, &cold).await;
    assert_eq!(
        studio.fleet.outbox().backlog().await.unwrap(),
        0,
        "nothing new"
    );
    // Warming up is news, once.
    report(&studio, &device, &[-60.0, -50.0, -40.0]).await;
    assert_eq!(studio.fleet.outbox().backlog().await.unwrap(), 1);
}

recovery_kit::engine_tests!(
    a_chamber_registered_once_in_fleet_is_a_bookable_resource,
    a_chamber_not_ready_is_never_offered_or_booked_and_is_again_once_ready,
    a_chamber_reported_cold_needs_no_precool_and_one_without_a_reading_does,
    bookings_at_risk_are_streamed_and_moved_keeping_their_id,
    a_move_is_refused_when_no_other_chamber_is_free,
    many_desks_moving_bookings_at_risk_never_double_book,
    the_location_setting_moves_bookings_at_risk_by_itself_and_audits_it,
    a_burst_of_telemetry_tells_booking_only_what_changed,
);
