//! The studio's day, protocols' side (issue 9): booked sessions for the
//! rules, the in-process peer (`Clients`, `History`), service keys acting
//! for a tenant, and erasures handed on through the outbox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::SignedDuration;
use recovery_kit::auth::{BoxFuture, TENANT_HEADER};
use recovery_kit::testing::{Bearer, TestDb};
use recovery_kit::{Error, engine_tests};
use recovery_peers::{Clients as _, CompletedSession, Erasure, History as _, Modality, Standing};
use recovery_proto::protocols::v1 as pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_proto::tenancy::v1 as tpb;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use recovery_protocols::{CLIENT_ERASED, IN_PROCESS_KEY_ID};
use tonic::Code;

use crate::support::{
    Env, actions, ana, at, audit, create, env, erase, reason, reasons, runner, secs, timeline,
};

engine_tests!(
    a_booked_cryo_session_counts_toward_the_daily_limit_on_its_local_day,
    the_in_process_peer_tells_standing_and_evaluates,
    a_completed_session_is_recorded_once_per_booking,
    a_session_completed_after_erasure_stays_anonymous,
    a_service_key_acts_only_for_a_tenant,
    erasure_reaches_the_consumer_once_through_the_outbox,
    a_failing_consumer_is_retried_and_nothing_is_lost,
    a_rolled_back_erasure_writes_no_event,
);

fn booked(modality: pb::Modality, start: &str) -> pb::BookedSession {
    pb::BookedSession {
        modality: modality as i32,
        start_time: at(start),
        duration: secs(180),
    }
}

async fn evaluate_with(
    c: &mut crate::support::Client,
    client_id: &str,
    location_id: &str,
    booked: Vec<pb::BookedSession>,
) -> Result<pb::Evaluation, tonic::Status> {
    c.evaluate_session(pb::EvaluateSessionRequest {
        client_id: client_id.into(),
        modality: pb::Modality::WholeBodyCryotherapy as i32,
        start_time: at("2026-11-28T10:30:00Z"),
        duration: secs(90),
        location_id: location_id.into(),
        booked,
    })
    .await
    .map(|r| r.into_inner().evaluation.unwrap())
}

async fn a_booked_cryo_session_counts_toward_the_daily_limit_on_its_local_day(db: TestDb) {
    let env = env(db).await;
    let mut studio = env.studio("Frost").await;
    let fd = &mut studio.front_desk;
    let client = runner(fd).await;
    let loc = studio.location_id.clone();
    let free = evaluate_with(fd, &client.id, &loc, vec![]).await.unwrap();
    assert!(free.allowed, "{free:?}");

    // Booked at 22:30 Berlin (21:30 UTC): the same local day.
    let same_day = vec![booked(
        pb::Modality::WholeBodyCryotherapy,
        "2026-11-28T21:30:00Z",
    )];
    let e = evaluate_with(fd, &client.id, &loc, same_day).await.unwrap();
    assert!(!e.allowed);
    assert_eq!(reasons(&e.refusals), ["DAILY_LIMIT_REACHED"]);
    // Booked sessions are no experience: still a first-timer's 90 seconds.
    assert_eq!(e.recommended_duration, secs(90));

    // 23:30 UTC is 00:30 the next day in Berlin.
    let next_day = vec![booked(
        pb::Modality::WholeBodyCryotherapy,
        "2026-11-28T23:30:00Z",
    )];
    let e = evaluate_with(fd, &client.id, &loc, next_day).await.unwrap();
    assert!(e.allowed, "{e:?}");

    // Booked sessions are checked like the session's own fields.
    let mut bad = vec![booked(pb::Modality::Unspecified, "2026-11-28T21:30:00Z")];
    bad[0].duration = secs(0);
    let refused = evaluate_with(fd, &client.id, &loc, bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        crate::support::fields(&refused),
        ["booked[0].modality", "booked[0].duration"]
    );
    let many = vec![booked(pb::Modality::Compression, "2026-11-28T21:30:00Z"); 51];
    let refused = evaluate_with(fd, &client.id, &loc, many).await.unwrap_err();
    assert_eq!(crate::support::fields(&refused), ["booked"]);
}

async fn the_in_process_peer_tells_standing_and_evaluates(db: TestDb) {
    let env = env(db).await;
    let mut studio = env.studio("Frost").await;
    let other = env.studio("Elsewhere").await;
    let client = runner(&mut studio.front_desk).await;
    let p = &env.protocols;
    let tenant = studio.tenant_id.as_str();

    assert_eq!(
        p.standing(tenant, &client.id).await.unwrap(),
        Standing::Active
    );
    let unknown = recovery_kit::ids::new_id();
    for (t, id) in [
        (tenant, unknown.as_str()),
        (other.tenant_id.as_str(), &client.id),
    ] {
        let Err(Error::NotFound { kind, .. }) = p.standing(t, id).await else {
            panic!("{id} is found in {t}");
        };
        assert_eq!(kind, "client");
    }

    let proposal = recovery_peers::Proposal {
        client_id: client.id.clone(),
        modality: Modality::WholeBodyCryotherapy,
        start: "2026-11-28T10:30:00Z".parse().unwrap(),
        duration: SignedDuration::from_secs(90),
        location_id: studio.location_id.clone(),
        booked: vec![recovery_peers::Booked {
            modality: Modality::WholeBodyCryotherapy,
            start: "2026-11-28T21:30:00Z".parse().unwrap(),
            duration: SignedDuration::from_secs(180),
        }],
    };
    let verdict = p.evaluate(tenant, &proposal).await.unwrap();
    let wire = evaluate_with(
        &mut studio.front_desk,
        &client.id,
        &studio.location_id,
        vec![booked(
            pb::Modality::WholeBodyCryotherapy,
            "2026-11-28T21:30:00Z",
        )],
    )
    .await
    .unwrap();
    let refusals: Vec<_> = verdict.refusals.iter().map(|f| f.reason.as_str()).collect();
    assert_eq!(refusals, reasons(&wire.refusals));
    assert_eq!(verdict.refusals[0].message, wire.refusals[0].message);
    let warnings: Vec<_> = verdict.warnings.iter().map(|f| f.reason.as_str()).collect();
    assert_eq!(warnings, reasons(&wire.warnings));
    assert_eq!(
        verdict.recommended_duration,
        Some(SignedDuration::from_secs(90))
    );

    erase(&mut studio.manager, &client.id).await;
    assert_eq!(
        p.standing(tenant, &client.id).await.unwrap(),
        Standing::Erased
    );
    let Err(Error::FailedPrecondition { reason, .. }) = p.evaluate(tenant, &proposal).await else {
        panic!("an erased client is evaluated");
    };
    assert_eq!(reason, "CLIENT_ERASED");
}

fn completed(client_id: &str, location_id: &str, booking_id: &str) -> CompletedSession {
    CompletedSession {
        booking_id: booking_id.into(),
        client_id: client_id.into(),
        modality: Modality::StretchTherapy,
        start: "2026-11-28T09:00:00Z".parse().unwrap(),
        duration: SignedDuration::from_mins(45),
        location_id: location_id.into(),
        device_id: Some(recovery_kit::ids::new_id()),
        device_settings: [
            ("speed_level".to_owned(), "2".to_owned()),
            ("attachment".to_owned(), "fork".to_owned()),
        ]
        .into(),
        soreness_before: Some(7),
        soreness_after: Some(3),
        notes: "tight hamstrings".into(),
    }
}

async fn sessions(
    env: &Env,
    c: &mut crate::support::Client,
    client_id: &str,
) -> Vec<pb::RecoverySession> {
    let _ = env;
    c.list_timeline(pb::ListTimelineRequest {
        client_id: client_id.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .entries
    .into_iter()
    .filter_map(|e| match e.entry {
        Some(pb::timeline_entry::Entry::Session(s)) => Some(s),
        _ => None,
    })
    .collect()
}

async fn a_completed_session_is_recorded_once_per_booking(db: TestDb) {
    let env = env(db).await;
    let mut studio = env.studio("Frost").await;
    let client = runner(&mut studio.front_desk).await;
    let booking_id = recovery_kit::ids::new_id();
    let session = completed(&client.id, &studio.location_id, &booking_id);
    let tenant = studio.tenant_id.as_str();

    env.protocols.record(tenant, &session).await.unwrap();
    // A second delivery changes nothing and succeeds.
    env.protocols.record(tenant, &session).await.unwrap();
    let found = sessions(&env, &mut studio.front_desk, &client.id).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let s = &found[0];
    assert_eq!(s.booking_id, booking_id);
    assert_eq!(s.modality(), pb::Modality::StretchTherapy);
    assert_eq!(s.device_id, session.device_id.clone().unwrap());
    assert_eq!(
        s.device_settings.get("attachment").map(String::as_str),
        Some("fork")
    );
    assert_eq!((s.soreness_before, s.soreness_after), (Some(7), Some(3)));
    assert_eq!(s.notes, "tight hamstrings");
    assert_eq!(s.location_id, studio.location_id);
    assert_eq!(s.created_by, IN_PROCESS_KEY_ID);
    let summary = crate::support::get_summary(&mut studio.front_desk, &client.id).await;
    assert_eq!(summary.session_count, 1);
    let trail = audit(
        &mut studio.manager,
        pb::ListAuditEventsRequest {
            client_id: client.id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let recorded: Vec<_> = trail
        .events
        .iter()
        .filter(|e| e.action == "session.recorded")
        .collect();
    assert_eq!(recorded.len(), 1, "{:?}", actions(&trail.events));
    assert_eq!(recorded[0].actor, IN_PROCESS_KEY_ID);

    // Refusals write nothing: another tenant's client, an unknown location.
    let other = env.studio("Elsewhere").await;
    let Err(Error::NotFound { .. }) = env
        .protocols
        .record(
            &other.tenant_id,
            &completed(&client.id, &other.location_id, &recovery_kit::ids::new_id()),
        )
        .await
    else {
        panic!("another tenant's client got a session");
    };
    let mut elsewhere = completed(&client.id, &other.location_id, &recovery_kit::ids::new_id());
    elsewhere.notes = String::new();
    assert!(env.protocols.record(tenant, &elsewhere).await.is_err());
    let mut no_booking = completed(&client.id, &studio.location_id, "");
    no_booking.notes = String::new();
    assert!(matches!(
        env.protocols.record(tenant, &no_booking).await,
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(
        env.count("SELECT COUNT(*) FROM protocols_sessions").await,
        1
    );
}

async fn a_session_completed_after_erasure_stays_anonymous(db: TestDb) {
    let env = env(db).await;
    let mut studio = env.studio("Frost").await;
    let client = runner(&mut studio.front_desk).await;
    erase(&mut studio.manager, &client.id).await;
    let booking_id = recovery_kit::ids::new_id();
    let session = completed(&client.id, &studio.location_id, &booking_id);
    env.protocols
        .record(&studio.tenant_id, &session)
        .await
        .unwrap();
    env.protocols
        .record(&studio.tenant_id, &session)
        .await
        .unwrap();
    let found = sessions(&env, &mut studio.front_desk, &client.id).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].notes, "");
    assert_eq!(found[0].booking_id, booking_id);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM protocols_audit WHERE detail LIKE '%hamstrings%'")
            .await,
        0
    );
    // Staff still cannot type a session for them.
    let refused = studio
        .front_desk
        .record_session(pb::RecordSessionRequest {
            session: Some(crate::support::session(
                &client.id,
                pb::Modality::WholeBodyCryotherapy,
                "2026-11-28T09:00:00Z",
                5,
                2,
            )),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "CLIENT_ERASED");
}

/// Adds the service key and the tenant header to each call.
type Headers =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;

type ServiceClient = ProtocolServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Headers>,
>;

/// A client with the platform's service key, acting for `tenant` if any.
async fn service(env: &Env, key: &str, tenant: Option<&str>) -> ServiceClient {
    let auth: tonic::metadata::MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
    let tenant: Option<tonic::metadata::MetadataValue<_>> = tenant.map(|t| t.parse().unwrap());
    let interceptor: Headers = Box::new(move |mut request: tonic::Request<()>| {
        request.metadata_mut().insert("authorization", auth.clone());
        if let Some(t) = &tenant {
            request.metadata_mut().insert(TENANT_HEADER, t.clone());
        }
        Ok(request)
    });
    ProtocolServiceClient::with_interceptor(env.server.channel().await, interceptor)
}

async fn service_key(env: &Env) -> String {
    let mut op = TenancyServiceClient::with_interceptor(
        env.server.channel().await,
        Bearer::new(&env.operator),
    );
    op.create_api_key(tpb::CreateApiKeyRequest {
        tenant_id: String::new(),
        role: tpb::Role::Service as i32,
        display_name: "booking".into(),
        request_id: String::new(),
    })
    .await
    .unwrap()
    .into_inner()
    .secret
}

async fn a_service_key_acts_only_for_a_tenant(db: TestDb) {
    let env = env(db).await;
    let mut studio = env.studio("Frost").await;
    let client = runner(&mut studio.front_desk).await;
    let key = service_key(&env).await;
    let mut acting = service(&env, &key, Some(&studio.tenant_id)).await;
    let booking_id = recovery_kit::ids::new_id();
    let mut s = crate::support::session(
        &client.id,
        pb::Modality::WholeBodyCryotherapy,
        "2026-11-28T09:00:00Z",
        6,
        2,
    );
    s.booking_id = booking_id.clone();
    s.location_id = studio.location_id.clone();
    let record = |s: &pb::RecoverySession, request_id: &str| pb::RecordSessionRequest {
        session: Some(s.clone()),
        request_id: request_id.into(),
    };
    let first = acting
        .record_session(record(&s, "booking:1"))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(first.booking_id, booking_id);
    // Delivered again, with or without the same request id: the first.
    let again = acting
        .record_session(record(&s, "booking:1"))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    let other_id = acting
        .record_session(record(&s, ""))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(
        (again.id.as_str(), other_id.id.as_str()),
        (first.id.as_str(), first.id.as_str())
    );
    let got = acting
        .get_client(pb::GetClientRequest {
            id: client.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    assert_eq!(got.given_name, "Ana");
    let e = acting
        .evaluate_session(pb::EvaluateSessionRequest {
            client_id: client.id.clone(),
            modality: pb::Modality::WholeBodyCryotherapy as i32,
            start_time: at("2026-11-28T12:00:00Z"),
            duration: secs(90),
            location_id: studio.location_id.clone(),
            booked: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .evaluation
        .unwrap();
    assert_eq!(reasons(&e.refusals), ["DAILY_LIMIT_REACHED"]);
    let (ids, _) = timeline(&mut studio.front_desk, &client.id, 10, "").await;
    assert!(ids.contains(&first.id));

    // Without a tenant: refused, nothing written.
    let mut platform = service(&env, &key, None).await;
    s.booking_id = recovery_kit::ids::new_id();
    let before = env.count("SELECT COUNT(*) FROM protocols_sessions").await;
    let refused = platform.record_session(record(&s, "")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = platform
        .get_client(pb::GetClientRequest {
            id: client.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM protocols_sessions").await,
        before
    );
    // A service is not a studio: it does not list clients.
    let refused = acting
        .list_clients(pb::ListClientsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Operators stay refused.
    let mut op = env.client(&env.operator).await;
    let refused = op
        .get_client(pb::GetClientRequest {
            id: client.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

/// Booking's side of an erasure, recorded; fails its first `fail` calls.
#[derive(Default)]
struct Recording {
    fail: Mutex<usize>,
    calls: Mutex<usize>,
    forgotten: Mutex<Vec<(String, String)>>,
}

impl Erasure for Recording {
    fn forget_client<'a>(
        &'a self,
        tenant_id: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            *self.calls.lock().unwrap() += 1;
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(Error::Unavailable("booking: down".into()));
            }
            self.forgotten
                .lock()
                .unwrap()
                .push((tenant_id.to_owned(), client_id.to_owned()));
            Ok(())
        })
    }
}

async fn erasure_reaches_the_consumer_once_through_the_outbox(db: TestDb) {
    let env = env(db).await;
    let mut studio = env.studio("Frost").await;
    let client = create(&mut studio.front_desk, ana()).await;
    let booking = Arc::new(Recording::default());
    env.protocols.on_erasure(booking.clone());
    let mut watch = env
        .bus
        .subscribe(CLIENT_ERASED, &studio.tenant_id, &client.id);

    erase(&mut studio.manager, &client.id).await;
    // Erasing again writes no second event.
    erase(&mut studio.manager, &client.id).await;
    assert_eq!(env.protocols.outbox().backlog().await.unwrap(), 1);
    assert!(
        booking.forgotten.lock().unwrap().is_empty(),
        "before the relay ran"
    );
    let pass = env.protocols.outbox().pass().await.unwrap();
    assert_eq!((pass.delivered, pass.stalled), (1, false));
    assert_eq!(
        *booking.forgotten.lock().unwrap(),
        [(studio.tenant_id.clone(), client.id.clone())]
    );
    // Live watchers still see it, from the relay.
    let seen = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("the erasure reaches the bus")
        .unwrap();
    assert_eq!(seen.scope, client.id);
    let again = env.protocols.outbox().pass().await.unwrap();
    assert_eq!(again.delivered, 0);
    assert_eq!(booking.forgotten.lock().unwrap().len(), 1);
    assert_eq!(env.protocols.outbox().backlog().await.unwrap(), 0);
}

async fn a_failing_consumer_is_retried_and_nothing_is_lost(db: TestDb) {
    let env = env(db).await;
    let mut studio = env.studio("Frost").await;
    let first = create(&mut studio.front_desk, ana()).await;
    let second = create(&mut studio.front_desk, ana()).await;
    let booking = Arc::new(Recording {
        fail: Mutex::new(2),
        ..Recording::default()
    });
    env.protocols.on_erasure(booking.clone());
    erase(&mut studio.manager, &first.id).await;
    erase(&mut studio.manager, &second.id).await;
    for _ in 0..2 {
        let pass = env.protocols.outbox().pass().await.unwrap();
        assert_eq!((pass.delivered, pass.stalled), (0, true));
        assert_eq!(env.protocols.outbox().backlog().await.unwrap(), 2);
    }
    let pass = env.protocols.outbox().pass().await.unwrap();
    assert_eq!((pass.delivered, pass.stalled), (2, false));
    let forgotten: Vec<_> = booking
        .forgotten
        .lock()
        .unwrap()
        .iter()
        .map(|(_, id)| id.clone())
        .collect();
    // In order, each once.
    assert_eq!(forgotten, [first.id, second.id]);
    assert_eq!(*booking.calls.lock().unwrap(), 4);

    // The relay task does the same on its own once woken.
    let third = create(&mut studio.front_desk, ana()).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = env.protocols.spawn_relay(async {
        let _ = stopped.await;
    });
    erase(&mut studio.manager, &third.id).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while booking.forgotten.lock().unwrap().len() < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the relay hands the erasure on");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), relay)
        .await
        .unwrap()
        .unwrap();
}

async fn a_rolled_back_erasure_writes_no_event(db: TestDb) {
    let env = env(db).await;
    let mut studio = env.studio("Frost").await;
    let client = create(&mut studio.front_desk, ana()).await;
    // The audit row is written after the event: without its table the
    // erasure fails after `outbox::record`, and its transaction rolls back.
    ddl(
        &env,
        "ALTER TABLE protocols_audit RENAME TO protocols_audit_away",
    )
    .await;
    let refused = studio
        .manager
        .delete_client(pb::DeleteClientRequest {
            id: client.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Internal);
    ddl(
        &env,
        "ALTER TABLE protocols_audit_away RENAME TO protocols_audit",
    )
    .await;
    assert_eq!(env.protocols.outbox().backlog().await.unwrap(), 0);
    let kept = crate::support::get_client(&mut studio.front_desk, &client.id).await;
    assert_eq!((kept.given_name.as_str(), kept.erase_time), ("Ana", None));
    // Unknown clients write nothing either.
    let unknown = studio
        .manager
        .delete_client(pb::DeleteClientRequest {
            id: recovery_kit::ids::new_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(env.protocols.outbox().backlog().await.unwrap(), 0);
}

/// Runs `sql` as the tables' owner: on PostgreSQL the services' own
/// connections act as a role that may not change tables.
async fn ddl(env: &Env, sql: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::AnyConnection::connect(env.db.url()).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}
