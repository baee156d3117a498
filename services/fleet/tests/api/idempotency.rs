//! Every create of the fleet under one `request_id`, table-driven over
//! `RegisterDevice` and `ReserveDevice`: two tenants sending the same id each get
//! their own object (never the other's stored answer) and cannot read the
//! other's; a different payload under a used id is ALREADY_EXISTS
//! `REQUEST_ID_REUSED` and writes nothing; eight identical calls at once
//! make one object and get equal answers.

use prost::Message as _;
use recovery_kit::testing::at_once;

use crate::support::{
    Client, Code, Env, SignedDuration, Status, Studio, TestDb, env, gun, pb, reason, register,
    reserve_by_id,
};

#[derive(Debug, Clone, Copy)]
enum Create {
    Device,
    Reservation,
}

const CREATES: [Create; 2] = [Create::Device, Create::Reservation];

impl Create {
    fn table(self) -> &'static str {
        match self {
            Create::Device => "devices",
            Create::Reservation => "device_reservations",
        }
    }

    /// Whose key sends it.
    fn key(self, studio: &Studio) -> &str {
        match self {
            Create::Device => &studio.manager,
            Create::Reservation => &studio.staff,
        }
    }
}

/// A created object: its id and the whole answer, encoded.
#[derive(Debug, Clone, PartialEq)]
struct Made {
    id: String,
    answer: Vec<u8>,
}

enum Request {
    Device(Box<pb::RegisterDeviceRequest>),
    Reservation(pb::ReserveDeviceRequest),
}

/// The create `which` at `studio` under `request_id`; `variant` changes the
/// payload (the serial number, or the window's start). Reservations are of
/// `gun`, the studio's own.
fn request(
    env: &Env,
    which: Create,
    studio: &Studio,
    gun_id: &str,
    id: &str,
    variant: u8,
) -> Request {
    match which {
        Create::Device => Request::Device(Box::new(pb::RegisterDeviceRequest {
            device: Some(gun(
                &studio.location,
                &format!("IDEM-{variant}"),
                &[pb::Attachment::Ball],
            )),
            request_id: id.into(),
        })),
        Create::Reservation => Request::Reservation(pb::ReserveDeviceRequest {
            request_id: id.into(),
            ..reserve_by_id(
                gun_id,
                env.now() + SignedDuration::from_hours(1 + i64::from(variant)),
                30,
            )
        }),
    }
}

async fn send(mut client: Client, request: Request) -> Result<Made, Status> {
    Ok(match request {
        Request::Device(r) => {
            let answer = client.register_device(*r).await?.into_inner();
            Made {
                id: answer.device.clone().unwrap().id,
                answer: answer.encode_to_vec(),
            }
        }
        Request::Reservation(r) => {
            let answer = client.reserve_device(r).await?.into_inner();
            Made {
                id: answer.reservation.clone().unwrap().id,
                answer: answer.encode_to_vec(),
            }
        }
    })
}

async fn get(mut client: Client, which: Create, id: &str) -> Result<(), Status> {
    let id = id.to_owned();
    match which {
        Create::Device => client
            .get_device(pb::GetDeviceRequest { id })
            .await
            .map(drop),
        Create::Reservation => client
            .get_reservation(pb::GetReservationRequest { id })
            .await
            .map(drop),
    }
}

/// A gun of `studio`'s own to reserve.
async fn own_gun(env: &Env, studio: &Studio) -> String {
    let mut manager = env.client(&studio.manager).await;
    register(
        &mut manager,
        gun(
            &studio.location,
            &format!("OWN-{}", studio.tenant),
            &[pb::Attachment::Fork],
        ),
    )
    .await
    .id
}

fn mentions(answer: &[u8], id: &str) -> bool {
    answer.windows(id.len()).any(|w| w == id.as_bytes())
}

async fn rows(env: &Env, table: &str) -> i64 {
    use sqlx::Row as _;
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(env.db.db.reader())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

async fn one_request_id_from_two_tenants_makes_two_objects(db: TestDb) {
    let env = env(db).await;
    let guns = [own_gun(&env, &env.a).await, own_gun(&env, &env.b).await];
    for which in CREATES {
        let id = format!("shared-{which:?}");
        let before = rows(&env, which.table()).await;
        let mut made = Vec::new();
        for (studio, gun_id) in [(&env.a, &guns[0]), (&env.b, &guns[1])] {
            let client = env.client(which.key(studio)).await;
            made.push(
                send(client, request(&env, which, studio, gun_id, &id, 0))
                    .await
                    .unwrap(),
            );
        }
        assert_ne!(
            made[0].id, made[1].id,
            "{which:?}: one object for two tenants"
        );
        assert_eq!(rows(&env, which.table()).await, before + 2, "{which:?}");
        for (answer, other, other_gun) in [
            (&made[1].answer, &env.a, &guns[0]),
            (&made[0].answer, &env.b, &guns[1]),
        ] {
            for foreign in [&other.tenant, &other.location, other_gun] {
                assert!(
                    !mentions(answer, foreign),
                    "{which:?}: an answer carries the other tenant's {foreign}"
                );
            }
        }
        // b replays its own answer; each reads its own object only.
        let again = send(
            env.client(which.key(&env.b)).await,
            request(&env, which, &env.b, &guns[1], &id, 0),
        )
        .await
        .unwrap();
        assert_eq!(again, made[1], "{which:?}");
        for (reader, object) in [(&env.b, &made[0].id), (&env.a, &made[1].id)] {
            let status = get(env.client(which.key(reader)).await, which, object)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::NotFound, "{which:?}: {status:?}");
        }
        get(env.client(which.key(&env.a)).await, which, &made[0].id)
            .await
            .unwrap();
    }
}

async fn a_used_request_id_with_another_payload_is_refused_and_writes_nothing(db: TestDb) {
    let env = env(db).await;
    let gun_id = own_gun(&env, &env.a).await;
    for which in CREATES {
        let id = format!("reused-{which:?}");
        let (env, gun_id, id) = (&env, &gun_id, &id);
        let send_variant = |variant| async move {
            send(
                env.client(which.key(&env.a)).await,
                request(env, which, &env.a, gun_id, id, variant),
            )
            .await
        };
        let first = send_variant(0).await.unwrap();
        let objects = rows(env, which.table()).await;
        let stored = rows(env, "fleet_idempotency").await;
        let status = send_variant(1).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{which:?}: {status:?}");
        assert_eq!(reason(&status), "REQUEST_ID_REUSED", "{which:?}");
        assert_eq!(rows(env, which.table()).await, objects, "{which:?}");
        assert_eq!(rows(env, "fleet_idempotency").await, stored);
        // The first payload still replays the first object.
        assert_eq!(send_variant(0).await.unwrap(), first, "{which:?}");
    }
}

async fn eight_identical_creates_at_once_make_one_object(db: TestDb) {
    let env = env(db).await;
    let gun_id = own_gun(&env, &env.a).await;
    for which in CREATES {
        let id = format!("at-once-{which:?}");
        let before = rows(&env, which.table()).await;
        let mut calls = Vec::new();
        for _ in 0..8 {
            calls.push(send(
                env.client(which.key(&env.a)).await,
                request(&env, which, &env.a, &gun_id, &id, 0),
            ));
        }
        let answers = at_once(calls).await;
        assert_eq!(answers.len(), 8);
        assert!(
            answers.iter().all(|a| *a == answers[0]),
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
