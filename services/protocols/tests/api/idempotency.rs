//! Every create of protocols under one `request_id`, table-driven over
//! `CreateClient`, `RecordScreening`, `SignWaiver`, `LogActivity`,
//! `RecordSession`, `CreateProtocolTemplate` and `AssignProtocol`: two
//! tenants sending the same id each get their own object (never the other's
//! stored answer, with its client's personal data) and cannot read the
//! other's; a different payload under a used id is ALREADY_EXISTS
//! `REQUEST_ID_REUSED` and writes nothing; eight identical calls at once make
//! one object and get equal answers.

use prost::Message as _;
use recovery_kit::testing::{TestDb, at_once};
use recovery_proto::protocols::v1 as pb;
use tonic::{Code, Status};

use crate::support::{
    Client, Env, ana, answer, at, create, cryo_after_activity, env, log, reason, session, template,
};

#[derive(Debug, Clone, Copy)]
enum Create {
    Client,
    Screening,
    Waiver,
    Activity,
    Session,
    Template,
    Assignment,
}

const CREATES: [Create; 7] = [
    Create::Client,
    Create::Screening,
    Create::Waiver,
    Create::Activity,
    Create::Session,
    Create::Template,
    Create::Assignment,
];

impl Create {
    fn table(self) -> &'static str {
        match self {
            Create::Client => "protocols_clients",
            Create::Screening => "protocols_screenings",
            Create::Waiver => "protocols_waivers",
            Create::Activity => "protocols_activities",
            Create::Session => "protocols_sessions",
            Create::Template => "protocols_templates",
            Create::Assignment => "protocols_assignments",
        }
    }
}

/// One tenant: its manager, and the ids its requests name: a client with
/// personal data, an activity of theirs and two templates.
struct Tenant {
    manager: Client,
    id: String,
    location_id: String,
    client_id: String,
    activity_id: String,
    templates: [String; 2],
}

/// A created object: its id and the whole answer, encoded.
#[derive(Debug, Clone, PartialEq)]
struct Made {
    id: String,
    answer: Vec<u8>,
}

async fn tenant(env: &Env, name: &str) -> Tenant {
    let studio = env.studio(name).await;
    let mut manager = studio.manager;
    let client_id = create(&mut manager, ana()).await.id;
    let activity_id = log(
        &mut manager,
        &client_id,
        pb::ActivityKind::Training,
        "2026-11-28T06:00:00Z",
        "2026-11-28T08:00:00Z",
    )
    .await
    .id;
    let mut templates = [String::new(), String::new()];
    for (i, id) in templates.iter_mut().enumerate() {
        *id = template(&mut manager, cryo_after_activity(&format!("Plan {i}")))
            .await
            .id;
    }
    Tenant {
        manager,
        id: studio.tenant_id,
        location_id: studio.location_id,
        client_id,
        activity_id,
        templates,
    }
}

/// Sends the create `which` of `tenant` under `request_id`; `variant`
/// changes the payload.
async fn send(
    mut c: Client,
    which: Create,
    tenant: &Tenant,
    request_id: &str,
    variant: u8,
) -> Result<Made, Status> {
    let request_id = request_id.to_owned();
    let client_id = tenant.client_id.clone();
    let v = i32::from(variant);
    let (id, answer) = match which {
        Create::Client => {
            let a = c
                .create_client(pb::CreateClientRequest {
                    client: Some(pb::Client {
                        given_name: format!("Bea {variant}"),
                        ..ana()
                    }),
                    request_id,
                })
                .await?
                .into_inner();
            (a.client.clone().unwrap().id, a.encode_to_vec())
        }
        Create::Screening => {
            let a = c
                .record_screening(pb::RecordScreeningRequest {
                    screening: Some(pb::Screening {
                        client_id,
                        questionnaire_version: "2026-01".into(),
                        answers: vec![answer(pb::Condition::Pregnancy, variant == 1)],
                        ..Default::default()
                    }),
                    request_id,
                })
                .await?
                .into_inner();
            (a.screening.clone().unwrap().id, a.encode_to_vec())
        }
        Create::Waiver => {
            let a = c
                .sign_waiver(pb::SignWaiverRequest {
                    waiver: Some(pb::Waiver {
                        client_id,
                        version: format!("v{variant}"),
                        signer_name: "Ana Lindqvist".into(),
                        ..Default::default()
                    }),
                    request_id,
                })
                .await?
                .into_inner();
            (a.waiver.clone().unwrap().id, a.encode_to_vec())
        }
        Create::Activity => {
            let a = c
                .log_activity(pb::LogActivityRequest {
                    activity: Some(pb::Activity {
                        client_id,
                        kind: pb::ActivityKind::Race as i32,
                        start_time: at("2026-11-27T06:00:00Z"),
                        end_time: at("2026-11-27T09:00:00Z"),
                        distance_meters: 42_195 + v,
                        ..Default::default()
                    }),
                    request_id,
                })
                .await?
                .into_inner();
            (a.activity.clone().unwrap().id, a.encode_to_vec())
        }
        Create::Session => {
            let a = c
                .record_session(pb::RecordSessionRequest {
                    session: Some(session(
                        &client_id,
                        pb::Modality::WholeBodyCryotherapy,
                        "2026-11-28T09:00:00Z",
                        6,
                        3 + v,
                    )),
                    request_id,
                })
                .await?
                .into_inner();
            (a.session.clone().unwrap().id, a.encode_to_vec())
        }
        Create::Template => {
            let a = c
                .create_protocol_template(pb::CreateProtocolTemplateRequest {
                    template: Some(cryo_after_activity(&format!("Race week {variant}"))),
                    request_id,
                })
                .await?
                .into_inner();
            (a.template.clone().unwrap().id, a.encode_to_vec())
        }
        Create::Assignment => {
            let a = c
                .assign_protocol(pb::AssignProtocolRequest {
                    assignment: Some(pb::ProtocolAssignment {
                        client_id,
                        template_id: tenant.templates[usize::from(variant)].clone(),
                        anchor_activity_id: tenant.activity_id.clone(),
                        ..Default::default()
                    }),
                    request_id,
                })
                .await?
                .into_inner();
            (a.assignment.clone().unwrap().id, a.encode_to_vec())
        }
    };
    Ok(Made { id, answer })
}

/// Whether `reader` sees `made`, of kind `which` and of `owner`'s client:
/// a read by id (or by the owner's client) answers it, or a list holds it.
/// Anything but a sight or NOT_FOUND fails the test.
async fn sees(reader: &Tenant, which: Create, owner: &Tenant, made: &Made) -> bool {
    let mut c = reader.manager.clone();
    let client_id = owner.client_id.clone();
    let read = match which {
        Create::Client => c
            .get_client(pb::GetClientRequest {
                id: made.id.clone(),
            })
            .await
            .map(|_| true),
        Create::Screening => c
            .get_screening(pb::GetScreeningRequest { client_id })
            .await
            .map(|r| r.into_inner().screening.is_some_and(|s| s.id == made.id)),
        Create::Waiver => c
            .get_waiver(pb::GetWaiverRequest { client_id })
            .await
            .map(|r| r.into_inner().waiver.is_some_and(|w| w.id == made.id)),
        Create::Activity => c
            .list_activities(pb::ListActivitiesRequest {
                client_id,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().activities.iter().any(|a| a.id == made.id)),
        Create::Session => c
            .list_timeline(pb::ListTimelineRequest {
                client_id,
                ..Default::default()
            })
            .await
            .map(|r| {
                r.into_inner().entries.iter().any(|e| {
                    matches!(&e.entry, Some(pb::timeline_entry::Entry::Session(s)) if s.id == made.id)
                })
            }),
        Create::Template => c
            .list_protocol_templates(pb::ListProtocolTemplatesRequest::default())
            .await
            .map(|r| r.into_inner().templates.iter().any(|t| t.id == made.id)),
        Create::Assignment => c
            .get_recommendations(pb::GetRecommendationsRequest {
                client_id,
                location_id: reader.location_id.clone(),
            })
            .await
            .map(|_| true),
    };
    match read {
        Ok(seen) => seen,
        Err(status) => {
            assert_eq!(status.code(), Code::NotFound, "{which:?}: {status:?}");
            false
        }
    }
}

fn mentions(answer: &[u8], id: &str) -> bool {
    answer.windows(id.len()).any(|w| w == id.as_bytes())
}

async fn rows(env: &Env, table: &str) -> i64 {
    env.count(&format!("SELECT COUNT(*) FROM {table}")).await
}

async fn one_request_id_from_two_tenants_makes_two_objects(db: TestDb) {
    let env = env(db).await;
    let a = tenant(&env, "North").await;
    let b = tenant(&env, "South").await;
    for which in CREATES {
        let id = format!("shared-{which:?}");
        let before = rows(&env, which.table()).await;
        let ours = send(a.manager.clone(), which, &a, &id, 0).await.unwrap();
        let theirs = send(b.manager.clone(), which, &b, &id, 0).await.unwrap();
        assert_ne!(ours.id, theirs.id, "{which:?}: one object for two tenants");
        assert_eq!(rows(&env, which.table()).await, before + 2, "{which:?}");
        for (made, other) in [(&theirs, &a), (&ours, &b)] {
            for foreign in [&other.id, &other.location_id, &other.client_id] {
                assert!(
                    !mentions(&made.answer, foreign),
                    "{which:?}: an answer carries the other tenant's {foreign}"
                );
            }
        }
        let again = send(b.manager.clone(), which, &b, &id, 0).await.unwrap();
        assert_eq!(again, theirs, "{which:?}");
        assert!(sees(&a, which, &a, &ours).await, "{which:?}");
        assert!(sees(&b, which, &b, &theirs).await, "{which:?}");
        assert!(!sees(&b, which, &a, &ours).await, "{which:?}");
        assert!(!sees(&a, which, &b, &theirs).await, "{which:?}");
    }
}

async fn a_used_request_id_with_another_payload_is_refused_and_writes_nothing(db: TestDb) {
    let env = env(db).await;
    let a = tenant(&env, "North").await;
    for which in CREATES {
        let id = format!("reused-{which:?}");
        let first = send(a.manager.clone(), which, &a, &id, 0).await.unwrap();
        let objects = rows(&env, which.table()).await;
        let stored = rows(&env, "protocols_idempotency").await;
        let outbox = rows(&env, "protocols_outbox").await;
        let status = send(a.manager.clone(), which, &a, &id, 1)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{which:?}: {status:?}");
        assert_eq!(reason(&status), "REQUEST_ID_REUSED", "{which:?}");
        assert_eq!(rows(&env, which.table()).await, objects, "{which:?}");
        assert_eq!(rows(&env, "protocols_idempotency").await, stored);
        assert_eq!(rows(&env, "protocols_outbox").await, outbox);
        let again = send(a.manager.clone(), which, &a, &id, 0).await.unwrap();
        assert_eq!(again, first, "{which:?}");
    }
}

async fn eight_identical_creates_at_once_make_one_object(db: TestDb) {
    let env = env(db).await;
    let a = std::sync::Arc::new(tenant(&env, "North").await);
    for which in CREATES {
        let id = format!("at-once-{which:?}");
        let before = rows(&env, which.table()).await;
        let answers = at_once((0..8).map(|_| {
            let (a, id) = (a.clone(), id.clone());
            async move { send(a.manager.clone(), which, &a, &id, 0).await }
        }))
        .await;
        assert_eq!(answers.len(), 8);
        assert!(
            answers.iter().all(|x| *x == answers[0]),
            "{which:?}: answers differ"
        );
        assert_eq!(rows(&env, which.table()).await, before + 1, "{which:?}");
    }
}

recovery_kit::engine_tests!(
    one_request_id_from_two_tenants_makes_two_objects,
    a_used_request_id_with_another_payload_is_refused_and_writes_nothing,
    eight_identical_creates_at_once_make_one_object,
);
