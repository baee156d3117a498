//! What other services need from tenancy — authenticating keys and looking
//! up locations — in process (`recoveryd`) or over gRPC (a service run on
//! its own), behind one trait so that their code does not care which.

use std::time::Duration;

use recovery_kit::auth::{Authenticator, BoxFuture};
use recovery_kit::telemetry::{TracedChannel, traced};
use recovery_kit::{Caller, Error, Role, ids::parse_id};
use recovery_proto::tenancy::v1 as pb;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use tonic::transport::Channel;

use crate::Tenancy;
use crate::keys::{KeyCache, hash};
use crate::places::Places;

/// Locations as other services see them.
pub trait Directory: Send + Sync + 'static {
    /// The location `id` as `caller` may see it: NOT_FOUND when it does not
    /// exist or is another tenant's; INVALID_ARGUMENT (field `field`) when
    /// `id` is malformed.
    fn location<'a>(
        &'a self,
        caller: &'a Caller,
        id: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<pb::Location, Error>>;
}

impl Directory for Tenancy {
    fn location<'a>(
        &'a self,
        caller: &'a Caller,
        id: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<pb::Location, Error>> {
        Box::pin(async move {
            let id = parse_id(id).map_err(|e| Error::invalid(field, e))?;
            let read = async { Ok(self.location(&caller.scope()?, &id).await?.into()) };
            self.places.location(caller, &id, read).await
        })
    }
}

/// Tenancy over gRPC, for a service run on its own: authenticates keys
/// with `GetCaller` (cached for `ttl`) and reads locations with a service
/// key (an operator key of the platform).
pub struct Remote {
    client: TenancyServiceClient<TracedChannel>,
    service_key: String,
    ttl: jiff::SignedDuration,
    keys: KeyCache,
    places: Places,
}

impl Remote {
    /// Tenancy at `channel` (traced, see [`traced`]); `service_key` reads
    /// locations of every tenant.
    pub fn new(channel: TracedChannel, service_key: String, ttl: Duration) -> Self {
        Self {
            client: TenancyServiceClient::new(channel),
            service_key,
            ttl: jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::from_secs(30)),
            keys: KeyCache::new(),
            places: Places::new(ttl),
        }
    }

    fn with_key<T>(message: T, key: &str) -> Result<tonic::Request<T>, Error> {
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| Error::Unauthenticated("malformed api key"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

fn upstream(status: &tonic::Status) -> Error {
    Error::Unavailable(format!("tenancy: {status}"))
}

impl Authenticator for Remote {
    fn authenticate<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Caller>, Error>> {
        Box::pin(async move {
            let now = jiff::Timestamp::now();
            let key_hash = hash(key);
            if let Some(kept) = self.keys.get(&key_hash, now) {
                return Ok(kept.answer());
            }
            let generation = self.keys.generation();
            let answer = self
                .client
                .clone()
                .get_caller(Self::with_key(pb::GetCallerRequest {}, key)?)
                .await;
            let caller = match answer {
                Ok(response) => {
                    let me = response.into_inner();
                    let role = match me.role() {
                        pb::Role::Operator => Role::Operator,
                        pb::Role::Manager => Role::Manager,
                        pb::Role::Staff => Role::Staff,
                        pb::Role::FrontDesk => Role::FrontDesk,
                        pb::Role::Device => Role::Device,
                        pb::Role::Service => Role::Service,
                        pb::Role::Unspecified => return Ok(None),
                    };
                    Some(Caller {
                        tenant_id: (!me.tenant_id.is_empty()).then_some(me.tenant_id),
                        role,
                        key_id: me.api_key_id,
                    })
                }
                Err(status) if status.code() == tonic::Code::Unauthenticated => None,
                Err(status) => return Err(upstream(&status)),
            };
            let until = now.saturating_add(self.ttl).unwrap_or(now);
            self.keys.put(key_hash, caller.clone(), until, generation);
            Ok(caller)
        })
    }
}

impl Directory for Remote {
    fn location<'a>(
        &'a self,
        caller: &'a Caller,
        id: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<pb::Location, Error>> {
        Box::pin(async move {
            let id = parse_id(id).map_err(|e| Error::invalid(field, e))?;
            let read = async {
                let request =
                    Self::with_key(pb::GetLocationRequest { id: id.clone() }, &self.service_key)?;
                match self.client.clone().get_location(request).await {
                    Ok(response) => Ok(response.into_inner().location.unwrap_or_default()),
                    Err(status) if status.code() == tonic::Code::NotFound => {
                        Err(Error::not_found("location", &id))
                    }
                    Err(status) => Err(upstream(&status)),
                }
            };
            // A location of another tenant is not found (`Places::location`).
            self.places.location(caller, &id, read).await
        })
    }
}

/// Flags of a service binary that runs apart from tenancy.
#[derive(Clone, clap::Args)]
pub struct RemoteArgs {
    /// Where the tenancy service listens, e.g. `http://127.0.0.1:50051`.
    #[arg(
        long,
        env = "RECOVERY_TENANCY_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub tenancy_url: String,

    /// An operator key this service reads locations with. Never printed.
    #[arg(long, env = "RECOVERY_SERVICE_KEY", hide_env_values = true)]
    pub service_key: String,

    #[command(flatten)]
    pub cache: CacheArgs,
}

/// How long what tenancy answered is kept: the flag of every binary.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct CacheArgs {
    /// Seconds a resolved API key, or a location booking looked up, is
    /// trusted before it is looked up again (how long a revocation or a
    /// location change takes to reach other processes without Redis).
    #[arg(long, env = "RECOVERY_KEY_CACHE_TTL_SECS", default_value_t = 30)]
    pub key_cache_ttl_secs: u64,
}

impl CacheArgs {
    /// The cache's lifetime.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.key_cache_ttl_secs)
    }
}

impl std::fmt::Debug for RemoteArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteArgs")
            .field("tenancy_url", &self.tenancy_url)
            .field("service_key", &"<set>")
            .finish_non_exhaustive()
    }
}

impl RemoteArgs {
    /// Tenancy at `tenancy_url`; the connection is made lazily, so a service
    /// may start before tenancy does.
    pub fn remote(&self) -> anyhow::Result<Remote> {
        let channel = traced(
            Channel::from_shared(self.tenancy_url.clone())?.connect_lazy(),
            &self.tenancy_url,
        );
        Ok(Remote::new(
            channel,
            self.service_key.clone(),
            self.cache.ttl(),
        ))
    }
}
