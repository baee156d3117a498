//! The gRPC face of tenancy: per call the role check, the request into
//! domain values (`wire`), one call into an area, the answer back to the
//! wire. No SQL and no decisions here.

use recovery_kit::wire::list_page;
use recovery_kit::{Role, Scope, authorize};
use recovery_proto::Paged as _;
use recovery_proto::tenancy::v1 as pb;
use recovery_proto::tenancy::v1::tenancy_service_server::TenancyService;
use tonic::{Request, Response, Status};

use crate::Tenancy;
use crate::api_keys::NewApiKey;
use crate::locations::{LocationPatch, NewLocation};
use crate::tenants::NewTenant;
use crate::wire::{self, all};

// Who may call what: tenants are the operators' business; managers keep
// their tenant's locations and keys; every key reads locations and itself.
/// `CreateTenant`, `GetTenant`, `ListTenants`.
const OPERATORS: &[Role] = &[Role::Operator];
/// `CreateLocation`, `UpdateLocation`, `CreateApiKey`, `ListApiKeys`,
/// `RevokeApiKey`.
const MANAGERS: &[Role] = &[Role::Operator, Role::Manager];
/// `GetLocation`, `ListLocations`, `GetCaller`.
const ANYONE: &[Role] = &Role::ALL;

#[tonic::async_trait]
impl TenancyService for Tenancy {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        authorize(&request, OPERATORS)?;
        let new = NewTenant::parse(request.get_ref())?;
        let tenant = self.create_tenant(&new).await?;
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(tenant),
        }))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        authorize(&request, OPERATORS)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let tenant = self.tenant(&id).await?;
        Ok(Response::new(pb::GetTenantResponse {
            tenant: Some(tenant.into()),
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let caller = authorize(&request, OPERATORS)?;
        let req = request.get_ref();
        let page = list_page(&self.db, caller, req.paging())?;
        let listed = self.tenants(&page).await?;
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: all(listed.items),
            next_page_token: listed.next_page_token,
        }))
    }

    async fn create_location(
        &self,
        request: Request<pb::CreateLocationRequest>,
    ) -> Result<Response<pb::CreateLocationResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?;
        let new = NewLocation::parse(request.get_ref(), caller)?;
        let location = self.create_location(caller, &new).await?;
        Ok(Response::new(pb::CreateLocationResponse {
            location: Some(location),
        }))
    }

    async fn get_location(
        &self,
        request: Request<pb::GetLocationRequest>,
    ) -> Result<Response<pb::GetLocationResponse>, Status> {
        let caller = authorize(&request, ANYONE)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let location = self.location(&caller.scope()?, &id).await?;
        Ok(Response::new(pb::GetLocationResponse {
            location: Some(location.into()),
        }))
    }

    async fn list_locations(
        &self,
        request: Request<pb::ListLocationsRequest>,
    ) -> Result<Response<pb::ListLocationsResponse>, Status> {
        let caller = authorize(&request, ANYONE)?;
        let req = request.get_ref();
        let tenant_id = caller.tenant_scope(&req.tenant_id, "tenant_id")?;
        let page = list_page(&self.db, caller, req.paging())?;
        let listed = self.locations(&Scope::tenant_of(tenant_id), &page).await?;
        Ok(Response::new(pb::ListLocationsResponse {
            locations: all(listed.items),
            next_page_token: listed.next_page_token,
        }))
    }

    async fn update_location(
        &self,
        request: Request<pb::UpdateLocationRequest>,
    ) -> Result<Response<pb::UpdateLocationResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?;
        let patch = LocationPatch::parse(request.get_ref())?;
        let location = self.update_location(caller, patch).await?;
        Ok(Response::new(pb::UpdateLocationResponse {
            location: Some(location.into()),
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?;
        let new = NewApiKey::parse(request.get_ref(), caller)?;
        let (api_key, secret) = self.create_api_key(caller, &new).await?;
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
        let page = list_page(&self.db, caller, req.paging())?;
        let listed = self.api_keys(caller, &req.tenant_id, &page).await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: all(listed.items),
            next_page_token: listed.next_page_token,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let caller = authorize(&request, MANAGERS)?;
        let id = wire::id(&request.get_ref().id, "id")?;
        let api_key = self.revoke_api_key(caller, &id).await?;
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(api_key.into()),
        }))
    }

    async fn get_caller(
        &self,
        request: Request<pb::GetCallerRequest>,
    ) -> Result<Response<pb::GetCallerResponse>, Status> {
        let caller = authorize(&request, ANYONE)?;
        Ok(Response::new(wire::caller(caller)))
    }
}
