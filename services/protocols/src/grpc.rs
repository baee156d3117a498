//! The gRPC face of protocols: per RPC, the role check, the request
//! validated into domain values (`wire`), one call into an area, the answer.
//! Client data is the tenant's own: every call acts in the caller's tenant
//! (`tenant_scope`), and no role table names operators.

use recovery_kit::wire::list_page;
use recovery_kit::{Role, authorize};
use recovery_proto::Paged as _;
use recovery_proto::protocols::v1 as pb;
use recovery_proto::protocols::v1::protocol_service_server::ProtocolService;
use tonic::{Request, Response, Status};

use crate::wire::audit::{AuditQuery, audit_event};
use crate::wire::clients::{ClientPatch, ClientSearch, NewClient};
use crate::wire::history::{ActivityList, NewActivity, NewSession, TimelineQuery};
use crate::wire::plans::{NewAssignment, NewTemplate, RecommendationsQuery};
use crate::wire::rules::{
    RulePatch, SessionBatch, SessionProposal, evaluation_to_wire, rules_to_wire,
};
use crate::wire::screening::NewScreening;
use crate::wire::waivers::NewWaiver;
use crate::wire::{id, today};
use crate::{Protocols, tenant_scope};

/// Roles that work with clients: the studio's own keys. Operators run the
/// platform and do not read health data; devices never do.
const STUDIO: &[Role] = &[Role::Manager, Role::Staff, Role::FrontDesk];
/// Roles that erase clients, write templates and thresholds, and read the
/// audit trail.
const MANAGERS: &[Role] = &[Role::Manager];
/// The studio's roles and the other services acting for a tenant (booking
/// checks the client and the rules, and records completed sessions): a
/// service key without a tenant is refused by `tenant_scope`.
const STUDIO_AND_PEERS: &[Role] = &[Role::Manager, Role::Staff, Role::FrontDesk, Role::Service];

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ProtocolService for Protocols {
    async fn create_client(
        &self,
        request: Request<pb::CreateClientRequest>,
    ) -> Answer<pb::CreateClientResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let new = NewClient::parse(request.get_ref(), &scope, today(self.clock.now()))?;
        let client = self.register_client(caller, &scope, new).await?;
        Ok(Response::new(pb::CreateClientResponse {
            client: Some(client),
        }))
    }

    async fn get_client(
        &self,
        request: Request<pb::GetClientRequest>,
    ) -> Answer<pb::GetClientResponse> {
        let caller = authorize(&request, STUDIO_AND_PEERS)?;
        let scope = tenant_scope(caller)?;
        let id = id("id", &request.get_ref().id)?;
        let client = self.client(&scope, &id).await?;
        Ok(Response::new(pb::GetClientResponse {
            client: Some(client),
        }))
    }

    async fn list_clients(
        &self,
        request: Request<pb::ListClientsRequest>,
    ) -> Answer<pb::ListClientsResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let req = request.get_ref();
        let search = ClientSearch::parse(req, &self.db.pages(caller, &req.unpaged())?)?;
        let page = self.clients(&scope, search).await?;
        Ok(Response::new(pb::ListClientsResponse {
            clients: page.items,
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_client(
        &self,
        request: Request<pb::UpdateClientRequest>,
    ) -> Answer<pb::UpdateClientResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let patch = ClientPatch::parse(request.get_ref(), today(self.clock.now()))?;
        let client = self.change_client(caller, &scope, patch).await?;
        Ok(Response::new(pb::UpdateClientResponse {
            client: Some(client),
        }))
    }

    async fn delete_client(
        &self,
        request: Request<pb::DeleteClientRequest>,
    ) -> Answer<pb::DeleteClientResponse> {
        let caller = authorize(&request, MANAGERS)?;
        let scope = tenant_scope(caller)?;
        let id = id("id", &request.get_ref().id)?;
        let client = self.erase_client(caller, &scope, &id).await?;
        Ok(Response::new(pb::DeleteClientResponse {
            client: Some(client),
        }))
    }

    async fn record_screening(
        &self,
        request: Request<pb::RecordScreeningRequest>,
    ) -> Answer<pb::RecordScreeningResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let now = self.clock.now();
        let new = NewScreening::parse(request.get_ref(), &scope, now, &caller.key_id, today(now))?;
        let screening = self.screen_client(caller, &scope, new).await?;
        Ok(Response::new(pb::RecordScreeningResponse {
            screening: Some(screening),
        }))
    }

    async fn get_screening(
        &self,
        request: Request<pb::GetScreeningRequest>,
    ) -> Answer<pb::GetScreeningResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let client_id = id("client_id", &request.get_ref().client_id)?;
        let screening = self.screening(&scope, &client_id).await?;
        Ok(Response::new(pb::GetScreeningResponse {
            screening: Some(screening),
        }))
    }

    async fn sign_waiver(
        &self,
        request: Request<pb::SignWaiverRequest>,
    ) -> Answer<pb::SignWaiverResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let new = NewWaiver::parse(request.get_ref(), &scope, self.clock.now())?;
        let waiver = self.file_waiver(caller, &scope, new).await?;
        Ok(Response::new(pb::SignWaiverResponse {
            waiver: Some(waiver),
        }))
    }

    async fn get_waiver(
        &self,
        request: Request<pb::GetWaiverRequest>,
    ) -> Answer<pb::GetWaiverResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let client_id = id("client_id", &request.get_ref().client_id)?;
        let waiver = self.waiver(&scope, &client_id).await?;
        Ok(Response::new(pb::GetWaiverResponse {
            waiver: Some(waiver),
        }))
    }

    async fn log_activity(
        &self,
        request: Request<pb::LogActivityRequest>,
    ) -> Answer<pb::LogActivityResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let new = NewActivity::parse(request.get_ref(), &scope)?;
        let activity = self.add_activity(caller, &scope, new).await?;
        Ok(Response::new(pb::LogActivityResponse {
            activity: Some(activity),
        }))
    }

    async fn list_activities(
        &self,
        request: Request<pb::ListActivitiesRequest>,
    ) -> Answer<pb::ListActivitiesResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let req = request.get_ref();
        let list = ActivityList::parse(req, &self.db.pages(caller, &req.unpaged())?)?;
        let page = self.activities(&scope, list).await?;
        Ok(Response::new(pb::ListActivitiesResponse {
            activities: page.items,
            next_page_token: page.next_page_token,
        }))
    }

    async fn record_session(
        &self,
        request: Request<pb::RecordSessionRequest>,
    ) -> Answer<pb::RecordSessionResponse> {
        let caller = authorize(&request, STUDIO_AND_PEERS)?;
        let scope = tenant_scope(caller)?;
        let new = NewSession::parse(request.get_ref(), &scope, self.clock.now())?;
        let session = self.add_session(caller, &scope, new).await?;
        Ok(Response::new(pb::RecordSessionResponse {
            session: Some(session),
        }))
    }

    async fn list_timeline(
        &self,
        request: Request<pb::ListTimelineRequest>,
    ) -> Answer<pb::ListTimelineResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let req = request.get_ref();
        let query = TimelineQuery::parse(req, &self.db.pages(caller, &req.unpaged())?)?;
        let page = self.timeline(&scope, query).await?;
        Ok(Response::new(pb::ListTimelineResponse {
            entries: page.items,
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_summary(
        &self,
        request: Request<pb::GetSummaryRequest>,
    ) -> Answer<pb::GetSummaryResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let client_id = id("client_id", &request.get_ref().client_id)?;
        Ok(Response::new(self.summary(&scope, &client_id).await?))
    }

    async fn create_protocol_template(
        &self,
        request: Request<pb::CreateProtocolTemplateRequest>,
    ) -> Answer<pb::CreateProtocolTemplateResponse> {
        let caller = authorize(&request, MANAGERS)?;
        let scope = tenant_scope(caller)?;
        let new = NewTemplate::parse(request.get_ref(), &scope)?;
        let template = self.add_template(caller, &scope, new).await?;
        Ok(Response::new(pb::CreateProtocolTemplateResponse {
            template: Some(template),
        }))
    }

    async fn list_protocol_templates(
        &self,
        request: Request<pb::ListProtocolTemplatesRequest>,
    ) -> Answer<pb::ListProtocolTemplatesResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let req = request.get_ref();
        let page = list_page(&self.db, caller, req.paging())?;
        let page = self.templates(&scope, page).await?;
        Ok(Response::new(pb::ListProtocolTemplatesResponse {
            templates: page.items,
            next_page_token: page.next_page_token,
        }))
    }

    async fn assign_protocol(
        &self,
        request: Request<pb::AssignProtocolRequest>,
    ) -> Answer<pb::AssignProtocolResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let new = NewAssignment::parse(request.get_ref(), &scope)?;
        let assignment = self.assign(caller, &scope, new).await?;
        Ok(Response::new(pb::AssignProtocolResponse {
            assignment: Some(assignment),
        }))
    }

    async fn get_recommendations(
        &self,
        request: Request<pb::GetRecommendationsRequest>,
    ) -> Answer<pb::GetRecommendationsResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let query = RecommendationsQuery::parse(request.get_ref())?;
        let recommendations = self.recommendations(caller, &scope, query).await?;
        Ok(Response::new(pb::GetRecommendationsResponse {
            recommendations,
        }))
    }

    async fn evaluate_session(
        &self,
        request: Request<pb::EvaluateSessionRequest>,
    ) -> Answer<pb::EvaluateSessionResponse> {
        let caller = authorize(&request, STUDIO_AND_PEERS)?;
        let scope = tenant_scope(caller)?;
        let proposal = SessionProposal::parse(request.get_ref())?;
        let evaluation = self.evaluate(caller, &scope, proposal).await?;
        Ok(Response::new(pb::EvaluateSessionResponse {
            evaluation: Some(evaluation_to_wire(&evaluation)),
        }))
    }

    async fn evaluate_sessions(
        &self,
        request: Request<pb::EvaluateSessionsRequest>,
    ) -> Answer<pb::EvaluateSessionsResponse> {
        let caller = authorize(&request, STUDIO_AND_PEERS)?;
        let scope = tenant_scope(caller)?;
        let batch = SessionBatch::parse(request.get_ref())?;
        let batched = self.evaluate_batch(caller, &scope, batch).await?;
        Ok(Response::new(batched.to_wire()))
    }

    async fn get_rule_config(
        &self,
        request: Request<pb::GetRuleConfigRequest>,
    ) -> Answer<pb::GetRuleConfigResponse> {
        let caller = authorize(&request, STUDIO)?;
        let scope = tenant_scope(caller)?;
        let stored = self.rule_config(&scope).await?;
        Ok(Response::new(pb::GetRuleConfigResponse {
            is_default: stored.is_none(),
            rule_config: Some(stored.map_or_else(
                || rules_to_wire(&recovery_rules::Config::default()),
                |s| s.to_wire(),
            )),
        }))
    }

    async fn update_rule_config(
        &self,
        request: Request<pb::UpdateRuleConfigRequest>,
    ) -> Answer<pb::UpdateRuleConfigResponse> {
        let caller = authorize(&request, MANAGERS)?;
        let scope = tenant_scope(caller)?;
        let patch = RulePatch::parse(request.get_ref())?;
        let saved = self.change_rules(caller, &scope, patch).await?;
        Ok(Response::new(pb::UpdateRuleConfigResponse {
            rule_config: Some(saved.to_wire()),
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Answer<pb::ListAuditEventsResponse> {
        let caller = authorize(&request, MANAGERS)?;
        let scope = tenant_scope(caller)?;
        let req = request.get_ref();
        let query = AuditQuery::parse(req, &self.db.pages(caller, &req.unpaged())?)?;
        let page = self.audit_trail(&scope, query).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: page.items.into_iter().map(audit_event).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}
