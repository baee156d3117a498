//! The staff tablet, proven in a real browser: a page built from `proto/`
//! alone (protoc-gen-es messages, connect-web's gRPC-Web transport, bundled
//! by esbuild; `tests/tablet/`) is served from another origin than the real
//! `recoveryd` and driven in headless Chromium by `tests/tablet/run.mjs`
//! (playwright-core with Debian's `/usr/bin/chromium`). Through gRPC-Web and
//! CORS, the page as the front desk searches a day and books a slot, as
//! staff watches the day (`WatchSchedule`) and shows within a second a
//! booking this test makes meanwhile for another client, and shows the field
//! violation a bad request gets, decoded from `grpc-status-details-bin`.
//!
//! Needs `node`, `npm` and Chromium (`apt-get install chromium`; or set
//! `CHROMIUM`); the npm packages are installed here (`npm ci`) when missing.
//! Without the tools the test is skipped with a note, except under `CI`,
//! where it fails.

// One scenario, told in order.
#![allow(clippy::too_many_lines)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use recovery_kit::testing::answers::ok;
use recovery_kit::testing::{Bearer, Daemon};
use recovery_proto::booking::v1 as booking;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::fleet::v1 as fleet;
use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use recovery_proto::protocols::v1 as protocols;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_proto::tenancy::v1 as tenancy;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use serde_json::{Value, json};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const OPERATOR_KEY: &str = "rk_tablet-operator-key-for-tests-only";

/// The tablet's npm project.
fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tablet")
}

struct Tools {
    node: PathBuf,
    npm: PathBuf,
    chromium: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn tools() -> Option<Tools> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")))
        .filter(|path| path.is_file());
    let found = [
        ("node", on_path("node")),
        ("npm", on_path("npm")),
        ("chromium", chromium),
    ];
    let missing: Vec<&str> = found
        .iter()
        .filter(|(_, path)| path.is_none())
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        let [node, npm, chromium] = found.map(|(_, path)| path.unwrap());
        return Some(Tools {
            node,
            npm,
            chromium,
        });
    }
    let missing = missing.join(" and ");
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {missing} is missing: the tablet test must run in CI"
    );
    eprintln!("skipped: {missing} not found (apt-get install nodejs npm chromium)");
    None
}

/// `npm ci` when the packages are missing, then the client generated from
/// `proto/` (`buf generate`) and bundled (esbuild) into `dist/`: seconds.
fn build_tablet(npm: &Path) {
    let dir = project();
    let npm_run = |args: &[&str]| {
        let started = Instant::now();
        let status = Command::new(npm)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("run npm {args:?}: {e}"));
        assert!(status.success(), "npm {args:?} failed in tests/tablet");
        eprintln!("npm {args:?}: {:?}", started.elapsed());
    };
    if !dir.join("node_modules/.bin/esbuild").is_file() {
        npm_run(&["ci", "--no-audit", "--no-fund"]);
    }
    npm_run(&["run", "--silent", "build"]);
    assert!(dir.join("dist/tablet.js").is_file(), "the bundle was built");
}

fn epoch_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_millis()).expect("ms fit")
}

type Keyed = InterceptedService<Channel, Bearer>;

/// `node run.mjs` (and the Chromium it started), killed if the test fails
/// before it exits.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The studio the page works in, set up over gRPC the way the README's
/// walkthrough does it.
struct Studio {
    location: String,
    treatment: String,
    desk_key: String,
    staff_key: String,
    /// The chamber, registered once in fleet (booking offers it).
    chamber: String,
    /// Booked by the page.
    ana: String,
    /// Booked by this test while the page watches.
    ben: String,
}

async fn set_up(channel: Channel) -> Studio {
    let mut operator =
        TenancyServiceClient::with_interceptor(channel.clone(), Bearer::new(OPERATOR_KEY));
    let tenant = ok(operator
        .create_tenant(tenancy::CreateTenantRequest {
            tenant: Some(tenancy::Tenant {
                display_name: "Tablet Recovery".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await)
    .tenant
    .expect("tenant");
    // Open around the clock in UTC, so the test works at any hour; the
    // page books tomorrow (UTC), a full day of slots.
    let location = ok(operator
        .create_location(tenancy::CreateLocationRequest {
            tenant_id: tenant.id.clone(),
            location: Some(tenancy::Location {
                display_name: "Riverside".into(),
                time_zone: "UTC".into(),
                weekly_hours: (1..=7)
                    .map(|day| tenancy::OpeningHours {
                        day,
                        open: "00:00".into(),
                        close: "24:00".into(),
                    })
                    .collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await)
    .location
    .expect("location")
    .id;
    let key = |role: tenancy::Role, name: &str| tenancy::CreateApiKeyRequest {
        tenant_id: tenant.id.clone(),
        role: role as i32,
        display_name: name.into(),
        request_id: String::new(),
    };
    let manager_key = ok(operator
        .create_api_key(key(tenancy::Role::Manager, "owner"))
        .await)
    .secret;
    let desk_key = ok(operator
        .create_api_key(key(tenancy::Role::FrontDesk, "front desk"))
        .await)
    .secret;
    let staff_key = ok(operator
        .create_api_key(key(tenancy::Role::Staff, "floor tablet"))
        .await)
    .secret;

    // The manager's catalog: one chamber, registered once in fleet (which
    // tells booking), and whole-body cryo (3 minutes).
    let chamber = ok(FleetServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(&manager_key),
    )
    .register_device(fleet::RegisterDeviceRequest {
        device: Some(fleet::Device {
            location_id: location.clone(),
            kind: fleet::DeviceKind::CryoChamber as i32,
            display_name: "Chamber 1".into(),
            serial_number: "TAB-CH-1".into(),
            spec: Some(fleet::device::Spec::CryoChamber(fleet::CryoChamberSpec {
                target_temperature_celsius: -110.0,
                ready_threshold_celsius: -90.0,
            })),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await)
    .device
    .expect("chamber")
    .id;
    let mut manager =
        BookingServiceClient::with_interceptor(channel.clone(), Bearer::new(&manager_key));
    let offered = Instant::now();
    while !ok(manager
        .list_resources(booking::ListResourcesRequest {
            location_id: location.clone(),
            ..Default::default()
        })
        .await)
    .resources
    .iter()
    .any(|r| r.device_id == chamber)
    {
        assert!(
            offered.elapsed() < Duration::from_secs(10),
            "booking never offered the chamber fleet registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let treatment = ok(manager
        .create_treatment(booking::CreateTreatmentRequest {
            treatment: Some(booking::Treatment {
                display_name: "Whole-body cryo".into(),
                modality: booking::Modality::WholeBodyCryotherapy as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await)
    .treatment
    .expect("treatment")
    .id;

    // Two clients the desk may book for cryo: screened, waiver signed.
    let mut desk = ProtocolServiceClient::with_interceptor(channel, Bearer::new(&desk_key));
    let mut clients = Vec::new();
    for (given, family) in [("Ana", "Lindqvist"), ("Ben", "Okafor")] {
        let client = ok(desk
            .create_client(protocols::CreateClientRequest {
                client: Some(protocols::Client {
                    given_name: given.into(),
                    family_name: family.into(),
                    date_of_birth: "1990-04-12".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await)
        .client
        .expect("client")
        .id;
        ok(desk
            .record_screening(protocols::RecordScreeningRequest {
                screening: Some(protocols::Screening {
                    client_id: client.clone(),
                    questionnaire_version: "2026-01".into(),
                    answers: [
                        protocols::Condition::Pregnancy,
                        protocols::Condition::Pacemaker,
                        protocols::Condition::Raynauds,
                        protocols::Condition::ColdUrticaria,
                    ]
                    .into_iter()
                    .map(|condition| protocols::ScreeningAnswer {
                        condition: condition as i32,
                        present: false,
                        ..Default::default()
                    })
                    .collect(),
                    blood_pressure: Some(protocols::BloodPressure {
                        systolic: 121,
                        diastolic: 78,
                        measure_time: None,
                    }),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await);
        ok(desk
            .sign_waiver(protocols::SignWaiverRequest {
                waiver: Some(protocols::Waiver {
                    client_id: client.clone(),
                    version: "v3".into(),
                    signer_name: format!("{given} {family}"),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await);
        clients.push(client);
    }
    let ben = clients.pop().expect("Ben");
    let ana = clients.pop().expect("Ana");
    Studio {
        location,
        treatment,
        desk_key,
        staff_key,
        chamber,
        ana,
        ben,
    }
}

/// The first open slot of `day` (UTC), booked for `client` by the desk.
async fn book_first_slot(
    desk: &mut BookingServiceClient<Keyed>,
    studio: &Studio,
    day: jiff::civil::Date,
    client: &str,
) -> booking::Booking {
    let from = day
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .expect("midnight")
        .timestamp();
    let timestamp = |t: jiff::Timestamp| prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: 0,
    };
    let slots = ok(desk
        .search_availability(booking::SearchAvailabilityRequest {
            location_id: studio.location.clone(),
            treatment_id: studio.treatment.clone(),
            start_time: Some(timestamp(from)),
            end_time: Some(timestamp(from + jiff::SignedDuration::from_hours(24))),
            resource_id: String::new(),
            ..Default::default()
        })
        .await)
    .slots;
    let slot = slots.first().expect("an open slot left");
    ok(desk
        .create_booking(booking::CreateBookingRequest {
            location_id: studio.location.clone(),
            treatment_id: studio.treatment.clone(),
            client_id: client.to_owned(),
            start_time: slot.start_time,
            ..Default::default()
        })
        .await)
    .booking
    .expect("booking")
}

#[test]
fn a_tablet_page_in_chromium_books_watches_live_and_shows_field_violations_over_grpc_web() {
    let Some(tools) = tools() else {
        return;
    };
    build_tablet(&tools.npm);

    let daemon = Daemon::start(
        env!("CARGO_BIN_EXE_recoveryd"),
        &[],
        &[("RECOVERY_BOOTSTRAP_KEY", OPERATOR_KEY)],
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let channel = runtime.block_on(async {
        Channel::from_shared(format!("http://{}", daemon.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect to recoveryd")
    });
    let studio = runtime.block_on(set_up(channel.clone()));
    let day = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .expect("tomorrow");
    let channel_for_staff = channel.clone();
    let mut desk = BookingServiceClient::with_interceptor(channel, Bearer::new(&studio.desk_key));

    let out = std::env::temp_dir().join(format!("tablet-test-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("temp dir");
    let screenshot = out.join("tablet.png");
    let config = json!({
        "backend": format!("http://{}", daemon.addr),
        "desk": studio.desk_key,
        "staff": studio.staff_key,
        "location": studio.location,
        "treatment": studio.treatment,
        "client": studio.ana,
        "day": day.to_string(),
        "screenshot": screenshot,
        "chromium": tools.chromium,
    });
    let started = Instant::now();
    let mut browser = Browser(
        Command::new(&tools.node)
            .arg("run.mjs")
            .arg(config.to_string())
            .current_dir(project())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start node run.mjs"),
    );
    let mut to_page = browser.0.stdin.take().expect("stdin");
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = browser.0.stdout.take().expect("stdout");
    let stderr = browser.0.stderr.take().expect("stderr");
    let said = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if said.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("run.mjs: {line}");
        }
    });
    drop(tx);

    // Each step the script reports, in order; while the page watches, Ben is
    // booked from here.
    let mut steps = serde_json::Map::new();
    let mut ben_booked = None;
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .expect("run.mjs went quiet for two minutes or ended without `done`");
        eprintln!("run.mjs says: {line}");
        let step: Value = serde_json::from_str(&line).expect("a JSON line");
        let name = step["step"].as_str().expect("a step").to_owned();
        assert_ne!(name, "failed", "the tablet failed: {}", step["error"]);
        if name == "watching" {
            let sent_at = epoch_ms();
            let ben = runtime.block_on(book_first_slot(&mut desk, &studio, day, &studio.ben));
            writeln!(to_page, "{}", json!({ "booking_id": ben.id })).expect("tell run.mjs");
            to_page.flush().expect("flush");
            ben_booked = Some((ben, sent_at));
        }
        if name == "live" {
            // Staff take the chamber out of service: both bookings on it
            // are at risk, on the page too.
            let mut floor = FleetServiceClient::with_interceptor(
                channel_for_staff.clone(),
                Bearer::new(&studio.staff_key),
            );
            runtime
                .block_on(floor.start_maintenance(fleet::StartMaintenanceRequest {
                    device_id: studio.chamber.clone(),
                    reason: "door seal leaks".into(),
                    notes: String::new(),
                }))
                .expect("staff start maintenance");
            let page_booking = steps["booked"]["id"].as_str().expect("the page's booking");
            let ben = &ben_booked.as_ref().expect("Ben is booked").0.id;
            writeln!(to_page, "{}", json!({ "at_risk": [page_booking, ben] }))
                .expect("tell run.mjs");
            to_page.flush().expect("flush");
        }
        steps.insert(name.clone(), step);
        if name == "done" {
            break;
        }
    }
    let status = browser.0.wait().expect("wait for run.mjs");
    assert!(status.success(), "run.mjs exited with {status}");
    eprintln!("the browser's part took {:?}", started.elapsed());

    // Served from another origin than the server: CORS was in play.
    let opened = &steps["opened"];
    assert_ne!(opened["page_origin"], opened["server_origin"]);

    // The desk searched the day and booked its first slot for Ana: the
    // server holds that booking.
    assert!(
        steps["searched"]["slots"].as_u64().unwrap() > 1,
        "{steps:?}"
    );
    // In the basic view the page shows the studio's one chamber counted.
    assert_eq!(steps["searched"]["free"].as_u64(), Some(1), "{steps:?}");
    let booked_id = steps["booked"]["id"].as_str().expect("booking id");
    let booked = runtime
        .block_on(desk.get_booking(booking::GetBookingRequest {
            id: booked_id.to_owned(),
        }))
        .expect("the page's booking exists")
        .into_inner()
        .booking
        .expect("booking");
    assert_eq!(booked.client_id, studio.ana);
    assert_eq!(booked.status, booking::BookingStatus::Booked as i32);

    // Staff saw Ana's booking in the snapshot, then Ben's live, within a
    // second of this test starting to book it.
    assert!(steps["watching"]["snapshot"].as_u64().unwrap() >= 1);
    let (ben, sent_at) = ben_booked.expect("Ben was booked while the page watched");
    let live = &steps["live"];
    assert_eq!(live["booking_id"], ben.id.as_str());
    assert_eq!(live["status"], "BOOKED");
    let latency = live["received_at"].as_i64().expect("received_at") - sent_at;
    eprintln!(
        "Ben's booking reached the page {latency} ms after the test began booking it \
         (search + book + stream; the script waited {} ms after hearing of it)",
        live["waited_ms"]
    );
    assert!(
        latency < 1000,
        "the live booking took {latency} ms to reach the page"
    );

    // Maintenance reached the page: both bookings marked at risk.
    assert_eq!(
        steps["at_risk"]["booking_ids"].as_array().map(Vec::len),
        Some(2)
    );

    // The bad request showed the server's field violation.
    let refused = &steps["refused"];
    assert_eq!(refused["code"], "InvalidArgument");
    let violations = refused["violations"].as_array().expect("violations");
    assert!(
        violations.iter().any(|v| v["field"] == "location_id"
            && v["description"]
                .as_str()
                .is_some_and(|d| d.contains("not a valid id"))),
        "{violations:?}"
    );

    assert!(
        screenshot.is_file(),
        "a screenshot at {}",
        screenshot.display()
    );
    eprintln!("screenshot: {}", screenshot.display());
}
