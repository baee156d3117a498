//! Protocols through real gRPC, with real tenancy keys and locations, every
//! test on SQLite and on PostgreSQL.

// A story reads best in one piece; prost's optional fields want Options.
#![allow(clippy::too_many_lines, clippy::unnecessary_wraps)]

use std::collections::HashSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use recovery_kit::Role;
use recovery_kit::events::Bus;
use recovery_kit::testing::{Bearer, TestDb, TestServer};
use recovery_kit::time::{ManualClock, to_proto};
use recovery_proto::protocols::v1 as pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_protocols::Protocols;
use recovery_tenancy::testing::{self as tenancy, Platform};
use sqlx::Row as _;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

type Client = ProtocolServiceClient<InterceptedService<Channel, Bearer>>;

const NOW: &str = "2026-11-28T10:00:00Z";

struct Env {
    db: TestDb,
    server: TestServer,
    clock: Arc<ManualClock>,
    operator: String,
}

/// A studio: its manager and front-desk keys and one location in Berlin.
struct Studio {
    manager: Client,
    front_desk: Client,
    location_id: String,
}

async fn env(db: TestDb) -> Env {
    let clock = Arc::new(ManualClock::new(NOW.parse().unwrap()));
    let platform = Platform::start(&db.db, clock.clone()).await;
    let protocols = Protocols::start(
        db.db.clone(),
        clock.clone(),
        Bus::default(),
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
        operator: platform.operator,
    }
}

impl Env {
    async fn client(&self, key: &str) -> Client {
        ProtocolServiceClient::with_interceptor(self.server.channel().await, Bearer::new(key))
    }

    async fn studio(&self, name: &str) -> Studio {
        let made = tenancy::Studio::create(
            self.server.channel().await,
            &self.operator,
            name,
            "Europe/Berlin",
            &[Role::Manager, Role::FrontDesk],
        )
        .await;
        Studio {
            manager: self.client(made.key(Role::Manager)).await,
            front_desk: self.client(made.key(Role::FrontDesk)).await,
            location_id: made.location_id,
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query(sql)
            .fetch_one(self.db.db.reader())
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap()
    }
}

fn at(text: &str) -> Option<prost_types::Timestamp> {
    Some(to_proto(text.parse::<Timestamp>().unwrap()))
}

fn secs(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n,
        nanos: 0,
    })
}

fn fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
        .unwrap_or_default()
}

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

fn ana() -> pb::Client {
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

async fn create(c: &mut Client, client: pb::Client) -> pb::Client {
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

async fn screen(c: &mut Client, client_id: &str, answers: Vec<pb::ScreeningAnswer>) {
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

fn answer(condition: pb::Condition, present: bool) -> pb::ScreeningAnswer {
    pb::ScreeningAnswer {
        condition: condition as i32,
        present,
        ..Default::default()
    }
}

async fn sign(c: &mut Client, client_id: &str) -> pb::Waiver {
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

async fn log(
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

fn session(
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

async fn record(c: &mut Client, s: pb::RecoverySession) -> pb::RecoverySession {
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

async fn evaluate(
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
    })
    .await
    .unwrap()
    .into_inner()
    .evaluation
    .unwrap()
}

fn reasons(findings: &[pb::Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.reason.as_str()).collect()
}

async fn timeline(
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

async fn the_whole_client_story(db: TestDb) {
    let env = env(db).await;
    let Studio {
        mut front_desk,
        mut manager,
        location_id,
    } = env.studio("Frost & Flow").await;
    let fd = &mut front_desk;

    // Register, find, correct.
    let client = create(fd, ana()).await;
    assert_eq!(client.family_name, "Lindqvist");
    assert!(!client.created_by.is_empty());
    let other = create(
        fd,
        pb::Client {
            given_name: "Ben".into(),
            family_name: "Okafor".into(),
            ..Default::default()
        },
    )
    .await;
    let found = fd
        .list_clients(pb::ListClientsRequest {
            query: "LINDQ".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .clients;
    assert_eq!(
        found.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&client.id]
    );
    let by_phone = fd
        .list_clients(pb::ListClientsRequest {
            query: "1234567".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .clients;
    assert_eq!(by_phone.len(), 1);
    let first = fd
        .list_clients(pb::ListClientsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.clients[0].id, client.id);
    let second = fd
        .list_clients(pb::ListClientsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.clients[0].id, other.id);
    assert!(second.next_page_token.is_empty());
    env.clock.advance(SignedDuration::from_mins(1));
    let updated = fd
        .update_client(pb::UpdateClientRequest {
            client: Some(pb::Client {
                id: client.id.clone(),
                email: "ana.l@example.org".into(),
                given_name: "ignored: not in the mask".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["email".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    assert_eq!(updated.email, "ana.l@example.org");
    assert_eq!(updated.given_name, "Ana");
    assert_ne!(updated.update_time, client.update_time);

    // Before screening, cryo is refused outright.
    let unscreened = evaluate(
        fd,
        &client.id,
        &location_id,
        pb::Modality::WholeBodyCryotherapy,
        "2026-11-28T12:00:00Z",
        90,
    )
    .await;
    assert!(!unscreened.allowed);
    assert!(reasons(&unscreened.refusals).contains(&"SCREENING_REQUIRED"));
    assert!(reasons(&unscreened.refusals).contains(&"WAIVER_REQUIRED"));

    // Screening and waiver.
    screen(
        fd,
        &client.id,
        vec![
            answer(pb::Condition::Pregnancy, false),
            answer(pb::Condition::Pacemaker, false),
            answer(pb::Condition::DeepVeinThrombosis, false),
        ],
    )
    .await;
    let screening = fd
        .get_screening(pb::GetScreeningRequest {
            client_id: client.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .screening
        .unwrap();
    assert_eq!(screening.questionnaire_version, "2026-01");
    assert_eq!(screening.answers.len(), 3);
    assert!(screening.answers.iter().all(|a| a.answer_time.is_some()));
    assert!(screening.answers.iter().all(|a| !a.answered_by.is_empty()));
    let waiver = sign(fd, &client.id).await;
    let read = fd
        .get_waiver(pb::GetWaiverRequest {
            client_id: client.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .waiver
        .unwrap();
    assert_eq!(read, waiver);

    // A long run that ended at 08:05 UTC.
    let run = log(
        fd,
        &client.id,
        pb::ActivityKind::Training,
        "2026-11-28T06:05:00Z",
        "2026-11-28T08:05:00Z",
    )
    .await;
    // Six hours after: outside the five-hour window, a warning.
    let late = evaluate(
        fd,
        &client.id,
        &location_id,
        pb::Modality::WholeBodyCryotherapy,
        "2026-11-28T14:05:00Z",
        90,
    )
    .await;
    assert!(late.allowed, "{late:?}");
    assert_eq!(reasons(&late.warnings), ["OUTSIDE_CRYO_WINDOW"]);
    assert!(late.warnings[0].message.contains("five hours"));
    // Two hours after: nothing to say.
    let soon = evaluate(
        fd,
        &client.id,
        &location_id,
        pb::Modality::WholeBodyCryotherapy,
        "2026-11-28T10:05:00Z",
        90,
    )
    .await;
    assert!(soon.allowed && soon.warnings.is_empty(), "{soon:?}");
    assert_eq!(soon.recommended_duration, secs(90));

    // The session taken, with soreness; a race next week.
    let taken = record(
        fd,
        session(
            &client.id,
            pb::Modality::WholeBodyCryotherapy,
            "2026-11-28T09:30:00Z",
            7,
            4,
        ),
    )
    .await;
    assert_eq!(taken.soreness_before, Some(7));
    assert_eq!(taken.device_settings["temperature"], "-110");
    let race = log(
        fd,
        &client.id,
        pb::ActivityKind::Race,
        "2026-12-06T08:00:00Z",
        "2026-12-06T12:00:00Z",
    )
    .await;
    // Compression the evening before the race: a warning.
    let boots = evaluate(
        fd,
        &client.id,
        &location_id,
        pb::Modality::Compression,
        "2026-12-05T18:30:00Z",
        1800,
    )
    .await;
    assert_eq!(reasons(&boots.warnings), ["COMPRESSION_BEFORE_RACE"]);
    // A second cryo on the same Berlin day: refused.
    let again = evaluate(
        fd,
        &client.id,
        &location_id,
        pb::Modality::WholeBodyCryotherapy,
        "2026-11-28T22:30:00Z",
        90,
    )
    .await;
    assert!(reasons(&again.refusals).contains(&"DAILY_LIMIT_REACHED"));

    // Timeline: newest first, sessions and activities merged.
    let (ids, next_page) = timeline(fd, &client.id, 10, "").await;
    assert_eq!(ids, [race.id.clone(), taken.id.clone(), run.id.clone()]);
    assert!(next_page.is_empty());
    let cryo_only = fd
        .list_timeline(pb::ListTimelineRequest {
            client_id: client.id.clone(),
            modalities: vec![pb::Modality::WholeBodyCryotherapy as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(cryo_only.len(), 1);
    let windowed = fd
        .list_timeline(pb::ListTimelineRequest {
            client_id: client.id.clone(),
            start_time: at("2026-11-28T09:00:00Z"),
            end_time: at("2026-12-01T00:00:00Z"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(windowed.len(), 1);
    let activities = fd
        .list_activities(pb::ListActivitiesRequest {
            client_id: client.id.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(activities.activities[0].id, race.id);
    assert!(!activities.next_page_token.is_empty());

    // Summary.
    record(
        fd,
        session(
            &client.id,
            pb::Modality::Compression,
            "2026-10-01T09:30:00Z",
            6,
            5,
        ),
    )
    .await;
    let summary = fd
        .get_summary(pb::GetSummaryRequest {
            client_id: client.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.session_count, 2);
    assert_eq!(summary.session_count_last_30_days, 1);
    assert_eq!(summary.average_soreness_drop, Some(2.0));
    assert_eq!(summary.activity_count_last_30_days, 1);
    let cryo = &summary.modalities[0];
    assert_eq!(cryo.modality, pb::Modality::WholeBodyCryotherapy as i32);
    assert_eq!(
        (cryo.session_count, cryo.average_soreness_drop),
        (1, Some(3.0))
    );

    // A protocol: compression the day after the race, no compression the
    // day before, sleep the night before.
    let template = manager
        .create_protocol_template(pb::CreateProtocolTemplateRequest {
            template: Some(pb::ProtocolTemplate {
                display_name: "Race week".into(),
                steps: vec![
                    pb::ProtocolStep {
                        title: "Sleep well".into(),
                        habit: pb::Habit::Sleep as i32,
                        instructions: "7-9 h".into(),
                        anchor_point: pb::AnchorPoint::Start as i32,
                        timing: Some(pb::protocol_step::Timing::DayOffset(-1)),
                        ..Default::default()
                    },
                    pb::ProtocolStep {
                        title: "Boots after the race".into(),
                        modality: pb::Modality::Compression as i32,
                        anchor_point: pb::AnchorPoint::End as i32,
                        timing: Some(pb::protocol_step::Timing::Window(pb::OffsetWindow {
                            start_offset: secs(0),
                            end_offset: secs(5 * 3600),
                        })),
                        session_duration: secs(1800),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap();
    fd.assign_protocol(pb::AssignProtocolRequest {
        assignment: Some(pb::ProtocolAssignment {
            client_id: client.id.clone(),
            template_id: template.id.clone(),
            anchor_activity_id: race.id.clone(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .unwrap();
    let next = fd
        .get_recommendations(pb::GetRecommendationsRequest {
            client_id: client.id.clone(),
            location_id: location_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    assert_eq!(next.len(), 2);
    assert_eq!(
        next[0].step.as_ref().unwrap().habit,
        pb::Habit::Sleep as i32
    );
    // The day before the race, in Berlin: 5 December 00:00 CET.
    assert_eq!(next[0].window_start_time, at("2026-12-04T23:00:00Z"));
    assert!(next[0].evaluation.is_none());
    assert_eq!(next[1].window_start_time, at("2026-12-06T12:00:00Z"));
    assert_eq!(next[1].status, pb::RecommendationStatus::Upcoming as i32);
    let eval = next[1].evaluation.as_ref().unwrap();
    assert!(eval.allowed && eval.warnings.is_empty(), "{eval:?}");

    // Every change is in the audit trail, by the front desk's key.
    let audited = env
        .count("SELECT COUNT(*) FROM protocols_audit WHERE actor <> ''")
        .await;
    assert!(audited >= 10, "{audited} audit rows");
}

async fn timeline_pages_are_stable_while_entries_arrive(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Polar").await;
    let fd = &mut s.front_desk;
    let client = create(fd, ana()).await;
    let mut before = HashSet::new();
    // Seven entries, three of them at the same instant.
    for hour in ["01", "02", "03", "03", "03", "05", "06"] {
        let s = record(
            fd,
            session(
                &client.id,
                pb::Modality::StretchTherapy,
                &format!("2026-11-20T{hour}:00:00Z"),
                5,
                3,
            ),
        )
        .await;
        before.insert(s.id);
    }
    let (page, mut token) = timeline(fd, &client.id, 3, "").await;
    let mut seen: Vec<String> = page;
    let mut arrived = 0;
    while !token.is_empty() {
        // New entries arrive between pages, newer and older than the cursor
        // would be in an offset scheme.
        let newer = record(
            fd,
            session(
                &client.id,
                pb::Modality::Compression,
                &format!("2026-11-2{}T09:00:00Z", 1 + arrived),
                4,
                2,
            ),
        )
        .await;
        arrived += 1;
        assert!(!seen.contains(&newer.id));
        let (page, next) = timeline(fd, &client.id, 3, &token).await;
        seen.extend(page);
        token = next;
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no entry twice: {seen:?}");
    assert_eq!(unique, before, "every entry that existed, nothing skipped");
    assert!(arrived >= 2);
    // A token from another list is refused.
    let bad = fd
        .list_timeline(pb::ListTimelineRequest {
            client_id: client.id.clone(),
            page_token: "bm90LWEtdG9rZW4".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["page_token"]);
}

async fn another_tenants_client_is_not_found(db: TestDb) {
    let env = env(db).await;
    let mut mine = env.studio("Mine").await;
    let mut theirs = env.studio("Theirs").await;
    let client = create(&mut mine.front_desk, ana()).await;
    let t = &mut theirs.front_desk;
    let id = client.id.clone();
    let codes = [
        t.get_client(pb::GetClientRequest { id: id.clone() })
            .await
            .unwrap_err(),
        t.get_screening(pb::GetScreeningRequest {
            client_id: id.clone(),
        })
        .await
        .unwrap_err(),
        t.record_session(pb::RecordSessionRequest {
            session: Some(session(&id, pb::Modality::Compression, NOW, 3, 2)),
            request_id: String::new(),
        })
        .await
        .unwrap_err(),
        t.list_timeline(pb::ListTimelineRequest {
            client_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        t.evaluate_session(pb::EvaluateSessionRequest {
            client_id: id.clone(),
            modality: pb::Modality::Compression as i32,
            start_time: at(NOW),
            duration: secs(600),
            location_id: theirs.location_id.clone(),
        })
        .await
        .unwrap_err(),
        theirs
            .manager
            .delete_client(pb::DeleteClientRequest { id: id.clone() })
            .await
            .unwrap_err(),
    ];
    for status in &codes {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    // Nor may they use my location for their evaluation.
    let foreign_location = mine
        .front_desk
        .evaluate_session(pb::EvaluateSessionRequest {
            client_id: id.clone(),
            modality: pb::Modality::Compression as i32,
            start_time: at(NOW),
            duration: secs(600),
            location_id: theirs.location_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(foreign_location.code(), Code::NotFound);
    let listed = t
        .list_clients(pb::ListClientsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .clients;
    assert!(listed.is_empty());
    assert_eq!(
        env.count("SELECT COUNT(*) FROM protocols_sessions").await,
        0
    );
    // Operators run the platform; they do not read health data.
    let mut op = env.client(&env.operator).await;
    let denied = op
        .get_client(pb::GetClientRequest { id })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    // Erasure is for managers.
    let fd_erase = mine
        .front_desk
        .delete_client(pb::DeleteClientRequest {
            id: client.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(fd_erase.code(), Code::PermissionDenied);
}

async fn erasure_keeps_counts_and_removes_personal_fields(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Erase").await;
    let fd = &mut s.front_desk;
    let client = fd
        .create_client(pb::CreateClientRequest {
            client: Some(ana()),
            request_id: "register-ana".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    screen(
        fd,
        &client.id,
        vec![pb::ScreeningAnswer {
            condition: pb::Condition::Other as i32,
            present: true,
            detail: "migraine".into(),
            ..Default::default()
        }],
    )
    .await;
    sign(fd, &client.id).await;
    log(
        fd,
        &client.id,
        pb::ActivityKind::Training,
        "2026-11-27T06:00:00Z",
        "2026-11-27T08:00:00Z",
    )
    .await;
    for (m, start) in [
        (pb::Modality::WholeBodyCryotherapy, "2026-11-27T09:00:00Z"),
        (pb::Modality::Compression, "2026-11-27T10:00:00Z"),
    ] {
        record(fd, session(&client.id, m, start, 6, 3)).await;
    }
    let summary_before = fd
        .get_summary(pb::GetSummaryRequest {
            client_id: client.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    let erased = s
        .manager
        .delete_client(pb::DeleteClientRequest {
            id: client.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    assert!(erased.erase_time.is_some());
    let got = fd
        .get_client(pb::GetClientRequest {
            id: client.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    assert_eq!(
        (
            got.given_name.as_str(),
            got.family_name.as_str(),
            got.email.as_str(),
            got.phone.as_str(),
            got.date_of_birth.as_str()
        ),
        ("", "", "", "", "")
    );
    assert!(got.emergency_contact.is_none());
    // Counts stay.
    let summary_after = fd
        .get_summary(pb::GetSummaryRequest {
            client_id: client.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary_after, summary_before);
    assert_eq!(summary_after.session_count, 2);
    // Health answers and free text are gone; who/when/what stays.
    let screening = fd
        .get_screening(pb::GetScreeningRequest {
            client_id: client.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(screening.code(), Code::NotFound);
    let waiver = fd
        .get_waiver(pb::GetWaiverRequest {
            client_id: client.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .waiver
        .unwrap();
    assert_eq!(
        (waiver.version.as_str(), waiver.signer_name.as_str()),
        ("v3", "")
    );
    let (entries, _) = timeline(fd, &client.id, 10, "").await;
    assert_eq!(entries.len(), 3);
    for table in ["protocols_sessions", "protocols_activities"] {
        assert_eq!(
            env.count(&format!("SELECT COUNT(*) FROM {table} WHERE notes <> ''"))
                .await,
            0
        );
    }
    assert_eq!(
        env.count("SELECT COUNT(*) FROM protocols_audit WHERE detail <> ''")
            .await,
        0
    );
    assert!(env.count("SELECT COUNT(*) FROM protocols_audit").await >= 7);
    // Nothing anywhere still holds her name.
    for (table, column) in [
        ("protocols_clients", "search_text"),
        ("protocols_audit", "detail"),
        ("protocols_waivers", "signer_name"),
    ] {
        assert_eq!(
            env.count(&format!(
                "SELECT COUNT(*) FROM {table} WHERE {column} LIKE '%indqvist%'"
            ))
            .await,
            0,
            "{table}.{column}"
        );
    }
    assert_eq!(
        env.count("SELECT COUNT(*) FROM protocols_idempotency WHERE scope LIKE 'CreateClient/%'")
            .await,
        0,
        "the stored answer of the idempotent create held her name"
    );
    let searched = fd
        .list_clients(pb::ListClientsRequest {
            query: "ana".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .clients;
    assert!(searched.is_empty());
    // Nothing new is recorded about her.
    let refused = fd
        .record_session(pb::RecordSessionRequest {
            session: Some(session(&client.id, pb::Modality::Compression, NOW, 3, 2)),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "CLIENT_ERASED");
    // Erasing twice answers the same.
    let again = s
        .manager
        .delete_client(pb::DeleteClientRequest {
            id: client.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    assert_eq!(again.erase_time, erased.erase_time);
}

async fn bad_input_is_refused_with_field_details_and_writes_nothing(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Strict").await;
    let fd = &mut s.front_desk;
    let client = create(fd, ana()).await;
    let audit_before = env.count("SELECT COUNT(*) FROM protocols_audit").await;

    let bad_session = fd
        .record_session(pb::RecordSessionRequest {
            session: Some(pb::RecoverySession {
                modality: 42,
                soreness_before: Some(11),
                soreness_after: Some(-1),
                ..session(&client.id, pb::Modality::Compression, NOW, 0, 0)
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_session.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&bad_session),
        [
            "session.modality",
            "session.soreness_before",
            "session.soreness_after"
        ]
    );
    let unspecified = fd
        .record_session(pb::RecordSessionRequest {
            session: Some(pb::RecoverySession {
                modality: 0,
                ..session(&client.id, pb::Modality::Compression, NOW, 3, 2)
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&unspecified), ["session.modality"]);

    let backwards = fd
        .log_activity(pb::LogActivityRequest {
            activity: Some(pb::Activity {
                client_id: client.id.clone(),
                kind: pb::ActivityKind::Race as i32,
                start_time: at("2026-11-28T08:00:00Z"),
                end_time: at("2026-11-28T06:00:00Z"),
                perceived_effort: 12,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(backwards.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&backwards),
        ["activity.end_time", "activity.perceived_effort"]
    );

    let malformed = fd
        .create_client(pb::CreateClientRequest {
            client: Some(pb::Client {
                email: "ana@@example".into(),
                given_name: String::new(),
                ..ana()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert_eq!(fields(&malformed), ["client.given_name", "client.email"]);

    let bad_update = fd
        .update_client(pb::UpdateClientRequest {
            client: Some(pb::Client {
                id: client.id.clone(),
                email: "not an email".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["email".into(), "tenant_id".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad_update), ["update_mask.paths[1]"]);

    let bad_evaluation = fd
        .evaluate_session(pb::EvaluateSessionRequest {
            client_id: client.id.clone(),
            modality: 99,
            start_time: None,
            duration: secs(0),
            location_id: "nowhere".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad_evaluation),
        ["modality", "start_time", "duration", "location_id"]
    );

    let minor = create(
        fd,
        pb::Client {
            date_of_birth: "2012-05-01".into(),
            ..ana()
        },
    )
    .await;
    let no_guardian = fd
        .sign_waiver(pb::SignWaiverRequest {
            waiver: Some(pb::Waiver {
                client_id: minor.id.clone(),
                version: "v3".into(),
                signer_name: "Ana".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&no_guardian), ["waiver.guardian_name"]);

    for table in [
        "protocols_sessions",
        "protocols_activities",
        "protocols_waivers",
    ] {
        assert_eq!(
            env.count(&format!("SELECT COUNT(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(env.count("SELECT COUNT(*) FROM protocols_clients").await, 2);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM protocols_audit").await,
        audit_before + 1,
        "only the minor's registration"
    );
    let stored = fd
        .get_client(pb::GetClientRequest {
            id: client.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    assert_eq!(stored.email, "ana@example.com");
}

async fn creates_are_idempotent_by_request_id(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Again").await;
    let fd = &mut s.front_desk;
    let request = pb::CreateClientRequest {
        client: Some(ana()),
        request_id: "desk-1".into(),
    };
    let first = fd
        .create_client(request.clone())
        .await
        .unwrap()
        .into_inner();
    let second = fd.create_client(request).await.unwrap().into_inner();
    assert_eq!(first, second);
    let reused = fd
        .create_client(pb::CreateClientRequest {
            client: Some(pb::Client {
                given_name: "Other".into(),
                ..ana()
            }),
            request_id: "desk-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert_eq!(env.count("SELECT COUNT(*) FROM protocols_clients").await, 1);
}

async fn contraindications_refuse_and_the_clock_moves_the_window(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Careful").await;
    let fd = &mut s.front_desk;
    let client = create(fd, ana()).await;
    screen(
        fd,
        &client.id,
        vec![
            answer(pb::Condition::Raynauds, true),
            pb::ScreeningAnswer {
                condition: pb::Condition::CardiacStent as i32,
                present: true,
                detail: "2026-09-01".into(),
                ..Default::default()
            },
        ],
    )
    .await;
    sign(fd, &client.id).await;
    let cryo = evaluate(
        fd,
        &client.id,
        &s.location_id,
        pb::Modality::LocalCryotherapy,
        "2026-11-28T12:00:00Z",
        120,
    )
    .await;
    assert_eq!(reasons(&cryo.refusals), ["CONTRAINDICATED"]);
    let stretch = evaluate(
        fd,
        &client.id,
        &s.location_id,
        pb::Modality::StretchTherapy,
        "2026-11-28T12:00:00Z",
        1800,
    )
    .await;
    assert!(
        stretch.allowed && stretch.warnings.is_empty(),
        "{stretch:?}"
    );
    // The newest screening is current: after treatment, answers change.
    env.clock.advance(SignedDuration::from_hours(1));
    screen(fd, &client.id, vec![answer(pb::Condition::Raynauds, false)]).await;
    let local = evaluate(
        fd,
        &client.id,
        &s.location_id,
        pb::Modality::LocalCryotherapy,
        "2026-11-28T12:00:00Z",
        120,
    )
    .await;
    assert!(local.allowed, "{local:?}");
}

async fn update_rules(
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

async fn rules(c: &mut Client) -> (pb::RuleConfig, bool) {
    let answer = c
        .get_rule_config(pb::GetRuleConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    (answer.rule_config.unwrap(), answer.is_default)
}

/// A screened client with a signed waiver whose run ended at 08:00 UTC.
async fn runner(c: &mut Client) -> pb::Client {
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

async fn thresholds_are_the_tenants_own(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Frost").await;
    let mut other = env.studio("Elsewhere").await;
    let client = runner(&mut s.front_desk).await;
    let noon = "2026-11-28T12:00:00Z";

    // Until a manager changes them, the studio defaults apply.
    let (defaults, is_default) = rules(&mut s.front_desk).await;
    assert!(is_default);
    assert_eq!(defaults.cryo_window, secs(5 * 3600));
    assert_eq!(defaults.daily_cryo_limit, 1);
    assert_eq!(defaults.race_evening, "18:00");
    assert!(defaults.waiver_required && defaults.updated_by.is_empty());
    let wbc = pb::Modality::WholeBodyCryotherapy;
    let fine = evaluate(&mut s.front_desk, &client.id, &s.location_id, wbc, noon, 90).await;
    assert!(fine.allowed && fine.warnings.is_empty(), "{fine:?}");

    // The manager narrows the window to three hours: four hours after the
    // run is now too late.
    let narrowed = update_rules(
        &mut s.manager,
        pb::RuleConfig {
            cryo_window: secs(3 * 3600),
            daily_cryo_limit: 7, // not in the mask: ignored
            ..Default::default()
        },
        &["cryo_window"],
    )
    .await
    .unwrap();
    assert_eq!(narrowed.cryo_window, secs(3 * 3600));
    assert_eq!(narrowed.daily_cryo_limit, 1);
    assert!(!narrowed.updated_by.is_empty() && narrowed.update_time.is_some());
    let late = evaluate(&mut s.front_desk, &client.id, &s.location_id, wbc, noon, 90).await;
    assert!(late.allowed, "{late:?}");
    assert_eq!(reasons(&late.warnings), ["OUTSIDE_CRYO_WINDOW"]);
    assert!(
        late.warnings[0].message.contains("three hours"),
        "{:?}",
        late.warnings[0].message
    );
    let (stored, is_default) = rules(&mut s.front_desk).await;
    assert!(!is_default);
    assert_eq!(stored, narrowed);

    // Another studio still evaluates with the defaults.
    let theirs = runner(&mut other.front_desk).await;
    let there = evaluate(
        &mut other.front_desk,
        &theirs.id,
        &other.location_id,
        wbc,
        noon,
        90,
    )
    .await;
    assert!(there.allowed && there.warnings.is_empty(), "{there:?}");
    assert!(rules(&mut other.front_desk).await.1);

    // One cryo session today: the default limit refuses a second, a limit
    // of two allows it.
    record(
        &mut s.front_desk,
        session(&client.id, wbc, "2026-11-28T08:30:00Z", 6, 3),
    )
    .await;
    let second = evaluate(&mut s.front_desk, &client.id, &s.location_id, wbc, noon, 90).await;
    assert_eq!(reasons(&second.refusals), ["DAILY_LIMIT_REACHED"]);
    update_rules(
        &mut s.manager,
        pb::RuleConfig {
            daily_cryo_limit: 2,
            ..Default::default()
        },
        &["daily_cryo_limit"],
    )
    .await
    .unwrap();
    let second = evaluate(&mut s.front_desk, &client.id, &s.location_id, wbc, noon, 90).await;
    assert!(second.allowed, "{second:?}");
    assert_eq!(reasons(&second.warnings), ["OUTSIDE_CRYO_WINDOW"]);
    let there = evaluate(
        &mut other.front_desk,
        &theirs.id,
        &other.location_id,
        wbc,
        noon,
        90,
    )
    .await;
    assert!(there.warnings.is_empty(), "{there:?}");

    // Front desk reads the thresholds but does not change them.
    let denied = update_rules(
        &mut s.front_desk,
        pb::RuleConfig {
            daily_cryo_limit: 5,
            ..Default::default()
        },
        &["daily_cryo_limit"],
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Bad values name every field and change nothing.
    let before = rules(&mut s.front_desk).await.0;
    let bad = update_rules(
        &mut s.manager,
        pb::RuleConfig {
            cryo_window: secs(0),
            daily_cryo_limit: 11,
            // valid alone, but above the kept maximum of 3 minutes
            progression_start: secs(240),
            adult_age: 13,
            max_systolic: 400,
            race_evening: "25:00".into(),
            ..Default::default()
        },
        &[
            "cryo_window",
            "daily_cryo_limit",
            "progression_start",
            "adult_age",
            "max_systolic",
            "race_evening",
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let mut named = fields(&bad);
    named.sort();
    assert_eq!(
        named,
        [
            "rule_config.adult_age",
            "rule_config.cryo_window",
            "rule_config.daily_cryo_limit",
            "rule_config.max_systolic",
            "rule_config.progression_start",
            "rule_config.race_evening",
        ]
    );
    for (paths, config, field) in [
        (
            ["cryo_window"],
            pb::RuleConfig {
                cryo_window: secs(25 * 3600),
                ..Default::default()
            },
            "rule_config.cryo_window",
        ),
        (
            ["max_diastolic"],
            pb::RuleConfig {
                max_diastolic: 20,
                ..Default::default()
            },
            "rule_config.max_diastolic",
        ),
        (
            ["race_evening"],
            pb::RuleConfig {
                race_evening: "6pm".into(),
                ..Default::default()
            },
            "rule_config.race_evening",
        ),
        (
            ["colour"],
            pb::RuleConfig::default(),
            "update_mask.paths[0]",
        ),
    ] {
        let refused = update_rules(&mut s.manager, config, &paths)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(fields(&refused), [field]);
    }
    assert_eq!(rules(&mut s.front_desk).await.0, before);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM protocols_audit WHERE action = 'rules.updated'")
            .await,
        2
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM protocols_rule_configs")
            .await,
        1
    );
}

async fn audit(
    c: &mut Client,
    request: pb::ListAuditEventsRequest,
) -> Result<pb::ListAuditEventsResponse, Status> {
    c.list_audit_events(request)
        .await
        .map(tonic::Response::into_inner)
}

fn actions(events: &[pb::AuditEvent]) -> Vec<&str> {
    events.iter().map(|e| e.action.as_str()).collect()
}

async fn the_audit_trail_is_read_by_managers_and_survives_erasure(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Audited").await;
    let mut other = env.studio("Elsewhere").await;
    let minute = SignedDuration::from_mins(1);
    let fd = &mut s.front_desk;

    // Ana's story, one change a minute from 10:00.
    let client = create(fd, ana()).await;
    env.clock.advance(minute);
    fd.update_client(pb::UpdateClientRequest {
        client: Some(pb::Client {
            id: client.id.clone(),
            email: "ana.l@example.org".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["email".into()],
        }),
    })
    .await
    .unwrap();
    env.clock.advance(minute);
    screen(
        fd,
        &client.id,
        vec![answer(pb::Condition::Pregnancy, false)],
    )
    .await;
    env.clock.advance(minute);
    sign(fd, &client.id).await;
    env.clock.advance(minute);
    let wbc = pb::Modality::WholeBodyCryotherapy;
    log(
        fd,
        &client.id,
        pb::ActivityKind::Training,
        "2026-11-27T06:00:00Z",
        "2026-11-27T08:00:00Z",
    )
    .await;
    env.clock.advance(minute);
    record(fd, session(&client.id, wbc, "2026-11-27T09:00:00Z", 6, 3)).await;
    env.clock.advance(minute);
    // A tenant-wide change, and another client of the studio.
    update_rules(
        &mut s.manager,
        pb::RuleConfig {
            daily_cryo_limit: 2,
            ..Default::default()
        },
        &["daily_cryo_limit"],
    )
    .await
    .unwrap();
    let ben = create(
        &mut s.front_desk,
        pb::Client {
            given_name: "Ben".into(),
            family_name: "Okafor".into(),
            ..Default::default()
        },
    )
    .await;
    // Another studio's client: never in this studio's trail.
    let theirs = create(&mut other.front_desk, ana()).await;

    // The client's trail, newest first, two a page; a change made between
    // pages goes before the first page and does not shift the others.
    let by_client = |token: String| pb::ListAuditEventsRequest {
        client_id: client.id.clone(),
        page_size: 2,
        page_token: token,
        ..Default::default()
    };
    let first = audit(&mut s.manager, by_client(String::new()))
        .await
        .unwrap();
    assert_eq!(
        actions(&first.events),
        ["session.recorded", "activity.logged"]
    );
    env.clock.advance(minute);
    record(
        &mut s.front_desk,
        session(&client.id, wbc, "2026-11-28T09:00:00Z", 5, 2),
    )
    .await;
    let mut story = first.events.clone();
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let page = audit(&mut s.manager, by_client(token)).await.unwrap();
        assert!(page.events.len() <= 2);
        story.extend(page.events);
        token = page.next_page_token;
    }
    assert_eq!(
        actions(&story),
        [
            "session.recorded",
            "activity.logged",
            "waiver.signed",
            "screening.recorded",
            "client.updated",
            "client.created",
        ]
    );
    let created = story.last().unwrap();
    assert_eq!(created.actor, client.created_by);
    assert_eq!(created.client_id, client.id);
    assert_eq!(created.occur_time, at(NOW));
    assert!(created.detail.contains("Lindqvist"), "{created:?}");
    assert!(
        story
            .iter()
            .all(|e| !e.actor.is_empty() && e.occur_time.is_some())
    );
    let newest = audit(
        &mut s.manager,
        pb::ListAuditEventsRequest {
            client_id: client.id.clone(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(actions(&newest.events), ["session.recorded"]);
    assert_eq!(newest.events[0].occur_time, at("2026-11-28T10:07:00Z"));

    // A time window: from 10:02 up to (not including) 10:04.
    let window = audit(
        &mut s.manager,
        pb::ListAuditEventsRequest {
            client_id: client.id.clone(),
            start_time: at("2026-11-28T10:02:00Z"),
            end_time: at("2026-11-28T10:04:00Z"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        actions(&window.events),
        ["waiver.signed", "screening.recorded"]
    );
    assert!(window.next_page_token.is_empty());

    // No client named: the whole tenant's trail, and only this tenant's.
    let tenant = audit(&mut s.manager, pb::ListAuditEventsRequest::default())
        .await
        .unwrap();
    assert_eq!(
        actions(&tenant.events)[..3],
        ["session.recorded", "client.created", "rules.updated"]
    );
    assert_eq!(tenant.events[1].client_id, ben.id);
    assert_eq!(tenant.events[2].client_id, "");
    assert_eq!(tenant.events.len(), 9);
    assert!(tenant.events.iter().all(|e| e.client_id != theirs.id));

    // Front desk keeps the trail but does not read it; another tenant's
    // client is not found; bad input names every field.
    let denied = audit(&mut s.front_desk, by_client(String::new()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let hidden = audit(&mut other.manager, by_client(String::new()))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let bad = audit(
        &mut s.manager,
        pb::ListAuditEventsRequest {
            client_id: "42".into(),
            start_time: at("2026-11-28T11:00:00Z"),
            end_time: at("2026-11-28T10:00:00Z"),
            page_size: -1,
            page_token: "not-a-token".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let mut named = fields(&bad);
    named.sort();
    assert_eq!(named, ["client_id", "end_time", "page_size", "page_token"]);

    // After erasure the events remain, with nothing personal in them.
    s.manager
        .delete_client(pb::DeleteClientRequest {
            id: client.id.clone(),
        })
        .await
        .unwrap();
    let erased = audit(
        &mut s.manager,
        pb::ListAuditEventsRequest {
            client_id: client.id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        actions(&erased.events),
        [
            "client.erased",
            "session.recorded",
            "session.recorded",
            "activity.logged",
            "waiver.signed",
            "screening.recorded",
            "client.updated",
            "client.created",
        ]
    );
    assert!(erased.events.iter().all(|e| e.detail.is_empty()));
    assert!(
        erased.events[1..]
            .iter()
            .all(|e| e.actor == client.created_by)
    );
    let tenant = audit(&mut s.manager, pb::ListAuditEventsRequest::default())
        .await
        .unwrap();
    for answer in [format!("{erased:?}"), format!("{tenant:?}")] {
        for personal in [
            "Ana",
            "Lindqvist",
            "ana@example.com",
            "ana.l@example.org",
            "1234567",
            "1990-04-12",
        ] {
            assert!(!answer.contains(personal), "{personal} in {answer}");
        }
    }
    // Ben's details are untouched.
    assert!(format!("{tenant:?}").contains("Okafor"));
}

async fn recommendations_use_the_tenants_thresholds(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Narrow").await;
    let fd = &mut s.front_desk;
    let client = create(fd, ana()).await;
    screen(
        fd,
        &client.id,
        vec![answer(pb::Condition::Pregnancy, false)],
    )
    .await;
    sign(fd, &client.id).await;
    let run = log(
        fd,
        &client.id,
        pb::ActivityKind::Training,
        "2026-11-28T06:00:00Z",
        "2026-11-28T08:00:00Z",
    )
    .await;
    // Cryo four to five hours after the run: noon at the earliest.
    let template = s
        .manager
        .create_protocol_template(pb::CreateProtocolTemplateRequest {
            template: Some(pb::ProtocolTemplate {
                display_name: "Cryo after the long run".into(),
                steps: vec![pb::ProtocolStep {
                    title: "Cryo".into(),
                    modality: pb::Modality::WholeBodyCryotherapy as i32,
                    anchor_point: pb::AnchorPoint::End as i32,
                    timing: Some(pb::protocol_step::Timing::Window(pb::OffsetWindow {
                        start_offset: secs(4 * 3600),
                        end_offset: secs(5 * 3600),
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap();
    fd.assign_protocol(pb::AssignProtocolRequest {
        assignment: Some(pb::ProtocolAssignment {
            client_id: client.id.clone(),
            template_id: template.id.clone(),
            anchor_activity_id: run.id.clone(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .unwrap();
    let request = pb::GetRecommendationsRequest {
        client_id: client.id.clone(),
        location_id: s.location_id.clone(),
    };
    let cryo_step = |next: Vec<pb::Recommendation>| {
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(next[0].suggested_start_time, at("2026-11-28T12:00:00Z"));
        next[0].evaluation.clone().unwrap()
    };

    // With the defaults (a five-hour window) noon is fine.
    let next = fd
        .get_recommendations(request.clone())
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    let fine = cryo_step(next);
    assert!(fine.allowed && fine.warnings.is_empty(), "{fine:?}");

    // The manager narrows the window to three hours: the same step now
    // carries the warning.
    update_rules(
        &mut s.manager,
        pb::RuleConfig {
            cryo_window: secs(3 * 3600),
            ..Default::default()
        },
        &["cryo_window"],
    )
    .await
    .unwrap();
    let next = s
        .front_desk
        .get_recommendations(request)
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    let late = cryo_step(next);
    assert!(late.allowed, "{late:?}");
    assert_eq!(reasons(&late.warnings), ["OUTSIDE_CRYO_WINDOW"]);
}

recovery_kit::engine_tests!(
    the_whole_client_story,
    timeline_pages_are_stable_while_entries_arrive,
    another_tenants_client_is_not_found,
    erasure_keeps_counts_and_removes_personal_fields,
    bad_input_is_refused_with_field_details_and_writes_nothing,
    creates_are_idempotent_by_request_id,
    contraindications_refuse_and_the_clock_moves_the_window,
    thresholds_are_the_tenants_own,
    the_audit_trail_is_read_by_managers_and_survives_erasure,
    recommendations_use_the_tenants_thresholds,
);
