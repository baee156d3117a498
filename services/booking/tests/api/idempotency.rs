//! Every create of booking under one `request_id`, table-driven over
//! `CreateTreatment`, `CreateResource` and `CreateBooking`: two tenants sending the
//! same id each get their own object (never the other's stored answer, with
//! its client and location) and cannot read the other's; a different payload
//! under a used id is ALREADY_EXISTS `REQUEST_ID_REUSED` and writes nothing;
//! eight identical calls at once make one object and get equal answers.

use prost::Message as _;
use recovery_kit::Role;
use recovery_kit::testing::{Bearer, TestDb, at_once};
use recovery_proto::booking::v1 as pb;
use recovery_proto::protocols::v1 as protocols_pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use tonic::{Code, Status};

use crate::common::{create_client, screen, sign_waiver};
use crate::support::{Client, Studio, TEN_AM, answers, reason, start, t};

/// The creates, in the order the table runs them.
#[derive(Debug, Clone, Copy)]
enum Create {
    Treatment,
    Resource,
    Booking,
}

const CREATES: [Create; 3] = [Create::Treatment, Create::Resource, Create::Booking];

impl Create {
    /// The table its objects are stored in.
    fn table(self) -> &'static str {
        match self {
            Create::Treatment => "treatments",
            Create::Resource => "resources",
            Create::Booking => "bookings",
        }
    }
}

/// What one tenant sends with: its manager's key and the ids its requests
/// name (a location, a cryo treatment, a screened client with a waiver).
struct Tenant {
    id: String,
    key: String,
    location_id: String,
    cryo_id: String,
    client_id: String,
}

/// A created object: its id and the whole answer, encoded.
#[derive(Debug, Clone, PartialEq)]
struct Made {
    id: String,
    answer: Vec<u8>,
}

/// The create `which` of `tenant` under `request_id`; `variant` changes the
/// payload (a name, or the booking's start).
fn request(which: Create, tenant: &Tenant, request_id: &str, variant: u8) -> Request {
    let request_id = request_id.to_owned();
    match which {
        Create::Treatment => Request::Treatment(pb::CreateTreatmentRequest {
            treatment: Some(pb::Treatment {
                display_name: format!("Contrast cryo {variant}"),
                modality: pb::Modality::WholeBodyCryotherapy as i32,
                ..Default::default()
            }),
            request_id,
        }),
        Create::Resource => Request::Resource(pb::CreateResourceRequest {
            resource: Some(pb::Resource {
                location_id: tenant.location_id.clone(),
                display_name: format!("Chamber {variant}"),
                kind: pb::ResourceKind::CryoChamber as i32,
                ..Default::default()
            }),
            request_id,
        }),
        Create::Booking => Request::Booking(pb::CreateBookingRequest {
            location_id: tenant.location_id.clone(),
            treatment_id: tenant.cryo_id.clone(),
            client_id: tenant.client_id.clone(),
            start_time: t(if variant == 0 {
                TEN_AM
            } else {
                "2026-12-02T16:00:00Z"
            }),
            request_id,
            ..Default::default()
        }),
    }
}

enum Request {
    Treatment(pb::CreateTreatmentRequest),
    Resource(pb::CreateResourceRequest),
    Booking(pb::CreateBookingRequest),
}

async fn send(mut client: Client, request: Request) -> Result<Made, Status> {
    Ok(match request {
        Request::Treatment(r) => {
            let answer = client.create_treatment(r).await?.into_inner();
            Made {
                id: answer.treatment.clone().unwrap().id,
                answer: answer.encode_to_vec(),
            }
        }
        Request::Resource(r) => {
            let answer = client.create_resource(r).await?.into_inner();
            Made {
                id: answer.resource.clone().unwrap().id,
                answer: answer.encode_to_vec(),
            }
        }
        Request::Booking(r) => {
            let answer = client.create_booking(r).await?.into_inner();
            Made {
                id: answer.booking.clone().unwrap().id,
                answer: answer.encode_to_vec(),
            }
        }
    })
}

/// Reads the object `id` of kind `which` with `client`.
async fn get(mut client: Client, which: Create, id: &str) -> Result<(), Status> {
    let id = id.to_owned();
    match which {
        Create::Treatment => client
            .get_treatment(pb::GetTreatmentRequest { id })
            .await
            .map(drop),
        Create::Resource => client
            .get_resource(pb::GetResourceRequest { id })
            .await
            .map(drop),
        Create::Booking => client
            .get_booking(pb::GetBookingRequest { id })
            .await
            .map(drop),
    }
}

/// The studio's own tenant, as [`Tenant`].
async fn home(studio: &Studio) -> Tenant {
    Tenant {
        id: studio.tenant_id.clone(),
        key: studio.manager.clone(),
        location_id: studio.location_id.clone(),
        cryo_id: studio.cryo_id.clone(),
        client_id: studio.person("ana").await,
    }
}

/// A second tenant in the same server, with a chamber, a cryo treatment and
/// a screened client with a waiver of its own.
async fn rival(studio: &Studio) -> Tenant {
    let made = studio.rival().await;
    let mut tenant = Tenant {
        id: made.tenant_id.clone(),
        key: made.key(Role::Manager).to_owned(),
        location_id: made.location_id.clone(),
        cryo_id: String::new(),
        client_id: String::new(),
    };
    let client = studio.client(&tenant.key).await;
    send(client.clone(), request(Create::Resource, &tenant, "", 9))
        .await
        .unwrap();
    tenant.cryo_id = send(client, request(Create::Treatment, &tenant, "", 9))
        .await
        .unwrap()
        .id;
    let mut protocols = ProtocolServiceClient::with_interceptor(
        studio.server.channel().await,
        Bearer::new(&tenant.key),
    );
    let rhea = protocols_pb::Client {
        given_name: "Rhea".into(),
        family_name: "Rival".into(),
        date_of_birth: "1991-02-03".into(),
        ..Default::default()
    };
    tenant.client_id = create_client(&mut protocols, rhea).await.unwrap();
    screen(&mut protocols, &tenant.client_id, &answers(&[]))
        .await
        .unwrap();
    sign_waiver(&mut protocols, &tenant.client_id, "Rhea Rival")
        .await
        .unwrap();
    tenant
}

fn mentions(answer: &[u8], id: &str) -> bool {
    answer.windows(id.len()).any(|w| w == id.as_bytes())
}

async fn one_request_id_from_two_tenants_makes_two_objects(db: TestDb) {
    let studio = start(db).await;
    let home = home(&studio).await;
    let rival = rival(&studio).await;
    for which in CREATES {
        let id = format!("shared-{which:?}");
        let before = studio.rows(which.table()).await;
        let ours = send(
            studio.client(&home.key).await,
            request(which, &home, &id, 0),
        )
        .await
        .unwrap();
        let theirs = send(
            studio.client(&rival.key).await,
            request(which, &rival, &id, 0),
        )
        .await
        .unwrap();
        assert_ne!(ours.id, theirs.id, "{which:?}: one object for two tenants");
        assert_eq!(studio.rows(which.table()).await, before + 2, "{which:?}");
        // Neither answer carries the other tenant's ids (its client, its
        // location, the tenant itself).
        for (answer, other) in [(&theirs.answer, &home), (&ours.answer, &rival)] {
            for foreign in [&other.id, &other.location_id, &other.client_id] {
                assert!(
                    !mentions(answer, foreign),
                    "{which:?}: an answer carries the other tenant's {foreign}"
                );
            }
        }
        // Each replays its own answer, and reads its own object only.
        let again = send(
            studio.client(&rival.key).await,
            request(which, &rival, &id, 0),
        )
        .await
        .unwrap();
        assert_eq!(again, theirs, "{which:?}");
        for (reader, object) in [(&rival, &ours.id), (&home, &theirs.id)] {
            let status = get(studio.client(&reader.key).await, which, object)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::NotFound, "{which:?}: {status:?}");
        }
        get(studio.client(&home.key).await, which, &ours.id)
            .await
            .unwrap();
    }
}

async fn a_used_request_id_with_another_payload_is_refused_and_writes_nothing(db: TestDb) {
    let studio = start(db).await;
    let home = home(&studio).await;
    for which in CREATES {
        let id = format!("reused-{which:?}");
        let first = send(
            studio.client(&home.key).await,
            request(which, &home, &id, 0),
        )
        .await
        .unwrap();
        let objects = studio.rows(which.table()).await;
        let stored = studio.rows("booking_idempotency").await;
        let outbox = studio.rows("booking_outbox").await;
        let status = send(
            studio.client(&home.key).await,
            request(which, &home, &id, 1),
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{which:?}: {status:?}");
        assert_eq!(reason(&status), "REQUEST_ID_REUSED", "{which:?}");
        assert_eq!(studio.rows(which.table()).await, objects, "{which:?}");
        assert_eq!(studio.rows("booking_idempotency").await, stored);
        assert_eq!(studio.rows("booking_outbox").await, outbox);
        // The first payload still replays the first object.
        let again = send(
            studio.client(&home.key).await,
            request(which, &home, &id, 0),
        )
        .await
        .unwrap();
        assert_eq!(again, first, "{which:?}");
    }
}

async fn eight_identical_creates_at_once_make_one_object(db: TestDb) {
    let studio = start(db).await;
    let home = home(&studio).await;
    for which in CREATES {
        let id = format!("at-once-{which:?}");
        let before = studio.rows(which.table()).await;
        let mut calls = Vec::new();
        for _ in 0..8 {
            calls.push(send(
                studio.client(&home.key).await,
                request(which, &home, &id, 0),
            ));
        }
        let answers = at_once(calls).await;
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "{which:?}: answers differ"
        );
        assert_eq!(answers.len(), 8);
        assert_eq!(studio.rows(which.table()).await, before + 1, "{which:?}");
    }
}

recovery_kit::engine_tests!(
    one_request_id_from_two_tenants_makes_two_objects,
    a_used_request_id_with_another_payload_is_refused_and_writes_nothing,
    eight_identical_creates_at_once_make_one_object,
);
