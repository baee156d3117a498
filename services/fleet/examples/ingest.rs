//! Telemetry ingest benchmark: readings per second through `ReportTelemetry`
//! from concurrent hub streams (real gRPC on a loopback port), against the
//! same rows inserted one by one with plain sqlx, in the same run.
//!
//! ```sh
//! TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p recovery-fleet --example ingest -- 50 2000
//! ```
//!
//! Arguments: hub streams (default 50) and readings per stream (default
//! 2000). SQLite always runs; PostgreSQL runs when `TEST_DATABASE_URL` is set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use recovery_fleet::{Config, Fleet};
use recovery_kit::Role;
use recovery_kit::events::Bus;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::SystemClock;
use recovery_kit::{Db, Engine};
use recovery_proto::fleet::v1 as pb;
use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use recovery_tenancy::testing::{self as tenancy, Platform};

fn reading(device_id: &str, i: u32) -> pb::ReportTelemetryRequest {
    pb::ReportTelemetryRequest {
        reading: Some(pb::TelemetryReading {
            device_id: device_id.to_owned(),
            battery_percent: Some(100 - (i % 100)),
            charging: i.is_multiple_of(7),
            temperature_celsius: Some(31.5),
            firmware_version: "2.4.1".into(),
            reading_time: None,
        }),
    }
}

/// Sets up a studio with one gun per hub; returns the hub key and gun ids.
async fn studio(server: &TestServer, operator: &str, hubs: usize) -> (String, Vec<String>) {
    let made = tenancy::Studio::create(
        server.channel().await,
        operator,
        "Bench",
        "UTC",
        &[Role::Manager, Role::Device],
    )
    .await;
    let (manager, hub, location_id) = (
        made.key(Role::Manager).to_owned(),
        made.key(Role::Device).to_owned(),
        made.location_id.clone(),
    );
    let mut fleet =
        FleetServiceClient::with_interceptor(server.channel().await, Bearer::new(&manager));
    let mut ids = Vec::new();
    for i in 0..hubs {
        let device = fleet
            .register_device(pb::RegisterDeviceRequest {
                device: Some(pb::Device {
                    location_id: location_id.clone(),
                    kind: pb::DeviceKind::PercussionMassager as i32,
                    display_name: format!("Gun {i}"),
                    serial_number: format!("BENCH-{i}"),
                    spec: Some(pb::device::Spec::Percussion(pb::PercussionSpec {
                        speed_levels: 5,
                        attachments: vec![pb::Attachment::Ball as i32],
                    })),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .device
            .unwrap();
        ids.push(device.id);
    }
    (hub, ids)
}

/// Readings per second through gRPC from one stream per gun.
async fn through_grpc(server: &TestServer, hub: &str, ids: &[String], per_stream: u32) -> f64 {
    let mut clients = Vec::new();
    for _ in ids {
        clients.push(FleetServiceClient::with_interceptor(
            server.channel().await,
            Bearer::new(hub),
        ));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut client, id) in clients.into_iter().zip(ids.iter().cloned()) {
        tasks.push(tokio::spawn(async move {
            let readings = (0..per_stream).map(move |i| reading(&id, i));
            client
                .report_telemetry(tokio_stream::iter(readings))
                .await
                .unwrap()
                .into_inner()
                .accepted
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    rate(total, started.elapsed())
}

/// Readings per second as plain single-row sqlx inserts (each its own
/// transaction on the write pool), one task per gun.
async fn plain_inserts(db: &Db, ids: &[String], per_stream: u32) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in ids {
        let (db, id) = (db.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_stream {
                let r = reading(&id, i).reading.unwrap();
                let mut tx = db.begin().await.unwrap();
                sqlx::query(
                    "INSERT INTO device_readings (tenant_id, device_id, reading_time, \
                     battery_percent, charging, temperature_c, firmware_version, receive_time) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $3)",
                )
                .bind("bench")
                .bind(&id)
                .bind(jiff::Timestamp::now().as_microsecond())
                .bind(r.battery_percent.map(i64::from))
                .bind(i64::from(r.charging))
                .bind(r.temperature_celsius)
                .bind(&r.firmware_version)
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
            i64::from(per_stream)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    rate(total, started.elapsed())
}

#[allow(clippy::cast_precision_loss)]
fn rate(count: i64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

async fn run(engine: Engine, hubs: usize, per_stream: u32) {
    let Some(test_db) = TestDb::of(engine).await else {
        println!("{engine:?}: skipped (set TEST_DATABASE_URL)");
        return;
    };
    let clock = Arc::new(SystemClock);
    let platform = Platform::start(&test_db.db, clock.clone()).await;
    let operator = platform.operator.clone();
    let fleet = Fleet::start(
        test_db.db.clone(),
        clock,
        Bus::default(),
        platform.directory(),
        Config::default(),
    )
    .await
    .unwrap();
    let mut services = platform.services();
    fleet.mount(&mut services);
    let server = TestServer::start(services).await;
    let (hub, ids) = studio(&server, &operator, hubs).await;
    let grpc = through_grpc(&server, &hub, &ids, per_stream).await;
    let plain = plain_inserts(&test_db.db, &ids, per_stream).await;
    println!(
        "{engine:?}: {hubs} streams x {per_stream} readings: ReportTelemetry {grpc:.0}/s, \
         plain sqlx inserts {plain:.0}/s, ratio {:.2}",
        grpc / plain
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let hubs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let per_stream: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    run(Engine::Sqlite, hubs, per_stream).await;
    run(Engine::Postgres, hubs, per_stream).await;
}
