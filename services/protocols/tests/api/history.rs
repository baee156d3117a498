//! Activities, sessions and the timeline.

use std::collections::HashSet;

use recovery_kit::testing::TestDb;
use recovery_proto::protocols::v1 as pb;

use crate::support::{ana, create, env, fields, record, session, timeline};

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
    let first_token = token.clone();
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
    // The first page's token holds for this timeline only: not with
    // another filter of it, nor on another list ordered the same way (the
    // audit trail's tokens are keyset tokens too).
    let bad = fd
        .list_timeline(pb::ListTimelineRequest {
            client_id: client.id.clone(),
            modalities: vec![pb::Modality::StretchTherapy as i32],
            page_size: 3,
            page_token: first_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["page_token"]);
    let bad = s
        .manager
        .list_audit_events(pb::ListAuditEventsRequest {
            client_id: client.id.clone(),
            page_size: 3,
            page_token: first_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["page_token"]);
}

/// A retried `RecordSession` whose session holds several device settings is
/// the same request: it answers the first session, never
/// `REQUEST_ID_REUSED` (map fields once encoded in a different order each
/// time, so the retry's fingerprint differed).
async fn a_retried_session_with_several_settings_replays(db: TestDb) {
    let env = env(db).await;
    let mut s = env.studio("Polar").await;
    let fd = &mut s.front_desk;
    let client = create(fd, ana()).await;
    let mut recorded = session(
        &client.id,
        pb::Modality::PercussionMassage,
        "2026-11-20T07:00:00Z",
        6,
        3,
    );
    recorded.device_settings = (1..=8)
        .map(|i| (format!("setting_{i}"), i.to_string()))
        .collect();
    let request = pb::RecordSessionRequest {
        session: Some(recorded),
        request_id: "retried-session".into(),
    };
    let first = fd
        .record_session(request.clone())
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    for attempt in 0..10 {
        let again = fd
            .record_session(request.clone())
            .await
            .unwrap_or_else(|status| panic!("retry {attempt} refused: {status:?}"))
            .into_inner()
            .session
            .unwrap();
        assert_eq!(
            again.id, first.id,
            "retry {attempt} answers the first session"
        );
    }
    let (entries, _) = timeline(fd, &client.id, 50, "").await;
    assert_eq!(
        entries,
        [first.id],
        "one session, however often it is retried"
    );
}

recovery_kit::engine_tests!(
    timeline_pages_are_stable_while_entries_arrive,
    a_retried_session_with_several_settings_replays,
);
