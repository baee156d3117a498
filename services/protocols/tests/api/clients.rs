//! Clients: tenancy, erasure, idempotent creates, bad input.

use recovery_kit::testing::TestDb;
use recovery_proto::protocols::v1 as pb;
use tonic::Code;

use crate::support::{
    NOW, ana, at, create, env, erase, fields, get_client, get_summary, get_waiver, log, reason,
    record, screen, secs, session, sign, timeline, update_client,
};

async fn another_tenants_client_is_not_found(db: TestDb) {
    let env = env(db).await;
    let mut mine = env.studio("Mine").await;
    let mut theirs = env.studio("Theirs").await;
    let client = create(&mut mine.front_desk, ana()).await;
    let t = &mut theirs.front_desk;
    let id = client.id.clone();
    // A compression session of my client at their location.
    let evaluate = pb::EvaluateSessionRequest {
        client_id: id.clone(),
        modality: pb::Modality::Compression as i32,
        start_time: at(NOW),
        duration: secs(600),
        location_id: theirs.location_id.clone(),
        booked: Vec::new(),
    };
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
        t.evaluate_session(evaluate.clone()).await.unwrap_err(),
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
        .evaluate_session(evaluate)
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
    let summary_before = get_summary(fd, &client.id).await;

    let erased = erase(&mut s.manager, &client.id).await;
    assert!(erased.erase_time.is_some());
    let got = get_client(fd, &client.id).await;
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
    let summary_after = get_summary(fd, &client.id).await;
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
    let waiver = get_waiver(fd, &client.id).await;
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
    let again = erase(&mut s.manager, &client.id).await;
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
            booked: Vec::new(),
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
    let stored = get_client(fd, &client.id).await;
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

/// AIP-134: without a mask an update changes the fields it populates; with
/// nothing populated it is refused on `update_mask`.
async fn an_omitted_update_mask_changes_the_populated_fields(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Masks").await;
    let client = create(&mut s.front_desk, ana()).await;
    let patch = pb::Client {
        id: client.id.clone(),
        phone: "+49 30 999999".into(),
        ..Default::default()
    };
    let updated = update_client(&mut s.front_desk, patch, None).await.unwrap();
    assert_eq!(updated.phone, "+49 30 999999");
    assert_eq!(
        (updated.given_name.as_str(), updated.email.as_str()),
        ("Ana", "ana@example.com")
    );
    let patch = pb::Client {
        id: client.id.clone(),
        ..Default::default()
    };
    let nothing = update_client(&mut s.front_desk, patch, None)
        .await
        .unwrap_err();
    assert_eq!(fields(&nothing), ["update_mask"]);
    let rules = s
        .manager
        .update_rule_config(pb::UpdateRuleConfigRequest {
            rule_config: Some(pb::RuleConfig {
                daily_cryo_limit: 2,
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .rule_config
        .unwrap();
    assert_eq!(rules.daily_cryo_limit, 2);
    assert_eq!(rules.race_evening, "18:00");
}

/// A write about a client waits for an erasure in progress and is then
/// refused: it used to read the client unlocked and write after the erasure
/// committed, undoing it (issue 11's code-reading list; PostgreSQL, where
/// writes run side by side; SQLite's writes queue anyway).
async fn a_write_about_a_client_waits_for_an_erasure_in_progress(db: TestDb) {
    let env = env(db).await;
    let s = env.studio("Race").await;
    let mut fd = s.front_desk.clone();
    let client = create(&mut fd, ana()).await;
    // An erasure in progress: the client's row changed in an open
    // transaction.
    let mut erasing = env.db.db.begin().await.unwrap();
    sqlx::query("UPDATE protocols_clients SET erase_time = $1 WHERE id = $2")
        .bind(1_i64)
        .bind(&client.id)
        .execute(&mut *erasing)
        .await
        .unwrap();
    let client_id = client.id.clone();
    let mut desk = fd.clone();
    let logging = tokio::spawn(async move {
        desk.log_activity(pb::LogActivityRequest {
            activity: Some(pb::Activity {
                client_id,
                kind: pb::ActivityKind::Training as i32,
                start_time: at("2026-11-28T06:00:00Z"),
                end_time: at("2026-11-28T07:00:00Z"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
    });
    // It waits while the erasure holds the client (a write that does not
    // wait answers at once)...
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !logging.is_finished(),
        "the write did not wait for the erasure"
    );
    erasing.commit().await.unwrap();
    // ... and then sees the client erased.
    let refused = tokio::time::timeout(std::time::Duration::from_secs(10), logging)
        .await
        .expect("the write ends once the erasure commits")
        .unwrap()
        .unwrap_err();
    assert_eq!(reason(&refused), "CLIENT_ERASED", "{refused:?}");
}

/// A 90 KB bad email is refused with a readable answer: the value is not
/// echoed whole into the message and the details (which travel as response
/// headers a client refuses past its limit: an h2 protocol error before).
async fn a_huge_bad_value_is_refused_with_a_short_answer(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Huge").await;
    let mut client = ana();
    client.email = format!("{}@", "x".repeat(90_000));
    let refused = s
        .front_desk
        .create_client(pb::CreateClientRequest {
            client: Some(client),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(fields(&refused), ["client.email"]);
    assert!(
        refused.message().len() < 2048,
        "{}",
        refused.message().len()
    );
}

recovery_kit::engine_tests!(
    a_huge_bad_value_is_refused_with_a_short_answer,
    a_write_about_a_client_waits_for_an_erasure_in_progress,
    another_tenants_client_is_not_found,
    erasure_keeps_counts_and_removes_personal_fields,
    bad_input_is_refused_with_field_details_and_writes_nothing,
    creates_are_idempotent_by_request_id,
    an_omitted_update_mask_changes_the_populated_fields,
);
