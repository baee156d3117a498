//! API keys as an area: issuing (and the first operator key of a fresh
//! database), listing and revoking. How a key is minted, hashed and
//! resolved on every call (the cached authenticator) is in `keys.rs`.

use recovery_kit::events::Event;
use recovery_kit::idempotency::{self, Key};
use recovery_kit::page::{Listed, Page};
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error, Lock, Role, Violations};
use recovery_proto::tenancy::v1 as pb;
use sqlx::AnyConnection;

use crate::store::keys::{ApiKey, NewKey, Owner};
use crate::{IDEMPOTENCY_TABLE, Tenancy, keys, store};

/// The shortest bootstrap key accepted from the environment.
const MIN_BOOTSTRAP_KEY: usize = 32;

/// A key to issue, validated.
pub(crate) struct NewApiKey {
    /// `None` for an operator key.
    pub(crate) tenant_id: Option<String>,
    pub(crate) role: Role,
    pub(crate) display_name: String,
    pub(crate) key: Option<Key>,
}

impl NewApiKey {
    fn row(&self) -> NewKey<'_> {
        NewKey {
            tenant_id: self.tenant_id.as_deref(),
            role: self.role,
            display_name: &self.display_name,
        }
    }
}

/// What [`Tenancy::bootstrap`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Keys exist already: nothing to do.
    Existing,
    /// The configured key became the first operator key.
    Configured,
    /// A key was generated; it is shown here once and never stored.
    Generated(String),
}

impl Tenancy {
    /// The tenant a key of `role` that `caller` asks for belongs to:
    /// operator and service keys belong to none and only operators issue
    /// them; other keys belong to the caller's tenant (operators name one
    /// in `requested`). Field problems go to `v`.
    pub(crate) fn key_owner(
        caller: &Caller,
        role: Option<Role>,
        requested: &str,
        v: &mut Violations,
    ) -> Result<Option<String>, Error> {
        let Some(platform @ (Role::Operator | Role::Service)) = role else {
            return caller.tenant_scope(requested, "tenant_id").map(Some);
        };
        if caller.role != Role::Operator {
            return Err(Error::PermissionDenied(format!(
                "only operators create {platform} keys"
            )));
        }
        if !requested.is_empty() {
            v.add(
                "tenant_id",
                format!("{platform} keys belong to no tenant: leave it empty"),
            );
        }
        Ok(None)
    }

    /// Issues a key, once per request id; answers it with its secret. The
    /// secret is never stored: a replay answers the key without it.
    pub(crate) async fn create_api_key(
        &self,
        caller: &Caller,
        new: &NewApiKey,
    ) -> Result<(pb::ApiKey, String), Error> {
        if let Some(tenant_id) = &new.tenant_id {
            self.require_tenant(tenant_id, "tenant_id").await?;
        }
        let now = to_micros(self.clock.now());
        let secret = keys::mint()?;
        let input = (new, secret.as_str(), caller.key_id.as_str());
        let (api_key, fresh) = idempotency::create(
            &self.db,
            IDEMPOTENCY_TABLE,
            new.key.as_ref(),
            now,
            &input,
            |tx, &(new, secret, actor)| {
                Box::pin(async move {
                    let key = store::keys::insert(tx, new.row(), secret, actor, now).await?;
                    Ok(pb::ApiKey::from(key))
                })
            },
        )
        .await?;
        tracing::info!(api_key_id = %api_key.id, role = %new.role, "api key created");
        Ok((api_key, if fresh { secret } else { String::new() }))
    }

    /// One page of keys: the operators' own when an operator names no
    /// tenant, otherwise those of the tenant `caller` acts on.
    pub(crate) async fn api_keys(
        &self,
        caller: &Caller,
        requested: &str,
        page: &Page,
    ) -> Result<Listed<ApiKey>, Error> {
        let owner = if caller.role == Role::Operator && requested.is_empty() {
            Owner::Operators
        } else {
            Owner::Tenant(caller.tenant_scope(requested, "tenant_id")?)
        };
        let rows = store::keys::list(&mut *self.db.read().await?, &owner, page).await?;
        Ok(Listed::new(page, rows, |k| &k.id))
    }

    /// Revokes the key `id` (again: nothing changes) and forgets it in this
    /// process at once.
    pub(crate) async fn revoke_api_key(&self, caller: &Caller, id: &str) -> Result<ApiKey, Error> {
        let scope = caller.scope()?;
        let now = to_micros(self.clock.now());
        let mut tx = self.db.begin().await?;
        let stored = store::keys::get(&mut tx, &scope, id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| Error::not_found("api key", id))?;
        let mut api_key = stored.key;
        if api_key.revoke_time.is_none() {
            store::keys::revoke(&mut tx, id, now).await?;
            api_key.revoke_time = Some(now);
        }
        tx.commit().await?;
        self.keys.forget(&stored.key_hash);
        if let Some(bus) = self.revocations.get() {
            // Platform keys have no tenant: the event's tenant is then empty
            // (followers read every tenant's revocations).
            bus.publish(Event::new(
                crate::KEY_REVOKED_TOPIC,
                api_key.tenant_id.clone().unwrap_or_default(),
                id,
                stored.key_hash.clone().into_bytes(),
            ));
        }
        tracing::info!(api_key_id = %id, "api key revoked");
        Ok(api_key)
    }

    /// On a database without any key, makes the first operator key: the
    /// configured one (`RECOVERY_BOOTSTRAP_KEY`) or a generated one.
    pub async fn bootstrap(&self, configured: Option<&str>) -> anyhow::Result<Bootstrap> {
        if let Some(key) = configured
            && (key.len() < MIN_BOOTSTRAP_KEY
                || key.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            anyhow::bail!(
                "RECOVERY_BOOTSTRAP_KEY must be at least {MIN_BOOTSTRAP_KEY} characters without spaces"
            );
        }
        let mut tx = self.db.begin().await?;
        if store::keys::any(&mut tx).await? {
            return Ok(Bootstrap::Existing);
        }
        let new = NewApiKey {
            tenant_id: None,
            role: Role::Operator,
            display_name: "bootstrap operator key".into(),
            key: None,
        };
        let now = to_micros(self.clock.now());
        let (key, secret) = issue(&mut tx, &new, configured, "bootstrap", now).await?;
        tx.commit().await?;
        tracing::info!(api_key_id = %key.id, "bootstrap operator key created");
        Ok(match configured {
            Some(_) => Bootstrap::Configured,
            None => Bootstrap::Generated(secret),
        })
    }
}

impl Tenancy {
    /// Makes `configured` a service key (role `service`, no tenant) unless a
    /// key with that secret exists already: how a deployment gives its
    /// services their key without a person issuing one first. Answers
    /// whether it was created.
    pub async fn bootstrap_service_key(&self, configured: &str) -> anyhow::Result<bool> {
        if configured.len() < MIN_BOOTSTRAP_KEY
            || configured
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            anyhow::bail!(
                "RECOVERY_BOOTSTRAP_SERVICE_KEY must be at least {MIN_BOOTSTRAP_KEY} characters without spaces"
            );
        }
        let mut tx = self.db.begin().await?;
        if store::keys::with_hash(&mut tx, &keys::hash(configured)).await? {
            return Ok(false);
        }
        let new = NewApiKey {
            tenant_id: None,
            role: Role::Service,
            display_name: "bootstrap service key".into(),
            key: None,
        };
        let now = to_micros(self.clock.now());
        let (key, _) = issue(&mut tx, &new, Some(configured), "bootstrap", now).await?;
        tx.commit().await?;
        tracing::info!(api_key_id = %key.id, "bootstrap service key created");
        Ok(true)
    }
}

/// Inserts `new` with `secret` (or a minted one); answers the key and
/// its secret.
pub(crate) async fn issue(
    tx: &mut AnyConnection,
    new: &NewApiKey,
    secret: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<(ApiKey, String), Error> {
    let secret = match secret {
        Some(secret) => secret.to_owned(),
        None => keys::mint()?,
    };
    let key = store::keys::insert(tx, new.row(), &secret, actor, now).await?;
    Ok((key, secret))
}
