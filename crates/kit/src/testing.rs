//! Test support every service's tests use: a fresh database per test on
//! either engine, a server on a bound `127.0.0.1:0` listener, and clients
//! that send a key.
//!
//! PostgreSQL tests read `TEST_DATABASE_URL` (a database the tests may
//! create others next to). Without it they are skipped with a note, except
//! when `CI` is set: there a missing database fails the run.

use std::net::SocketAddr;
use std::path::PathBuf;

use sqlx::{AnyConnection, Connection as _, Executor as _};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::Channel;

use crate::server::{ServeOptions, Services, serve};
use crate::{Db, Engine};

/// A database that exists for one test and is removed after it.
pub struct TestDb {
    /// The connected database.
    pub db: Db,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A fresh SQLite file in the system temp directory.
    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("recovery-test-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.join("test.db").display());
        let db = Db::connect(&url).await.expect("open sqlite");
        TestDb {
            db,
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A fresh PostgreSQL database next to `TEST_DATABASE_URL`, or `None`
    /// (with a note) when it is unset outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let Some(admin_url) = postgres_url() else {
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return None;
        };
        let name = format!("recovery_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = AnyConnection::connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        let db = Db::connect(&url).await.expect("connect to test database");
        Some(TestDb {
            db,
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// A fresh database of `engine`, or `None` where that engine is skipped.
    pub async fn of(engine: Engine) -> Option<TestDb> {
        match engine {
            Engine::Sqlite => Some(Self::sqlite().await),
            Engine::Postgres => Self::postgres().await,
        }
    }

    /// The URL, to hand to a binary under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.db.engine()
    }
}

fn postgres_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            crate::db::DRIVERS.call_once(sqlx::any::install_default_drivers);
            Some(url)
        }
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but TEST_DATABASE_URL is not: PostgreSQL tests must run in CI"
            );
            None
        }
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_and_path = &base[scheme_end..];
    let host = host_and_path
        .split_once('/')
        .map_or(host_and_path, |(h, _)| h);
    let mut out = format!("{}{host}/{name}", &base[..scheme_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop may run inside a runtime: use a thread of its own.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    runtime.block_on(async {
                        let mut admin = AnyConnection::connect(&admin_url).await.ok()?;
                        admin
                            .execute(
                                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                            )
                            .await
                            .ok()?;
                        admin.close().await.ok()
                    })
                })
                .join();
            }
        }
    }
}

/// A server running in the test's runtime on an ephemeral port.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Binds `127.0.0.1:0` and serves `services` on it.
    pub async fn start(services: Services) -> TestServer {
        Self::start_with(services, ServeOptions::default()).await
    }

    /// Binds `127.0.0.1:0` and serves `services` on it with `options`.
    pub async fn start_with(services: Services, options: ServeOptions) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, services, options, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A channel to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect to test server")
    }

    /// Sends the shutdown signal (as SIGTERM would).
    pub fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Whether the server has stopped.
    pub fn is_stopped(&self) -> bool {
        self.task
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished)
    }

    /// Sends the shutdown signal and waits for the server to stop.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.signal_shutdown();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Adds `authorization: Bearer <key>` to every call of a client.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Sends `key`.
    pub fn new(key: &str) -> Self {
        Self(format!("Bearer {key}").parse().ok())
    }

    /// Sends no key at all.
    pub fn none() -> Self {
        Self(None)
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Declares each named `async fn(TestDb)` as a test on SQLite and on
/// PostgreSQL (`sqlite::name`, `postgres::name`): one body, both engines.
#[macro_export]
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::TestDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::testing::TestDb::postgres().await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

/// Runs `calls` at once, each on a task of its own, and returns their
/// answers in order; panics if one failed.
pub async fn at_once<T, F>(calls: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = Result<T, tonic::Status>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.expect("the call's task").expect("the call"));
    }
    answers
}

/// A server binary under test, run as a real process: on `127.0.0.1:0` and a
/// temporary data directory, with its stderr echoed and watched.
pub struct Daemon {
    child: std::process::Child,
    /// The binary's file name.
    name: String,
    /// The address it reported it listens on.
    pub addr: String,
    lines: std::sync::mpsc::Receiver<String>,
    data: PathBuf,
}

impl Daemon {
    /// Starts `bin` with `--listen 127.0.0.1:0 --data-dir <temp>`, `args` and
    /// `env`, and waits (at most a minute) until it logs the address it got.
    pub fn start(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        use std::io::BufRead as _;
        let name = std::path::Path::new(bin)
            .file_name()
            .map_or_else(|| "daemon".into(), |n| n.to_string_lossy().into_owned());
        let data = std::env::temp_dir().join(format!("{name}-test-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&data).expect("create data dir");
        let mut command = std::process::Command::new(bin);
        command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("RECOVERY_DATABASE_URL")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        let label = name.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("{label}: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let addr = loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .unwrap_or_else(|_| panic!("{name} did not report its address"));
            if let Some(rest) = line.split("address=").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        Daemon {
            child,
            name,
            addr,
            lines,
            data,
        }
    }

    /// A connected channel to it.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("daemon address")
            .connect()
            .await
            .expect("connect to the daemon")
    }

    /// Terminates it ([`Daemon::terminate`]) and asserts that it shut down
    /// cleanly: a successful exit, having logged that it was shutting down.
    pub fn stop_cleanly(self) {
        let name = self.name.clone();
        let (status, said) = self.terminate();
        assert!(status.success(), "{name} exited with {status}");
        assert!(
            said.iter().any(|l| l.contains("shutting down")),
            "{name} did not log that it was shutting down"
        );
    }

    /// What it printed so far (after the address line).
    pub fn said(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Sends SIGTERM and returns the exit status and what it printed since.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "SIGTERM could not be sent");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The reader thread ends at the end of the output.
                let said = self.lines.iter().collect();
                return (status, said);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}

/// What a test reads off a call: the message of one that must succeed, the
/// code, `ErrorInfo` reason and `BadRequest` fields of one that must not.
pub mod answers {
    use tonic::{Code, Response, Status};
    use tonic_types::StatusExt as _;

    /// The message of a call that must succeed.
    pub fn ok<T>(result: Result<Response<T>, Status>) -> T {
        match result {
            Ok(response) => response.into_inner(),
            Err(status) => panic!("the call failed: {status:?}"),
        }
    }

    /// The code of a call that must fail.
    pub fn code<T: std::fmt::Debug>(result: Result<T, Status>) -> Code {
        match result {
            Ok(value) => panic!("the call succeeded: {value:?}"),
            Err(status) => status.code(),
        }
    }

    /// The `ErrorInfo` reason of a refusal ("" without one).
    pub fn reason(status: &Status) -> String {
        status
            .get_error_details()
            .error_info()
            .map(|i| i.reason.clone())
            .unwrap_or_default()
    }

    /// The `ErrorInfo` metadata value `key` of a refusal.
    pub fn fact(status: &Status, key: &str) -> Option<String> {
        status
            .get_error_details()
            .error_info()
            .and_then(|i| i.metadata.get(key).cloned())
    }

    /// The fields a `BadRequest` names, in order.
    pub fn fields(status: &Status) -> Vec<String> {
        status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
            .unwrap_or_default()
    }
}
