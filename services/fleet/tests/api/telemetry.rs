//! Hubs' telemetry: storing, bounding and paging the history.

use sqlx::Row as _;

use crate::support::*;

async fn ten_thousand_readings_are_stored_and_bounded(db: TestDb) {
    let env = env(db).await;
    let (mut manager, mut staff, mut hub) = env.crew().await;
    let g = env.ball_gun(&mut manager, "TEL-1").await;
    let base = env.now() - SignedDuration::from_hours(3);
    let readings: Vec<_> = (0..10_000u32)
        .map(|i| pb::ReportTelemetryRequest {
            reading: Some(pb::TelemetryReading {
                device_id: g.id.clone(),
                battery_percent: Some(100 - i / 100),
                charging: false,
                temperature_celsius: Some(30.0),
                firmware_version: "2.1.0".into(),
                reading_time: Some(to_proto(base + SignedDuration::from_secs(i.into()))),
            }),
        })
        .collect();
    assert_eq!(report(&mut hub, readings).await.unwrap(), 10_000);
    let stored: i64 = sqlx::query("SELECT COUNT(*) AS n FROM device_readings WHERE device_id = $1")
        .bind(&g.id)
        .fetch_one(env.db.db.reader())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(stored, i64::from(HISTORY));
    // The whole history in two pages, newest first, each reading once.
    let mut history = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = staff
            .list_telemetry(pb::ListTelemetryRequest {
                device_id: g.id.clone(),
                page_size: 500,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        history.extend(page.readings);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(
        pages, 2,
        "1000 readings, 500 a page: the second page is the last"
    );
    assert_eq!(history.len(), 1000);
    let times: Vec<_> = history
        .iter()
        .map(|r| recovery_kit::time::from_proto(&r.reading_time.unwrap()).unwrap())
        .collect();
    let expected: Vec<_> = (9_000..10_000i64)
        .rev()
        .map(|i| base + SignedDuration::from_secs(i))
        .collect();
    assert_eq!(times, expected);
    let d = device(&mut staff, &g.id).await;
    assert_eq!(d.last_reading.unwrap().battery_percent, Some(1));
    assert_eq!(d.firmware_version, "2.1.0");
}

async fn telemetry_pages_hold_still_while_readings_arrive(db: TestDb) {
    let env = env(db).await;
    let (mut manager, mut staff, mut hub) = env.crew().await;
    let g = env.ball_gun(&mut manager, "PAGE-1").await;
    let base = env.now() - SignedDuration::from_mins(30);
    // Battery percent tells the readings apart; reading i is taken i
    // minutes after `base`, sent out of order.
    let at = |i: u32, battery: u32| pb::ReportTelemetryRequest {
        reading: Some(pb::TelemetryReading {
            device_id: g.id.clone(),
            battery_percent: Some(battery),
            reading_time: Some(to_proto(base + SignedDuration::from_mins(i.into()))),
            ..Default::default()
        }),
    };
    let first: Vec<_> = [3, 1, 7, 0, 5, 2, 6, 4].map(|i| at(i, i)).to_vec();
    report(&mut hub, first).await.unwrap();
    let list = |token: String| pb::ListTelemetryRequest {
        device_id: g.id.clone(),
        page_size: 3,
        page_token: token,
    };
    let batteries = |p: &pb::ListTelemetryResponse| -> Vec<u32> {
        p.readings
            .iter()
            .map(|r| r.battery_percent.unwrap())
            .collect()
    };
    let page1 = staff
        .list_telemetry(list(String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batteries(&page1), [7, 6, 5], "newest reading time first");
    assert!(!page1.next_page_token.is_empty());

    // New readings arrive: newer ones, and one taken at the same instant as
    // the last reading of page 1 (it sorts before it: received later).
    report(&mut hub, vec![at(9, 90), at(8, 80), at(5, 50)])
        .await
        .unwrap();
    let mut rest = Vec::new();
    let mut sizes = Vec::new();
    let mut token = page1.next_page_token;
    while !token.is_empty() {
        let page = staff
            .list_telemetry(list(token))
            .await
            .unwrap()
            .into_inner();
        sizes.push(page.readings.len());
        rest.extend(batteries(&page));
        token = page.next_page_token;
    }
    assert_eq!(rest, [4, 3, 2, 1, 0], "no duplicates, no gaps");
    assert_eq!(sizes, [3, 2], "a full page, then the short last one");

    // From the top again, the new readings lead.
    let top = staff
        .list_telemetry(list(String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batteries(&top), [90, 80, 7]);
    let next = staff
        .list_telemetry(list(top.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batteries(&next), [6, 50, 5], "a tie: received later first");

    // Tokens are checked: garbage, and another list's token.
    let bad = staff
        .list_telemetry(list("garbage".into()))
        .await
        .unwrap_err();
    invalid(&bad, &["page_token"]);
    env.ball_gun(&mut manager, "PAGE-2").await;
    let foreign = manager
        .list_devices(pb::ListDevicesRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let bad = staff.list_telemetry(list(foreign)).await.unwrap_err();
    assert_eq!(fields(&bad), ["page_token"]);
}

/// Readings with and without a temperature, in turn, many times: on
/// PostgreSQL the statements are prepared once per connection, and a first
/// reading without a temperature must not make every later one with a
/// temperature fail (the demo hub's guns and chambers did).
async fn readings_with_and_without_a_temperature_take_turns(db: TestDb) {
    let env = env(db).await;
    let (mut manager, mut staff, mut hub) = env.crew().await;
    let g = env.ball_gun(&mut manager, "TEL-2").await;
    for round in 0..12u32 {
        let temperature = (round % 2 == 1).then(|| -110.5 - f64::from(round));
        let one = pb::ReportTelemetryRequest {
            reading: Some(pb::TelemetryReading {
                device_id: g.id.clone(),
                battery_percent: Some(90),
                temperature_celsius: temperature,
                ..Default::default()
            }),
        };
        assert_eq!(
            report(&mut hub, vec![one.clone(), one]).await.unwrap(),
            2,
            "round {round}"
        );
        let latest = device(&mut staff, &g.id).await.last_reading.unwrap();
        assert_eq!(latest.temperature_celsius, temperature, "round {round}");
    }
}

/// Guns (no temperatures) and chambers (target and ready temperatures)
/// registered and updated in turn: the same statements with and without
/// their doubles (the walkthrough on PostgreSQL registered a gun, then a
/// chamber, and was answered INTERNAL).
async fn devices_with_and_without_temperatures_take_turns(db: TestDb) {
    let env = env(db).await;
    let (mut manager, mut staff, _hub) = env.crew().await;
    for round in 0..6u32 {
        let gun = register(
            &mut manager,
            gun(&env.a.location, &format!("G-{round}"), &[]),
        )
        .await;
        assert_eq!(gun.kind, pb::DeviceKind::PercussionMassager as i32);
        let target = -110.0 - f64::from(round) / 4.0;
        let chamber = register(
            &mut manager,
            pb::Device {
                location_id: env.a.location.clone(),
                kind: pb::DeviceKind::CryoChamber as i32,
                display_name: format!("Chamber {round}"),
                serial_number: format!("C-{round}"),
                spec: Some(pb::device::Spec::CryoChamber(pb::CryoChamberSpec {
                    target_temperature_celsius: target,
                    ready_threshold_celsius: -90.0,
                })),
                ..Default::default()
            },
        )
        .await;
        let read = device(&mut staff, &chamber.id).await;
        assert_eq!(
            read.spec,
            Some(pb::device::Spec::CryoChamber(pb::CryoChamberSpec {
                target_temperature_celsius: target,
                ready_threshold_celsius: -90.0,
            })),
            "round {round}"
        );
    }
}

recovery_kit::engine_tests!(
    devices_with_and_without_temperatures_take_turns,
    readings_with_and_without_a_temperature_take_turns,
    ten_thousand_readings_are_stored_and_bounded,
    telemetry_pages_hold_still_while_readings_arrive,
);
