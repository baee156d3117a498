//! The audit trail.

use jiff::SignedDuration;
use recovery_kit::testing::TestDb;
use recovery_proto::protocols::v1 as pb;
use tonic::Code;

use crate::support::{
    NOW, actions, ana, answer, at, audit, create, daily_cryo_limit, env, fields, log, record,
    screen, session, sign, update_client,
};

async fn the_audit_trail_is_read_by_managers_and_survives_erasure(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Audited").await;
    let mut other = env.studio("Elsewhere").await;
    let minute = SignedDuration::from_mins(1);
    let fd = &mut s.front_desk;

    // Ana's story, one change a minute from 10:00.
    let client = create(fd, ana()).await;
    env.clock.advance(minute);
    let patch = pb::Client {
        id: client.id.clone(),
        email: "ana.l@example.org".into(),
        ..Default::default()
    };
    update_client(fd, patch, Some(&["email"])).await.unwrap();
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
    daily_cryo_limit(&mut s.manager, 2).await;
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
    let mut pages = Vec::new();
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let page = audit(&mut s.manager, by_client(token)).await.unwrap();
        pages.push(page.events.len());
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
    assert_eq!(pages, [2, 2], "after the first, two full pages, none empty");
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

recovery_kit::engine_tests!(the_audit_trail_is_read_by_managers_and_survives_erasure,);
