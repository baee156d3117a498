//! Protocols as the other services' peer, in process (`recoveryd`): the
//! client's standing and the rules for a booking (`recovery_peers::Clients`),
//! the history for a completion (`recovery_peers::History`), and erasures
//! handed to booking (`recovery_peers::Erasure`) through the outbox.
//!
//! Each call acts for one tenant as the service (role `service`) and goes
//! through the same wire checks and areas as the gRPC calls, so a booking
//! sees exactly what `GetClient`, `EvaluateSession` and `RecordSession`
//! answer.

use std::sync::Arc;

use prost::Message as _;
use recovery_kit::auth::BoxFuture;
use recovery_kit::events::Event;
use recovery_kit::outbox::Consumer;
use recovery_kit::wire::duration_to_wire;
use recovery_kit::{Caller, Error, Role, Scope, time};
use recovery_peers::{
    Batch, Clients, CompletedSession, Erasure, Finding, Follows, History, Judged, Proposal,
    Standing, Verdict,
};
use recovery_proto::protocols::v1 as pb;

use crate::wire::history::NewSession;
use crate::wire::id;
use crate::wire::rules::{SessionBatch, SessionProposal};
use crate::{CLIENT_ERASED, Protocols};

/// The key id in-process peer calls are audited under.
pub const IN_PROCESS_KEY_ID: &str = "recoveryd";

/// The service acting for `tenant_id`.
fn acting(tenant_id: &str) -> Caller {
    Caller {
        tenant_id: Some(tenant_id.to_owned()),
        role: Role::Service,
        key_id: IN_PROCESS_KEY_ID.to_owned(),
    }
}

/// A tenant's scope; a peer call always names one.
fn tenant(tenant_id: &str) -> Result<Scope, Error> {
    if tenant_id.is_empty() {
        return Err(Error::PermissionDenied(
            "client data is the tenant's own: a service must act for a tenant".to_owned(),
        ));
    }
    Ok(Scope::Tenant(tenant_id.to_owned()))
}

impl Clients for Protocols {
    fn standing<'a>(
        &'a self,
        tenant_id: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Standing, Error>> {
        Box::pin(async move {
            let scope = tenant(tenant_id)?;
            let client_id = id("client_id", client_id)?;
            let client = self.client(&scope, &client_id).await?;
            Ok(if client.erase_time.is_some() {
                Standing::Erased
            } else {
                Standing::Active
            })
        })
    }

    fn evaluate<'a>(
        &'a self,
        tenant_id: &'a str,
        proposal: &'a Proposal,
    ) -> BoxFuture<'a, Result<Verdict, Error>> {
        Box::pin(async move {
            let scope = tenant(tenant_id)?;
            let caller = acting(tenant_id);
            let request = pb::EvaluateSessionRequest {
                client_id: proposal.client_id.clone(),
                modality: proposal.modality.wire(),
                start_time: Some(time::to_proto(proposal.start)),
                duration: Some(duration_to_wire(proposal.duration)),
                location_id: proposal.location_id.clone(),
                booked: proposal.booked.iter().map(booked_wire).collect(),
            };
            let proposal = SessionProposal::parse(&request)?;
            let evaluation = self.evaluate(&caller, &scope, proposal).await?;
            Ok(verdict(&evaluation))
        })
    }

    fn evaluate_many<'a>(
        &'a self,
        tenant_id: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Judged, Error>> {
        Box::pin(self.judge(tenant_id, batch))
    }
}

impl Protocols {
    /// `EvaluateSessions` for a peer, through the same wire checks.
    async fn judge(&self, tenant_id: &str, batch: &Batch) -> Result<Judged, Error> {
        let scope = tenant(tenant_id)?;
        let caller = acting(tenant_id);
        let (activity_id, last_activity) = match &batch.follows {
            Follows::Nothing => (String::new(), false),
            Follows::Activity(id) => (id.clone(), false),
            Follows::LastActivity => (String::new(), true),
        };
        let request = pb::EvaluateSessionsRequest {
            client_id: batch.client_id.clone(),
            sessions: batch
                .sessions
                .iter()
                .map(|s| pb::ProposedSession {
                    modality: s.modality.wire(),
                    start_time: Some(time::to_proto(s.start)),
                    duration: Some(duration_to_wire(s.duration)),
                    location_id: s.location_id.clone(),
                })
                .collect(),
            booked: batch.booked.iter().map(booked_wire).collect(),
            activity_id,
            last_activity,
        };
        let parsed = SessionBatch::parse(&request)?;
        let batched = self.evaluate_batch(&caller, &scope, parsed).await?;
        Ok(Judged {
            verdicts: batched.evaluations.iter().map(verdict).collect(),
            activity: batched.activity.map(|a| (a.start, a.end)),
            cryo_window: batched.cryo_window,
        })
    }
}

fn booked_wire(b: &recovery_peers::Booked) -> pb::BookedSession {
    pb::BookedSession {
        modality: b.modality.wire(),
        start_time: Some(time::to_proto(b.start)),
        duration: Some(duration_to_wire(b.duration)),
    }
}

/// The rules' evaluation as a peer's verdict.
fn verdict(evaluation: &recovery_rules::Evaluation) -> Verdict {
    let findings = |list: &[recovery_rules::Finding]| {
        list.iter()
            .map(|f| Finding {
                reason: f.reason.as_str().to_owned(),
                message: f.message.clone(),
            })
            .collect()
    };
    Verdict {
        refusals: findings(&evaluation.refusals),
        warnings: findings(&evaluation.warnings),
        recommended_duration: evaluation.recommended_duration,
    }
}

impl History for Protocols {
    fn record<'a>(
        &'a self,
        tenant_id: &'a str,
        session: &'a CompletedSession,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let scope = tenant(tenant_id)?;
            let caller = acting(tenant_id);
            if session.booking_id.is_empty() {
                return Err(Error::invalid(
                    "session.booking_id",
                    "required: the history records each booking once",
                ));
            }
            let request = pb::RecordSessionRequest {
                session: Some(pb::RecoverySession {
                    client_id: session.client_id.clone(),
                    modality: session.modality.wire(),
                    start_time: Some(time::to_proto(session.start)),
                    duration: Some(duration_to_wire(session.duration)),
                    device_id: session.device_id.clone().unwrap_or_default(),
                    device_settings: session.device_settings.clone().into_iter().collect(),
                    soreness_before: session.soreness_before,
                    soreness_after: session.soreness_after,
                    notes: session.notes.clone(),
                    location_id: session.location_id.clone(),
                    booking_id: session.booking_id.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            };
            let new = NewSession::parse(&request, &scope, self.clock.now())?;
            self.add_session(&caller, &scope, new).await?;
            Ok(())
        })
    }
}

/// Hands erasures to booking: each `protocols.client_erased` event becomes
/// `Erasure::forget_client` (idempotent, so a redelivery is harmless).
pub(crate) struct ForgetErased(pub(crate) Arc<dyn Erasure>);

impl Consumer for ForgetErased {
    fn name(&self) -> &'static str {
        "booking.forget_client"
    }

    fn wants(&self, topic: &str) -> bool {
        topic == CLIENT_ERASED
    }

    fn consume<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let client = pb::Client::decode(event.payload.as_slice()).map_err(|e| {
                Error::Internal(anyhow::anyhow!(
                    "erasure event {} is unreadable: {e}",
                    event.id
                ))
            })?;
            let client_id = if client.id.is_empty() {
                event.scope.as_str()
            } else {
                client.id.as_str()
            };
            self.0.forget_client(&event.tenant_id, client_id).await
        })
    }
}
