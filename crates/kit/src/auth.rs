//! API-key authentication as a tower layer, and the caller it yields.
//!
//! `authorization: Bearer <key>` is resolved by an [`Authenticator`] into a
//! [`Caller`] (tenant and role) that handlers read from the request
//! extensions. Only the services wrapped in [`RequireKey`] demand a key:
//! health and reflection stay open.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::server::NamedService;

use crate::Error;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Runs the platform; acts on every tenant.
    Operator,
    /// Runs a studio business.
    Manager,
    /// Runs sessions on the floor.
    Staff,
    /// Books and checks clients in.
    FrontDesk,
    /// A device hub.
    Device,
    /// Another service of this backend, acting for the tenant it names in
    /// [`TENANT_HEADER`]; platform-wide without one.
    Service,
}

/// The metadata key in which a [`Role::Service`] caller names the tenant it
/// acts for.
pub const TENANT_HEADER: &str = "x-recovery-tenant";

impl Role {
    /// Every role, for tables and tests.
    pub const ALL: [Role; 6] = [
        Role::Operator,
        Role::Manager,
        Role::Staff,
        Role::FrontDesk,
        Role::Device,
        Role::Service,
    ];

    /// The stable lowercase name stored in databases.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Manager => "manager",
            Role::Staff => "staff",
            Role::FrontDesk => "front_desk",
            Role::Device => "device",
            Role::Service => "service",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling: resolved from the API key, never from the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's tenant; `None` for operators, who act on every tenant.
    pub tenant_id: Option<String>,
    /// The key's role.
    pub role: Role,
    /// The key's id, for audit trails.
    pub key_id: String,
}

impl Caller {
    /// The caller of a request that passed [`RequireKey`].
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Caller, Error> {
        request
            .extensions()
            .get::<Caller>()
            .ok_or(Error::Unauthenticated("missing credentials"))
    }

    /// Refuses with `PERMISSION_DENIED` unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), Error> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "role {} may not do this; allowed: {}",
                self.role,
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// Which tenants' rows the caller's queries see: every tenant for
    /// operators, the key's own tenant for everyone else. A tenant key
    /// without a tenant (never issued) sees nothing: `PERMISSION_DENIED`.
    pub fn scope(&self) -> Result<Scope, Error> {
        match (self.role, self.tenant_id.as_deref()) {
            (Role::Operator, _) | (Role::Service, None) => Ok(Scope::All),
            (_, Some(tenant)) => Ok(Scope::Tenant(tenant.to_owned())),
            (_, None) => Err(Error::PermissionDenied(
                "this key belongs to no tenant".to_owned(),
            )),
        }
    }

    /// Whether the caller may see objects of `tenant_id`.
    pub fn sees(&self, tenant_id: &str) -> bool {
        match (self.role, self.tenant_id.as_deref()) {
            (Role::Operator, _) | (Role::Service, None) => true,
            (_, own) => own == Some(tenant_id),
        }
    }

    /// The tenant a request acts on. Tenant-scoped callers act on their own
    /// tenant (an empty `requested` means it; naming another answers
    /// NOT_FOUND); operators must name one (`field` says where), a
    /// well-formed id (anything else never reaches a query).
    pub fn tenant_scope(&self, requested: &str, field: &str) -> Result<String, Error> {
        match (&self.tenant_id, requested) {
            (Some(own), "") => Ok(own.clone()),
            (Some(own), other) if own == other => Ok(own.clone()),
            (Some(_), other) => Err(Error::not_found("tenant", other)),
            (None, "") => Err(Error::invalid(field, "operators must name the tenant")),
            (None, other) => crate::wire::id(other, field),
        }
    }
}

/// Which tenants' rows a query may see. Store functions take it, write
/// [`Scope::filter`] into their SQL and bind [`Scope::tenant`] as its `$n`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every tenant: operators, and the service itself (sweeps, replays).
    All,
    /// One tenant's rows only.
    Tenant(String),
}

impl Scope {
    /// One tenant.
    pub fn tenant_of(tenant_id: impl Into<String>) -> Self {
        Self::Tenant(tenant_id.into())
    }

    /// The tenant filter to bind: `None` for every tenant.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::All => None,
            Self::Tenant(tenant) => Some(tenant),
        }
    }

    /// The condition keeping a statement to this scope, with the tenant
    /// bound as `$n`: `column = $n` for one tenant, so that an index led by
    /// the tenant serves the statement, and `$n IS NULL` (true: the bound
    /// [`Scope::tenant`] is `None`) for every tenant. A single
    /// `($n IS NULL OR column = $n)` for both would keep SQLite from every
    /// such index, and PostgreSQL from a generic plan.
    pub fn filter(&self, column: &str, n: u8) -> String {
        match self {
            Self::All => format!("${n} IS NULL"),
            Self::Tenant(_) => format!("{column} = ${n}"),
        }
    }

    /// Whether rows of `tenant_id` are in scope.
    pub fn sees(&self, tenant_id: &str) -> bool {
        self.tenant().is_none_or(|own| own == tenant_id)
    }
}

/// The caller of `request`, refused with `PERMISSION_DENIED` unless its role
/// is one of `roles`: the first line of every handler.
pub fn authorize<'r, T>(
    request: &'r tonic::Request<T>,
    roles: &[Role],
) -> Result<&'r Caller, Error> {
    let caller = Caller::of(request)?;
    caller.require(roles)?;
    Ok(caller)
}

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Resolves API keys. `Ok(None)` is an unknown or revoked key.
pub trait Authenticator: Send + Sync + 'static {
    /// Resolves `key` (the part after `Bearer `).
    fn authenticate<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Caller>, Error>>;
}

/// A fixed table of keys: for tests and for services run without tenancy.
#[derive(Debug, Default, Clone)]
pub struct StaticKeys(HashMap<String, Caller>);

impl StaticKeys {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, caller: Caller) -> Self {
        self.0.insert(key.into(), caller);
        self
    }
}

impl Authenticator for StaticKeys {
    fn authenticate<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Caller>, Error>> {
        Box::pin(async move { Ok(self.0.get(key).cloned()) })
    }
}

/// Wraps one gRPC service so that every call needs a valid key.
#[derive(Clone)]
pub struct RequireKey<S> {
    inner: S,
    auth: Arc<dyn Authenticator>,
}

impl<S> RequireKey<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, auth: Arc<dyn Authenticator>) -> Self {
        Self { inner, auth }
    }
}

impl<S: NamedService> NamedService for RequireKey<S> {
    const NAME: &'static str = S::NAME;
}

/// The key in `authorization: Bearer <key>`, if well formed.
fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

impl<S, B> tower::Service<http::Request<B>> for RequireKey<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone is the one that is ready; keep it for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = Arc::clone(&self.auth);
        Box::pin(async move {
            let Some(key) = bearer(request.headers()) else {
                return Ok(reject(Error::Unauthenticated(
                    "missing credentials: send `authorization: Bearer <api key>`",
                )));
            };
            match auth.authenticate(key).await {
                Ok(Some(mut caller)) => {
                    if caller.role == Role::Service {
                        match acting_for(request.headers()) {
                            Ok(tenant) => caller.tenant_id = tenant,
                            Err(error) => return Ok(reject(error)),
                        }
                    }
                    let span = tracing::Span::current();
                    if let Some(tenant) = caller.tenant_id.as_deref() {
                        span.record("recovery.tenant.id", tenant);
                    }
                    span.record("recovery.caller.role", caller.role.as_str());
                    // PostgreSQL's row-level security sees the caller's
                    // rows only (crate::db::confined).
                    let scope = caller.scope().ok();
                    request.extensions_mut().insert(caller);
                    crate::db::confined(scope, inner.call(request)).await
                }
                Ok(None) => Ok(reject(Error::Unauthenticated("unknown or revoked api key"))),
                Err(error) => Ok(reject(error)),
            }
        })
    }
}

/// The tenant a service caller acts for, from [`TENANT_HEADER`].
fn acting_for(headers: &http::HeaderMap) -> Result<Option<String>, Error> {
    let Some(value) = headers.get(TENANT_HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(tenant) if !tenant.is_empty() && tenant.len() <= 64 => Ok(Some(tenant.to_owned())),
        _ => Err(Error::invalid(TENANT_HEADER, "a tenant id")),
    }
}

fn reject(error: Error) -> http::Response<tonic::body::Body> {
    tonic::Status::from(error).into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(tenant: Option<&str>, role: Role) -> Caller {
        Caller {
            tenant_id: tenant.map(str::to_owned),
            role,
            key_id: "k".into(),
        }
    }

    #[test]
    fn bearer_parsing() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert("authorization", "bearer   abc ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn tenant_scope_keeps_callers_in_their_tenant() {
        let manager = caller(Some("t1"), Role::Manager);
        assert_eq!(manager.tenant_scope("", "tenant_id").unwrap(), "t1");
        assert_eq!(manager.tenant_scope("t1", "tenant_id").unwrap(), "t1");
        assert!(matches!(
            manager.tenant_scope("t2", "tenant_id"),
            Err(Error::NotFound { .. })
        ));
        let operator = caller(None, Role::Operator);
        let t2 = crate::ids::new_id();
        assert_eq!(operator.tenant_scope(&t2, "tenant_id").unwrap(), t2);
        // An operator's tenant is an id: a NUL byte once reached
        // PostgreSQL's driver and came back INTERNAL.
        for bad in ["", "t2", "\u{0}", &"é".repeat(10_000)] {
            assert!(
                matches!(
                    operator.tenant_scope(bad, "tenant_id"),
                    Err(Error::InvalidArgument(_))
                ),
                "{:?} accepted",
                bad.chars().take(8).collect::<String>()
            );
        }
    }

    #[test]
    fn scope_is_every_tenant_only_for_operators() {
        assert_eq!(caller(None, Role::Operator).scope().unwrap(), Scope::All);
        assert_eq!(
            caller(Some("t1"), Role::Staff).scope().unwrap(),
            Scope::tenant_of("t1")
        );
        assert!(matches!(
            caller(None, Role::Staff).scope(),
            Err(Error::PermissionDenied(_))
        ));
        assert!(Scope::All.sees("t2"));
        assert!(!Scope::tenant_of("t1").sees("t2"));
    }

    #[test]
    fn a_service_acts_for_the_tenant_it_names() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(acting_for(&headers).unwrap(), None);
        headers.insert(TENANT_HEADER, "t1".parse().unwrap());
        assert_eq!(acting_for(&headers).unwrap().as_deref(), Some("t1"));
        headers.insert(TENANT_HEADER, "".parse().unwrap());
        assert!(acting_for(&headers).is_err());
        let platform = caller(None, Role::Service);
        assert_eq!(platform.scope().unwrap(), Scope::All);
        assert!(platform.sees("t2"));
        let acting = caller(Some("t1"), Role::Service);
        assert_eq!(acting.scope().unwrap(), Scope::tenant_of("t1"));
        assert!(!acting.sees("t2"));
    }

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
