//! Fixtures and helpers every area's tests share: a platform with tenancy
//! and protocols mounted on one test server, studios with keyed clients,
//! and the requests the stories repeat.

use std::sync::Arc;

use jiff::Timestamp;
use recovery_kit::Role;
use recovery_kit::events::Bus;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::{ManualClock, to_proto};
use recovery_proto::protocols::v1 as pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_protocols::Protocols;
use recovery_tenancy::testing::{self as tenancy, Platform};
use sqlx::Row as _;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub(crate) use recovery_kit::testing::answers::{fields, reason};

pub(crate) type Client = ProtocolServiceClient<InterceptedService<Channel, Bearer>>;

pub(crate) const NOW: &str = "2026-11-28T10:00:00Z";

pub(crate) struct Env {
    pub(crate) db: TestDb,
    pub(crate) server: TestServer,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) operator: String,
    pub(crate) protocols: Arc<Protocols>,
    pub(crate) bus: Bus,
    platform: Platform,
}

/// A studio: its manager and front-desk keys and one location in Berlin.
pub(crate) struct Studio {
    pub(crate) manager_key: String,
    pub(crate) manager: Client,
    pub(crate) front_desk: Client,
    pub(crate) location_id: String,
    pub(crate) tenant_id: String,
}

pub(crate) async fn env(db: TestDb) -> Env {
    let clock = Arc::new(ManualClock::new(NOW.parse().unwrap()));
    let platform = Platform::start(&db.db, clock.clone()).await;
    let bus = Bus::default();
    let protocols = Protocols::start(
        db.db.clone(),
        clock.clone(),
        bus.clone(),
        platform.directory(),
    )
    .await
    .unwrap();
    let mut services = platform.services();
    protocols.mount(&mut services);
    let server = TestServer::start(services).await;
    Env {
        db,
        server,
        clock,
        operator: platform.operator.clone(),
        protocols,
        bus,
        platform,
    }
}

impl Env {
    pub(crate) async fn client(&self, key: &str) -> Client {
        ProtocolServiceClient::with_interceptor(self.server.channel().await, Bearer::new(key))
    }

    /// A second protocols service on the same database, behind its own
    /// server (its own kept pages, its own bus), as another replica.
    pub(crate) async fn replica(&self) -> TestServer {
        let protocols = Protocols::start(
            self.db.db.clone(),
            self.clock.clone(),
            Bus::default(),
            self.platform.directory(),
        )
        .await
        .unwrap();
        let mut services = self.platform.services();
        protocols.mount(&mut services);
        TestServer::start(services).await
    }

    pub(crate) async fn studio(&self, name: &str) -> Studio {
        let made = tenancy::Studio::create(
            self.server.channel().await,
            &self.operator,
            name,
            "Europe/Berlin",
            &[Role::Manager, Role::FrontDesk],
        )
        .await;
        Studio {
            manager_key: made.key(Role::Manager).to_owned(),
            manager: self.client(made.key(Role::Manager)).await,
            front_desk: self.client(made.key(Role::FrontDesk)).await,
            location_id: made.location_id,
            tenant_id: made.tenant_id,
        }
    }

    pub(crate) async fn count(&self, sql: &str) -> i64 {
        sqlx::query(sql)
            .fetch_one(self.db.db.reader())
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap()
    }
}

pub(crate) fn at(text: &str) -> Option<prost_types::Timestamp> {
    Some(to_proto(text.parse::<Timestamp>().unwrap()))
}

pub(crate) fn secs(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n,
        nanos: 0,
    })
}

pub(crate) fn ana() -> pb::Client {
    pb::Client {
        given_name: "Ana".into(),
        family_name: "Lindqvist".into(),
        email: "ana@example.com".into(),
        phone: "+49 30 1234567".into(),
        date_of_birth: "1990-04-12".into(),
        emergency_contact: Some(pb::EmergencyContact {
            name: "Jon Lindqvist".into(),
            phone: "+49 30 7654321".into(),
            relationship: "partner".into(),
        }),
        ..Default::default()
    }
}

pub(crate) async fn create(c: &mut Client, client: pb::Client) -> pb::Client {
    c.create_client(pb::CreateClientRequest {
        client: Some(client),
        request_id: String::new(),
    })
    .await
    .unwrap()
    .into_inner()
    .client
    .unwrap()
}

pub(crate) async fn screen(c: &mut Client, client_id: &str, answers: Vec<pb::ScreeningAnswer>) {
    c.record_screening(pb::RecordScreeningRequest {
        screening: Some(pb::Screening {
            client_id: client_id.into(),
            questionnaire_version: "2026-01".into(),
            answers,
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .unwrap();
}

pub(crate) fn answer(condition: pb::Condition, present: bool) -> pb::ScreeningAnswer {
    pb::ScreeningAnswer {
        condition: condition as i32,
        present,
        ..Default::default()
    }
}

pub(crate) async fn sign(c: &mut Client, client_id: &str) -> pb::Waiver {
    c.sign_waiver(pb::SignWaiverRequest {
        waiver: Some(pb::Waiver {
            client_id: client_id.into(),
            version: "v3".into(),
            signer_name: "Ana Lindqvist".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .unwrap()
    .into_inner()
    .waiver
    .unwrap()
}

pub(crate) async fn log(
    c: &mut Client,
    client_id: &str,
    kind: pb::ActivityKind,
    start: &str,
    end: &str,
) -> pb::Activity {
    c.log_activity(pb::LogActivityRequest {
        activity: Some(pb::Activity {
            client_id: client_id.into(),
            kind: kind as i32,
            start_time: at(start),
            end_time: at(end),
            distance_meters: 30_000,
            perceived_effort: 8,
            notes: "long run along the river".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .unwrap()
    .into_inner()
    .activity
    .unwrap()
}

pub(crate) fn session(
    client_id: &str,
    modality: pb::Modality,
    start: &str,
    before: i32,
    after: i32,
) -> pb::RecoverySession {
    pb::RecoverySession {
        client_id: client_id.into(),
        modality: modality as i32,
        start_time: at(start),
        duration: secs(180),
        soreness_before: Some(before),
        soreness_after: Some(after),
        notes: "felt dizzy after, mentioned her knee".into(),
        device_settings: [("temperature".to_owned(), "-110".to_owned())].into(),
        ..Default::default()
    }
}

pub(crate) async fn record(c: &mut Client, s: pb::RecoverySession) -> pb::RecoverySession {
    c.record_session(pb::RecordSessionRequest {
        session: Some(s),
        request_id: String::new(),
    })
    .await
    .unwrap()
    .into_inner()
    .session
    .unwrap()
}

pub(crate) async fn evaluate(
    c: &mut Client,
    client_id: &str,
    location_id: &str,
    modality: pb::Modality,
    start: &str,
    seconds: i64,
) -> pb::Evaluation {
    c.evaluate_session(pb::EvaluateSessionRequest {
        client_id: client_id.into(),
        modality: modality as i32,
        start_time: at(start),
        duration: secs(seconds),
        location_id: location_id.into(),
        booked: Vec::new(),
    })
    .await
    .unwrap()
    .into_inner()
    .evaluation
    .unwrap()
}

pub(crate) fn reasons(findings: &[pb::Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.reason.as_str()).collect()
}

pub(crate) async fn timeline(
    c: &mut Client,
    client_id: &str,
    size: i32,
    token: &str,
) -> (Vec<String>, String) {
    let page = c
        .list_timeline(pb::ListTimelineRequest {
            client_id: client_id.into(),
            page_size: size,
            page_token: token.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids = page
        .entries
        .iter()
        .map(|e| match e.entry.as_ref().unwrap() {
            pb::timeline_entry::Entry::Session(s) => s.id.clone(),
            pb::timeline_entry::Entry::Activity(a) => a.id.clone(),
        })
        .collect();
    (ids, page.next_page_token)
}

pub(crate) async fn update_rules(
    c: &mut Client,
    config: pb::RuleConfig,
    paths: &[&str],
) -> Result<pb::RuleConfig, Status> {
    c.update_rule_config(pb::UpdateRuleConfigRequest {
        rule_config: Some(config),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    })
    .await
    .map(|r| r.into_inner().rule_config.unwrap())
}

pub(crate) async fn rules(c: &mut Client) -> (pb::RuleConfig, bool) {
    let answer = c
        .get_rule_config(pb::GetRuleConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    (answer.rule_config.unwrap(), answer.is_default)
}

/// A screened client with a signed waiver whose run ended at 08:00 UTC.
pub(crate) async fn runner(c: &mut Client) -> pb::Client {
    let client = create(c, ana()).await;
    screen(c, &client.id, vec![answer(pb::Condition::Pregnancy, false)]).await;
    sign(c, &client.id).await;
    log(
        c,
        &client.id,
        pb::ActivityKind::Training,
        "2026-11-28T06:00:00Z",
        "2026-11-28T08:00:00Z",
    )
    .await;
    client
}

pub(crate) async fn audit(
    c: &mut Client,
    request: pb::ListAuditEventsRequest,
) -> Result<pb::ListAuditEventsResponse, Status> {
    c.list_audit_events(request)
        .await
        .map(tonic::Response::into_inner)
}

pub(crate) fn actions(events: &[pb::AuditEvent]) -> Vec<&str> {
    events.iter().map(|e| e.action.as_str()).collect()
}

pub(crate) async fn get_client(c: &mut Client, id: &str) -> pb::Client {
    let request = pb::GetClientRequest { id: id.into() };
    c.get_client(request)
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap()
}

pub(crate) async fn erase(c: &mut Client, id: &str) -> pb::Client {
    let request = pb::DeleteClientRequest { id: id.into() };
    c.delete_client(request)
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap()
}

pub(crate) async fn get_screening(c: &mut Client, client_id: &str) -> pb::Screening {
    let request = pb::GetScreeningRequest {
        client_id: client_id.into(),
    };
    c.get_screening(request)
        .await
        .unwrap()
        .into_inner()
        .screening
        .unwrap()
}

pub(crate) async fn get_waiver(c: &mut Client, client_id: &str) -> pb::Waiver {
    let request = pb::GetWaiverRequest {
        client_id: client_id.into(),
    };
    c.get_waiver(request)
        .await
        .unwrap()
        .into_inner()
        .waiver
        .unwrap()
}

pub(crate) async fn get_summary(c: &mut Client, client_id: &str) -> pb::GetSummaryResponse {
    let request = pb::GetSummaryRequest {
        client_id: client_id.into(),
    };
    c.get_summary(request).await.unwrap().into_inner()
}

/// A template `name` of one step: whole-body cryo one to five hours
/// after the end of the anchoring activity.
pub(crate) fn cryo_after_activity(name: &str) -> pb::ProtocolTemplate {
    pb::ProtocolTemplate {
        display_name: name.into(),
        steps: vec![pb::ProtocolStep {
            title: "Cryo".into(),
            modality: pb::Modality::WholeBodyCryotherapy as i32,
            anchor_point: pb::AnchorPoint::End as i32,
            timing: Some(pb::protocol_step::Timing::Window(pb::OffsetWindow {
                start_offset: secs(3600),
                end_offset: secs(5 * 3600),
            })),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(crate) async fn template(
    c: &mut Client,
    template: pb::ProtocolTemplate,
) -> pb::ProtocolTemplate {
    let request = pb::CreateProtocolTemplateRequest {
        template: Some(template),
        request_id: String::new(),
    };
    let answer = c.create_protocol_template(request).await.unwrap();
    answer.into_inner().template.unwrap()
}

/// Assigns a template to a client, anchored on one of their activities.
pub(crate) async fn assign(c: &mut Client, client_id: &str, template_id: &str, activity_id: &str) {
    let request = pb::AssignProtocolRequest {
        assignment: Some(pb::ProtocolAssignment {
            client_id: client_id.into(),
            template_id: template_id.into(),
            anchor_activity_id: activity_id.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    c.assign_protocol(request).await.unwrap();
}

/// A manager allows `n` whole-body cryotherapy sessions a day.
pub(crate) async fn daily_cryo_limit(c: &mut Client, n: i32) {
    let config = pb::RuleConfig {
        daily_cryo_limit: n,
        ..Default::default()
    };
    update_rules(c, config, &["daily_cryo_limit"])
        .await
        .unwrap();
}

/// `UpdateClient` of `patch` (which names the client's id) under `mask`;
/// `None` sends no mask.
pub(crate) async fn update_client(
    c: &mut Client,
    patch: pb::Client,
    mask: Option<&[&str]>,
) -> Result<pb::Client, Status> {
    let request = pb::UpdateClientRequest {
        client: Some(patch),
        update_mask: mask.map(|paths| prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    };
    let answer = c.update_client(request).await?;
    Ok(answer.into_inner().client.unwrap())
}
