//! The gRPC face of tenancy: validate, authorise, call the store, answer.

use recovery_kit::idempotency::{Key, without_request_id};
use recovery_kit::ids::parse_id;
use recovery_kit::page::Page;
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error, Role, Violations};
use recovery_proto::tenancy::v1 as pb;
use recovery_proto::tenancy::v1::tenancy_service_server::TenancyService;
use sqlx::Row as _;
use tonic::{Request, Response, Status};

use crate::model::{
    LocationPatch, Schedule, display_name, role_from_wire, role_to_wire, time_zone,
};
use crate::store::{self, NewLocation};
use crate::{IDEMPOTENCY_TABLE, Tenancy};

const OPERATOR: &[Role] = &[Role::Operator];
const MANAGERS: &[Role] = &[Role::Operator, Role::Manager];
const ANYONE: &[Role] = &Role::ALL;

/// The caller, after checking its role.
fn authorize<'r, T>(request: &'r Request<T>, roles: &[Role]) -> Result<&'r Caller, Error> {
    let caller = Caller::of(request)?;
    caller.require(roles)?;
    Ok(caller)
}

/// Checks a tenant id named by an operator and that it exists.
async fn existing_tenant(tenancy: &Tenancy, id: &str, field: &str) -> Result<(), Error> {
    parse_id(id).map_err(|e| Error::invalid(field, e))?;
    if store::tenant_exists(tenancy.db.reader(), id).await? {
        Ok(())
    } else {
        Err(Error::not_found("tenant", id))
    }
}

#[tonic::async_trait]
impl TenancyService for Tenancy {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        authorize(&request, OPERATOR)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let name = v.check(
            "tenant.display_name",
            display_name(req.tenant.as_ref().map_or("", |t| t.display_name.as_str())),
        );
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new("CreateTenant", "", &req.request_id, &fingerprint, &mut v);
        let name = v.finish_with(name)?;
        let now = self.clock.now();
        let (tenant, _) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| { store::insert_tenant(&mut tx, &name, now).await? }
        );
        tracing::info!(tenant_id = %tenant.id, "tenant created");
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(tenant),
        }))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        authorize(&request, OPERATOR)?;
        let id = parse_id(&request.get_ref().id).map_err(|e| Error::invalid("id", e))?;
        let row = sqlx::query(
            "SELECT id, display_name, create_time, update_time FROM tenants WHERE id = $1",
        )
        .bind(&id)
        .fetch_optional(self.db.reader())
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::not_found("tenant", &id))?;
        Ok(Response::new(pb::GetTenantResponse {
            tenant: Some(store::tenant(&row)?),
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        authorize(&request, OPERATOR)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, &mut v);
        v.finish()?;
        let rows = sqlx::query(
            "SELECT id, display_name, create_time, update_time FROM tenants \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(page.cursor())
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await
        .map_err(Error::from)?;
        let mut tenants = rows
            .iter()
            .map(store::tenant)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page.finish(&mut tenants, |t| &t.id);
        Ok(Response::new(pb::ListTenantsResponse {
            tenants,
            next_page_token,
        }))
    }

    async fn create_location(
        &self,
        request: Request<pb::CreateLocationRequest>,
    ) -> Result<Response<pb::CreateLocationResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let req = request.into_inner();
        let tenant_id = caller.tenant_scope(&req.tenant_id, "tenant_id")?;
        let mut v = Violations::new();
        let location = req.location.clone().unwrap_or_default();
        let name = v.check(
            "location.display_name",
            display_name(&location.display_name),
        );
        let zone = v.check("location.time_zone", time_zone(&location.time_zone));
        let schedule = Schedule::from_wire(
            &location.weekly_hours,
            &location.closure_dates,
            "location.",
            &mut v,
        );
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new(
            "CreateLocation",
            &tenant_id,
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let (display_name, time_zone) = v.finish_with(name.zip(zone))?;
        existing_tenant(self, &tenant_id, "tenant_id").await?;
        let new = NewLocation {
            display_name,
            time_zone,
            schedule,
        };
        let now = self.clock.now();
        let (location, _) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| { store::insert_location(&mut tx, &tenant_id, &new, &caller.key_id, now).await? }
        );
        tracing::info!(location_id = %location.id, "location created");
        Ok(Response::new(pb::CreateLocationResponse {
            location: Some(location),
        }))
    }

    async fn get_location(
        &self,
        request: Request<pb::GetLocationRequest>,
    ) -> Result<Response<pb::GetLocationResponse>, Status> {
        let caller = authorize(&request, ANYONE)?;
        let id = parse_id(&request.get_ref().id).map_err(|e| Error::invalid("id", e))?;
        let row = sqlx::query(&format!(
            "SELECT {} FROM locations WHERE id = $1 AND ($2 = '' OR tenant_id = $2)",
            store::LOCATION_COLUMNS
        ))
        .bind(&id)
        .bind(caller.scope_text())
        .fetch_optional(self.db.reader())
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::not_found("location", &id))?;
        Ok(Response::new(pb::GetLocationResponse {
            location: Some(store::location(&row)?),
        }))
    }

    async fn list_locations(
        &self,
        request: Request<pb::ListLocationsRequest>,
    ) -> Result<Response<pb::ListLocationsResponse>, Status> {
        let caller = authorize(&request, ANYONE)?;
        let req = request.get_ref();
        let tenant_id = caller.tenant_scope(&req.tenant_id, "tenant_id")?;
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, &mut v);
        v.finish()?;
        let rows = sqlx::query(&format!(
            "SELECT {} FROM locations WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            store::LOCATION_COLUMNS
        ))
        .bind(&tenant_id)
        .bind(page.cursor())
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await
        .map_err(Error::from)?;
        let mut locations = rows
            .iter()
            .map(store::location)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page.finish(&mut locations, |l| &l.id);
        Ok(Response::new(pb::ListLocationsResponse {
            locations,
            next_page_token,
        }))
    }

    async fn update_location(
        &self,
        request: Request<pb::UpdateLocationRequest>,
    ) -> Result<Response<pb::UpdateLocationResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let req = request.into_inner();
        let patch = req.location.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.check("location.id", parse_id(&patch.id));
        let change = LocationPatch::parse(&patch, req.update_mask.map(|m| m.paths), &mut v);
        let id = v.finish_with(id)?;
        let now = to_micros(self.clock.now());
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        let row = sqlx::query(&format!(
            "SELECT {} FROM locations WHERE id = $1 AND ($2 = '' OR tenant_id = $2){}",
            store::LOCATION_COLUMNS,
            self.db.lock_rows()
        ))
        .bind(&id)
        .bind(caller.scope_text())
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::not_found("location", &id))?;
        let current = store::location(&row)?;
        let stored = Schedule::from_db(
            &row.try_get::<String, _>("weekly_hours")
                .map_err(Error::from)?,
            &row.try_get::<String, _>("closure_dates")
                .map_err(Error::from)?,
        )
        .map_err(Error::Internal)?;
        let schedule = Schedule {
            hours: change.hours.unwrap_or(stored.hours),
            closures: change.closures.unwrap_or(stored.closures),
        };
        let display_name = change.display_name.unwrap_or(current.display_name);
        let time_zone = change.time_zone.unwrap_or(current.time_zone);
        sqlx::query(
            "UPDATE locations SET display_name = $1, time_zone = $2, weekly_hours = $3, \
             closure_dates = $4, update_time = $5, updated_by = $6 WHERE id = $7",
        )
        .bind(&display_name)
        .bind(&time_zone)
        .bind(schedule.hours_to_db())
        .bind(schedule.closures_to_db())
        .bind(now)
        .bind(&caller.key_id)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        tx.commit().await.map_err(Error::from)?;
        tracing::info!(location_id = %id, fields = ?change.paths, "location updated");
        Ok(Response::new(pb::UpdateLocationResponse {
            location: Some(pb::Location {
                display_name,
                time_zone,
                weekly_hours: schedule.hours_to_wire(),
                closure_dates: schedule.closures_to_wire(),
                update_time: crate::model::ts(now),
                ..current
            }),
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let role = v.check("role", role_from_wire(req.role));
        let name = v.check("display_name", display_name(&req.display_name));
        let tenant_id = match role {
            Some(Role::Operator) => {
                if caller.role != Role::Operator {
                    return Err(Error::PermissionDenied(
                        "only operators create operator keys".into(),
                    )
                    .into());
                }
                if !req.tenant_id.is_empty() {
                    v.add(
                        "tenant_id",
                        "operator keys belong to no tenant: leave it empty",
                    );
                }
                None
            }
            _ => Some(caller.tenant_scope(&req.tenant_id, "tenant_id")?),
        };
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new(
            "CreateApiKey",
            tenant_id.as_deref().unwrap_or(""),
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let (role, name) = v.finish_with(role.zip(name))?;
        if let Some(tenant_id) = &tenant_id {
            existing_tenant(self, tenant_id, "tenant_id").await?;
        }
        let now = self.clock.now();
        let mut secret = String::new();
        // The secret is never stored: a replay answers without it.
        let (api_key, _) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| {
                let (api_key, minted) = store::insert_key(
                    &mut tx,
                    tenant_id.as_deref(),
                    role,
                    &name,
                    None,
                    &caller.key_id,
                    now,
                )
                .await?;
                secret = minted;
                api_key
            }
        );
        tracing::info!(api_key_id = %api_key.id, role = %role, "api key created");
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(api_key),
            secret,
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, &mut v);
        v.finish()?;
        let operator_keys = caller.role == Role::Operator && req.tenant_id.is_empty();
        let tenant_id = if operator_keys {
            String::new()
        } else {
            caller.tenant_scope(&req.tenant_id, "tenant_id")?
        };
        let filter = if operator_keys {
            "tenant_id IS NULL AND $1 = ''"
        } else {
            "tenant_id = $1"
        };
        let rows = sqlx::query(&format!(
            "SELECT {} FROM api_keys WHERE {filter} AND id > $2 ORDER BY id LIMIT $3",
            store::KEY_COLUMNS
        ))
        .bind(&tenant_id)
        .bind(page.cursor())
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await
        .map_err(Error::from)?;
        let mut api_keys = rows
            .iter()
            .map(store::api_key)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page.finish(&mut api_keys, |k| &k.id);
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys,
            next_page_token,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?.clone();
        let id = parse_id(&request.get_ref().id).map_err(|e| Error::invalid("id", e))?;
        let now = to_micros(self.clock.now());
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        let row = sqlx::query(&format!(
            "SELECT {}, key_hash FROM api_keys WHERE id = $1 AND ($2 = '' OR tenant_id = $2){}",
            store::KEY_COLUMNS,
            self.db.lock_rows()
        ))
        .bind(&id)
        .bind(caller.scope_text())
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::not_found("api key", &id))?;
        let mut api_key = store::api_key(&row)?;
        let key_hash: String = row.try_get("key_hash").map_err(Error::from)?;
        if api_key.revoke_time.is_none() {
            sqlx::query("UPDATE api_keys SET revoke_time = $1 WHERE id = $2")
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(Error::from)?;
            api_key.revoke_time = crate::model::ts(now);
        }
        tx.commit().await.map_err(Error::from)?;
        self.keys.forget(&key_hash);
        tracing::info!(api_key_id = %id, "api key revoked");
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(api_key),
        }))
    }

    async fn get_caller(
        &self,
        request: Request<pb::GetCallerRequest>,
    ) -> Result<Response<pb::GetCallerResponse>, Status> {
        let caller = authorize(&request, ANYONE)?;
        Ok(Response::new(pb::GetCallerResponse {
            tenant_id: caller.tenant_id.clone().unwrap_or_default(),
            role: role_to_wire(caller.role) as i32,
            api_key_id: caller.key_id.clone(),
        }))
    }
}
