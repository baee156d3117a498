//! Limits that hold under load, applied after authentication (the caller is
//! known): a deadline per call, and per-tenant admission.
//!
//! - **Deadline.** Every call gets the caller's `grpc-timeout` or the
//!   server's maximum, whichever is shorter, until its response starts: a
//!   unary call past it is answered `DEADLINE_EXCEEDED`; a stream (a watch)
//!   has started once its headers are sent, and stays open.
//! - **Calls in flight per tenant.** Unary calls of one tenant hold a slot
//!   until their answer is sent; past the cap a call is refused
//!   `TENANT_BUSY` at once.
//! - **Calls running per tenant: its share of the server.** Of a tenant's
//!   calls in flight, at most `tenant_running` run at once; the others wait
//!   their turn, first come first served, in that tenant's own queue (a
//!   tokio semaphore per tenant), for at most `tenant_queue_wait` (then
//!   `TENANT_BUSY`). The share is sized to the database pools (a call holds
//!   one connection at a time): a tenant with 64 calls in flight holds a
//!   few connections and a few runtime tasks, so another tenant's call finds
//!   a connection free and a short run queue instead of waiting behind all
//!   64. Calls of a `service` key acting for a tenant do not queue: they are
//!   work of a call already running (a call between services), and waiting
//!   behind that call's own tenant could deadlock.
//! - **Streams per tenant.** Streaming calls (watches, hub uploads) do not
//!   take an in-flight slot (they stay open for hours) but have their own
//!   cap: `TOO_MANY_WATCHERS`.
//! - **Rate per key.** A token bucket per API key: `rate` calls a second,
//!   `burst` at once: `RATE_LIMITED` with the time until the next token.
//!   With Redis the bucket lives there (one atomic script per call), so it
//!   holds across replicas; if Redis cannot be reached, the process's own
//!   bucket stands in (logged once) until it can.
//!
//! Who counts as what: a tenant's keys count toward their tenant; an
//! operator key (no tenant) is its own account; a `service` key acting for
//! a tenant counts toward that tenant's in-flight and stream caps but is not
//! rate-limited (its key carries every tenant's traffic); a `service` key
//! acting for no tenant (platform sweeps) is not limited.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::server::NamedService;

use crate::auth::BoxFuture;
use crate::{Caller, Error, Role, reason};

/// The per-tenant limits and the message size every server enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest message a call may send or receive, in bytes.
    pub max_message_bytes: usize,
    /// The longest a call may take until its response starts, and the
    /// deadline of a call that names none (`grpc-timeout`).
    pub max_deadline: Duration,
    /// Unary calls one tenant may have in flight (running or queued).
    pub tenant_in_flight: usize,
    /// Unary calls of one tenant that run at once; the rest of its calls
    /// in flight wait in the tenant's queue.
    pub tenant_running: usize,
    /// The longest a call waits in its tenant's queue before it is refused
    /// `TENANT_BUSY`.
    pub tenant_queue_wait: Duration,
    /// Streams one tenant may have open.
    pub tenant_streams: usize,
    /// Calls a second one key may make, sustained.
    pub key_rate: f64,
    /// Calls one key may make at once after a pause.
    pub key_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            max_deadline: Duration::from_secs(30),
            tenant_in_flight: 64,
            tenant_running: DEFAULT_TENANT_RUNNING,
            tenant_queue_wait: Duration::from_secs(3),
            tenant_streams: 100,
            key_rate: 100.0,
            key_burst: 200,
        }
    }
}

/// Calls of one tenant running at once by default: half of SQLite's eight
/// reading connections, so two busy tenants cannot take every one, and
/// twice the cores of a small server (docs/BENCHMARKS.md, noisy neighbour).
pub const DEFAULT_TENANT_RUNNING: usize = 4;

/// How long a caller refused `TENANT_BUSY` should wait: calls are short.
const BUSY_RETRY: Duration = Duration::from_millis(200);
/// How long a caller refused `TOO_MANY_WATCHERS` should wait: streams are
/// long; one has to close first.
const WATCHERS_RETRY: Duration = Duration::from_secs(5);

/// Decides, per call, whether its caller is within its limits.
pub struct Admission {
    limits: Limits,
    in_flight: Accounts,
    running: Accounts,
    streams: Accounts,
    local: Mutex<HashMap<String, Bucket>>,
    redis: Option<RedisBuckets>,
    /// The paths (`/package.Service/Method`) of streaming methods, learnt
    /// from the descriptor sets when the server starts.
    streaming: OnceLock<HashSet<String>>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("limits", &self.limits)
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

/// A semaphore per account, made on first use.
struct Accounts {
    size: usize,
    open: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Accounts {
    fn new(size: usize) -> Self {
        Self {
            size,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn semaphore(&self, account: &str) -> Arc<Semaphore> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            open.entry(account.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.size))),
        )
    }

    /// A slot of `account`, or `None` when all are taken (never waits).
    fn try_take(&self, account: &str) -> Option<OwnedSemaphorePermit> {
        self.semaphore(account).try_acquire_owned().ok()
    }

    /// A slot of `account`, waiting for one (first come, first served) at
    /// most `patience`; `None` when none came free in time.
    async fn take(&self, account: &str, patience: Duration) -> Option<OwnedSemaphorePermit> {
        let semaphore = self.semaphore(account);
        match tokio::time::timeout(patience, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            // The semaphores are never closed.
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

/// What an admitted call holds until its response ends: its slot in flight
/// and, once its turn came, its running slot.
#[derive(Debug, Default)]
pub struct Admitted {
    _in_flight: Option<OwnedSemaphorePermit>,
    _running: Option<OwnedSemaphorePermit>,
}

impl Admission {
    /// Admission by `limits`, with buckets in this process.
    pub fn new(limits: Limits) -> Self {
        Self {
            in_flight: Accounts::new(limits.tenant_in_flight),
            running: Accounts::new(limits.tenant_running.max(1)),
            streams: Accounts::new(limits.tenant_streams),
            limits,
            local: Mutex::new(HashMap::new()),
            redis: None,
            streaming: OnceLock::new(),
        }
    }

    /// Admission by `limits` whose buckets live in Redis at `url`, under
    /// `<prefix>:limits:<key id>` (connecting lazily).
    pub fn with_redis(limits: Limits, url: &str, prefix: &str) -> anyhow::Result<Self> {
        let mut admission = Self::new(limits);
        admission.redis = Some(RedisBuckets::open(url, prefix)?);
        Ok(admission)
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Learns which methods stream from encoded `FileDescriptorSet`s (once;
    /// later calls are ignored).
    pub fn learn_streaming(&self, descriptor_sets: &[&[u8]]) {
        use prost::Message as _;
        let mut paths = HashSet::new();
        for set in descriptor_sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
                continue;
            };
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let service_name = service.name.unwrap_or_default();
                    for method in service.method {
                        if method.server_streaming() || method.client_streaming() {
                            let full = if package.is_empty() {
                                service_name.clone()
                            } else {
                                format!("{package}.{service_name}")
                            };
                            paths.insert(format!("/{full}/{}", method.name()));
                        }
                    }
                }
            }
        }
        let _ = self.streaming.set(paths);
    }

    fn streams(&self, path: &str) -> bool {
        self.streaming
            .get()
            .is_some_and(|paths| paths.contains(path))
    }

    /// Admits a call of `caller` to `path`: refuses it at once past its
    /// tenant's caps or its key's rate, else waits for the tenant's turn to
    /// run (a unary call of anyone but a service), at most
    /// [`Limits::tenant_queue_wait`].
    pub async fn admit(&self, caller: &Caller, path: &str) -> Result<Admitted, Error> {
        let account = match (caller.role, caller.tenant_id.as_deref()) {
            (Role::Service, None) => return Ok(Admitted::default()),
            (_, Some(tenant)) => format!("tenant:{tenant}"),
            (_, None) => format!("key:{}", caller.key_id),
        };
        let streams = self.streams(path);
        let permit = if streams {
            self.streams
                .try_take(&account)
                .ok_or_else(|| Error::ResourceExhausted {
                    reason: reason::TOO_MANY_WATCHERS,
                    message: format!(
                        "too many open streams: at most {} per tenant",
                        self.limits.tenant_streams
                    ),
                    retry_after: WATCHERS_RETRY,
                })?
        } else {
            self.in_flight
                .try_take(&account)
                .ok_or_else(|| Error::ResourceExhausted {
                    reason: reason::TENANT_BUSY,
                    message: format!(
                        "too many calls in flight: at most {} per tenant",
                        self.limits.tenant_in_flight
                    ),
                    retry_after: BUSY_RETRY,
                })?
        };
        if caller.role == Role::Service {
            return Ok(Admitted {
                _in_flight: Some(permit),
                _running: None,
            });
        }
        self.take_token(&caller.key_id).await?;
        let running = if streams {
            None
        } else {
            let turn = self
                .running
                .take(&account, self.limits.tenant_queue_wait)
                .await
                .ok_or_else(|| Error::ResourceExhausted {
                    reason: reason::TENANT_BUSY,
                    message: format!(
                        "too many calls in flight: {} of this tenant run at once, and this one waited {} ms for its turn",
                        self.limits.tenant_running.max(1),
                        self.limits.tenant_queue_wait.as_millis()
                    ),
                    retry_after: BUSY_RETRY,
                })?;
            Some(turn)
        };
        Ok(Admitted {
            _in_flight: Some(permit),
            _running: running,
        })
    }

    async fn take_token(&self, key_id: &str) -> Result<(), Error> {
        let (rate, burst) = (self.limits.key_rate, self.limits.key_burst);
        let wait = match &self.redis {
            Some(redis) => match redis.take(key_id, rate, burst).await {
                Some(wait) => wait,
                None => self.take_local(key_id),
            },
            None => self.take_local(key_id),
        };
        match wait {
            None => Ok(()),
            Some(retry_after) => Err(Error::ResourceExhausted {
                reason: reason::RATE_LIMITED,
                message: format!(
                    "rate limited: at most {rate} calls a second per key, {burst} at once"
                ),
                retry_after,
            }),
        }
    }

    fn take_local(&self, key_id: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut buckets = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets
            .entry(key_id.to_owned())
            .or_insert_with(|| Bucket::full(self.limits.key_burst, now));
        bucket.take(now, self.limits.key_rate, self.limits.key_burst)
    }
}

/// A token bucket: `tokens` as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            at: now,
        }
    }

    /// Takes a token at `now`; `Some(wait)` when there is none, with how
    /// long until there is.
    fn take(&mut self, now: Instant, rate: f64, burst: u32) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else if rate > 0.0 {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        } else {
            Some(Duration::from_secs(3600))
        }
    }
}

/// Token buckets in Redis: one script per call refills and takes
/// atomically, on Redis's clock, so every replica sees one bucket per key.
struct RedisBuckets {
    prefix: String,
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
    /// Until when Redis is not asked (it just failed).
    down_until: Mutex<Option<Instant>>,
    /// Whether the failure was logged (once per outage).
    warned: AtomicBool,
}

/// KEYS[1] the bucket; ARGV rate (tokens a second), burst. Answers 0 when a
/// token was taken, else the milliseconds until there is one.
const TAKE_TOKEN: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then tokens = math.min(burst, tokens + (now - at) * rate) end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
elseif rate > 0 then
  wait = math.max(1, math.ceil((1 - tokens) / rate * 1000))
else
  wait = 3600000
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(math.max(now, at)))
local ttl = 60000
if rate > 0 then ttl = math.ceil(burst / rate * 1000) + 1000 end
redis.call('PEXPIRE', KEYS[1], ttl)
return wait
";

/// How long a call waits for Redis before the local bucket decides.
const REDIS_WAIT: Duration = Duration::from_millis(250);
/// How long Redis is left alone after it failed.
const REDIS_PAUSE: Duration = Duration::from_secs(5);

impl RedisBuckets {
    fn open(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let connection = redis::aio::ConnectionManager::new_lazy_with_config(
            client,
            redis::aio::ConnectionManagerConfig::new()
                .set_number_of_retries(1)
                .set_connection_timeout(Some(REDIS_WAIT))
                .set_response_timeout(Some(REDIS_WAIT)),
        )?;
        Ok(Self {
            prefix: prefix.to_owned(),
            connection,
            script: redis::Script::new(TAKE_TOKEN),
            down_until: Mutex::new(None),
            warned: AtomicBool::new(false),
        })
    }

    /// `Some(None)` admitted, `Some(Some(wait))` refused, `None` when Redis
    /// could not answer.
    async fn take(&self, key_id: &str, rate: f64, burst: u32) -> Option<Option<Duration>> {
        let paused = *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if paused.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(format!("{}:limits:{key_id}", self.prefix));
        invocation.arg(rate).arg(burst);
        let answer =
            tokio::time::timeout(REDIS_WAIT, invocation.invoke_async::<u64>(&mut connection)).await;
        match answer {
            Ok(Ok(wait)) => {
                if self.warned.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits are shared through redis again");
                }
                Some((wait > 0).then(|| Duration::from_millis(wait)))
            }
            Ok(Err(error)) => {
                self.failed(&error.to_string());
                None
            }
            Err(_) => {
                self.failed("no answer in time");
                None
            }
        }
    }

    fn failed(&self, error: &str) {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + REDIS_PAUSE);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                %error,
                "redis unreachable: rate limits are per process until it answers"
            );
        }
    }
}

/// Wraps one gRPC service (inside [`crate::auth::RequireKey`]) with the
/// deadline and admission.
#[derive(Clone)]
pub(crate) struct Admit<S> {
    inner: S,
    admission: Arc<Admission>,
}

impl<S> Admit<S> {
    pub(crate) fn new(inner: S, admission: Arc<Admission>) -> Self {
        Self { inner, admission }
    }
}

impl<S: NamedService> NamedService for Admit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for Admit<S>
where
    S: tower::Service<
            http::Request<B>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let admission = Arc::clone(&self.admission);
        let max = self.admission.limits.max_deadline;
        let deadline = grpc_timeout(request.headers()).map_or(max, |asked| asked.min(max));
        Box::pin(async move {
            let answer = tokio::time::timeout(deadline, async move {
                let Some(caller) = request.extensions().get::<Caller>().cloned() else {
                    return Ok(
                        tonic::Status::from(Error::Unauthenticated("missing credentials"))
                            .into_http(),
                    );
                };
                match admission.admit(&caller, request.uri().path()).await {
                    Ok(admitted) => {
                        let response = inner.call(request).await?;
                        Ok(response.map(|body| {
                            tonic::body::Body::new(Holding {
                                body,
                                _admitted: admitted,
                            })
                        }))
                    }
                    Err(refused) => {
                        tracing::debug!(reason = ?refused.reason(), "call refused");
                        Ok(tonic::Status::from(refused).into_http())
                    }
                }
            })
            .await;
            answer.unwrap_or_else(|_| {
                Ok(tonic::Status::deadline_exceeded(format!(
                    "deadline of {} ms exceeded",
                    deadline.as_millis()
                ))
                .into_http())
            })
        })
    }
}

/// The `grpc-timeout` a caller sent: digits and a unit (`H M S m u n`).
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

pin_project_lite::pin_project! {
    /// A response body that keeps its call's admission until it ends.
    struct Holding {
        #[pin]
        body: tonic::body::Body,
        _admitted: Admitted,
    }
}

impl http_body::Body for Holding {
    type Data = <tonic::body::Body as http_body::Body>::Data;
    type Error = <tonic::body::Body as http_body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_timeout(&headers), None);
        for (value, expected) in [
            ("1S", Some(Duration::from_secs(1))),
            ("250m", Some(Duration::from_millis(250))),
            ("2H", Some(Duration::from_secs(7200))),
            ("5u", Some(Duration::from_micros(5))),
            ("123456789S", None),
            ("S", None),
            ("10x", None),
        ] {
            headers.insert("grpc-timeout", value.parse().unwrap());
            assert_eq!(grpc_timeout(&headers), expected, "{value}");
        }
    }
}
