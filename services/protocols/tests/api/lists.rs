//! `ListClients` and `ListTimeline` answer from pages kept in memory under
//! their versions, and never show a page older than the last commit before
//! the call: not on the replica that made the change, not on another
//! replica that kept the page before it. Two protocols services (replicas)
//! on one database, each behind its own server.

use recovery_kit::testing::{Bearer, TestDb};
use recovery_proto::protocols::v1 as pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;

use crate::support::{Client, ana, create, env, erase, log, record, session, update_client};

/// The names `c` lists for `query`.
async fn names(c: &mut Client, query: &str) -> Vec<String> {
    c.list_clients(pb::ListClientsRequest {
        query: query.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .clients
    .iter()
    .map(|c| format!("{} {}", c.given_name, c.family_name))
    .collect()
}

/// What `c` lists of `client_id`'s timeline: sessions' and activities' ids.
async fn entries(c: &mut Client, client_id: &str) -> Vec<String> {
    c.list_timeline(pb::ListTimelineRequest {
        client_id: client_id.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .entries
    .iter()
    .filter_map(|e| match e.entry.as_ref()? {
        pb::timeline_entry::Entry::Session(s) => Some(s.id.clone()),
        pb::timeline_entry::Entry::Activity(a) => Some(a.id.clone()),
    })
    .collect()
}

/// Both replicas list after every step; each step is made on one of them
/// and the other's next list shows it: a new client, a renamed one, a
/// search, an erasure; a session and an activity on a timeline.
async fn a_change_on_one_replica_reaches_the_others_next_list(db: TestDb) {
    let env = env(db).await;
    let studio = env.studio("Frost").await;
    let replica = env.replica().await;
    let mut a = studio.manager.clone();
    let mut b = ProtocolServiceClient::with_interceptor(
        replica.channel().await,
        Bearer::new(&studio.manager_key),
    );
    assert!(names(&mut a, "").await.is_empty());
    assert!(names(&mut b, "").await.is_empty());

    let ana = create(&mut a, ana()).await;
    assert_eq!(names(&mut b, "").await, ["Ana Lindqvist"]);
    update_client(
        &mut b,
        pb::Client {
            id: ana.id.clone(),
            family_name: "Berg".into(),
            ..Default::default()
        },
        Some(&["family_name"]),
    )
    .await
    .unwrap();
    assert_eq!(names(&mut a, "").await, ["Ana Berg"]);
    assert_eq!(names(&mut a, "berg").await, ["Ana Berg"]);
    let bo = create(
        &mut b,
        pb::Client {
            given_name: "Bo".into(),
            family_name: "Berg".into(),
            email: "bo@example.com".into(),
            ..Default::default()
        },
    )
    .await;
    let mut both = names(&mut a, "berg").await;
    both.sort();
    assert_eq!(both, ["Ana Berg", "Bo Berg"]);
    erase(&mut a, &ana.id).await;
    assert_eq!(names(&mut b, "berg").await, ["Bo Berg"]);
    assert_eq!(names(&mut b, "").await, ["Bo Berg"]);

    // Bo's timeline, kept empty on both, then a session on A and an
    // activity on B.
    assert!(entries(&mut a, &bo.id).await.is_empty());
    assert!(entries(&mut b, &bo.id).await.is_empty());
    let cryo = record(
        &mut a,
        session(
            &bo.id,
            pb::Modality::WholeBodyCryotherapy,
            "2026-11-27T09:00:00Z",
            6,
            3,
        ),
    )
    .await;
    assert_eq!(
        entries(&mut b, &bo.id).await,
        std::slice::from_ref(&cryo.id)
    );
    let run = log(
        &mut b,
        &bo.id,
        pb::ActivityKind::Training,
        "2026-11-27T17:00:00Z",
        "2026-11-27T18:00:00Z",
    )
    .await;
    assert_eq!(
        entries(&mut a, &bo.id).await,
        [run.id.clone(), cryo.id.clone()]
    );
    assert_eq!(entries(&mut b, &bo.id).await, [run.id, cryo.id]);
}

recovery_kit::engine_tests!(a_change_on_one_replica_reaches_the_others_next_list);
