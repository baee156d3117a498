//! Every create of tenancy under one `request_id`, table-driven over
//! `CreateTenant`, `CreateLocation` and `CreateApiKey`: two tenants' managers
//! sending the same id each get their own location and key (never the
//! other's stored answer) and cannot read the other's; a different payload
//! under a used id is ALREADY_EXISTS `REQUEST_ID_REUSED` and writes nothing;
//! eight identical calls at once make one object and answer it alike (a key's
//! secret once: a replay never shows it). `CreateTenant` is the operators'
//! alone and platform-wide, so it has no second tenant to send from.

use prost::Message as _;
use recovery_kit::testing::{TestDb, at_once};
use recovery_proto::tenancy::v1 as pb;
use sqlx::Row as _;
use tonic::{Code, Status};

use crate::support::{Client, Env, berlin, env, reason, tenant_request};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Create {
    Tenant,
    Location,
    ApiKey,
}

const CREATES: [Create; 3] = [Create::Tenant, Create::Location, Create::ApiKey];

impl Create {
    fn table(self) -> &'static str {
        match self {
            Create::Tenant => "tenants",
            Create::Location => "locations",
            Create::ApiKey => "api_keys",
        }
    }
}

/// A created object: its id, the whole answer but the secret, encoded, and
/// the secret (keys only, and only when fresh).
#[derive(Debug, Clone, PartialEq)]
struct Made {
    id: String,
    answer: Vec<u8>,
    secret: String,
}

/// Sends the create `which` under `request_id` (locations and keys in the
/// caller's tenant); `variant` changes the payload (a name).
async fn send(mut c: Client, which: Create, request_id: &str, variant: u8) -> Result<Made, Status> {
    let name = format!("Idempotent {variant}");
    Ok(match which {
        Create::Tenant => {
            let a = c
                .create_tenant(tenant_request(&name, request_id))
                .await?
                .into_inner();
            Made {
                id: a.tenant.clone().unwrap().id,
                answer: a.encode_to_vec(),
                secret: String::new(),
            }
        }
        Create::Location => {
            let a = c
                .create_location(pb::CreateLocationRequest {
                    tenant_id: String::new(),
                    location: Some(berlin(&name)),
                    request_id: request_id.into(),
                })
                .await?
                .into_inner();
            Made {
                id: a.location.clone().unwrap().id,
                answer: a.encode_to_vec(),
                secret: String::new(),
            }
        }
        Create::ApiKey => {
            let mut a = c
                .create_api_key(pb::CreateApiKeyRequest {
                    tenant_id: String::new(),
                    role: pb::Role::FrontDesk as i32,
                    display_name: name,
                    request_id: request_id.into(),
                })
                .await?
                .into_inner();
            let secret = std::mem::take(&mut a.secret);
            Made {
                id: a.api_key.clone().unwrap().id,
                answer: a.encode_to_vec(),
                secret,
            }
        }
    })
}

/// Whether `c` sees the location or key `id`.
async fn sees(mut c: Client, which: Create, id: &str) -> bool {
    match which {
        Create::Tenant => unreachable!("tenants are the operators'"),
        Create::Location => match c
            .get_location(pb::GetLocationRequest { id: id.into() })
            .await
        {
            Ok(_) => true,
            Err(status) => {
                assert_eq!(status.code(), Code::NotFound, "{status:?}");
                false
            }
        },
        Create::ApiKey => c
            .list_api_keys(pb::ListApiKeysRequest {
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .api_keys
            .iter()
            .any(|k| k.id == id),
    }
}

async fn rows(env: &Env, table: &str) -> i64 {
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(env.db.db.reader())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// Who sends `which` in the single-tenant tests: the operator for tenants,
/// a manager of `tenant` for the rest.
async fn sender(env: &Env, which: Create, manager: &str) -> Client {
    env.client(if which == Create::Tenant {
        &env.operator
    } else {
        manager
    })
    .await
}

fn mentions(answer: &[u8], id: &str) -> bool {
    answer.windows(id.len()).any(|w| w == id.as_bytes())
}

async fn one_request_id_from_two_tenants_makes_two_objects(db: TestDb) {
    let env = env(db).await;
    let (a, a_key) = env.tenant_with("North", pb::Role::Manager).await;
    let (b, b_key) = env.tenant_with("South", pb::Role::Manager).await;
    for which in [Create::Location, Create::ApiKey] {
        let id = format!("shared-{which:?}");
        let before = rows(&env, which.table()).await;
        let ours = send(env.client(&a_key).await, which, &id, 0).await.unwrap();
        let theirs = send(env.client(&b_key).await, which, &id, 0).await.unwrap();
        assert_ne!(ours.id, theirs.id, "{which:?}: one object for two tenants");
        assert_eq!(rows(&env, which.table()).await, before + 2, "{which:?}");
        assert!(mentions(&ours.answer, &a) && !mentions(&ours.answer, &b));
        assert!(mentions(&theirs.answer, &b) && !mentions(&theirs.answer, &a));
        if which == Create::ApiKey {
            assert!(!ours.secret.is_empty() && !theirs.secret.is_empty());
            assert_ne!(ours.secret, theirs.secret);
        }
        let again = send(env.client(&b_key).await, which, &id, 0).await.unwrap();
        assert_eq!((&again.id, &again.answer), (&theirs.id, &theirs.answer));
        assert!(sees(env.client(&a_key).await, which, &ours.id).await);
        assert!(sees(env.client(&b_key).await, which, &theirs.id).await);
        assert!(!sees(env.client(&b_key).await, which, &ours.id).await);
        assert!(!sees(env.client(&a_key).await, which, &theirs.id).await);
    }
}

async fn a_used_request_id_with_another_payload_is_refused_and_writes_nothing(db: TestDb) {
    let env = env(db).await;
    let (_, manager) = env.tenant_with("North", pb::Role::Manager).await;
    for which in CREATES {
        let id = format!("reused-{which:?}");
        let first = send(sender(&env, which, &manager).await, which, &id, 0)
            .await
            .unwrap();
        let objects = rows(&env, which.table()).await;
        let stored = rows(&env, "tenancy_idempotency").await;
        let status = send(sender(&env, which, &manager).await, which, &id, 1)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{which:?}: {status:?}");
        assert_eq!(reason(&status), "REQUEST_ID_REUSED", "{which:?}");
        assert_eq!(rows(&env, which.table()).await, objects, "{which:?}");
        assert_eq!(rows(&env, "tenancy_idempotency").await, stored);
        let again = send(sender(&env, which, &manager).await, which, &id, 0)
            .await
            .unwrap();
        assert_eq!((again.id, again.answer), (first.id, first.answer));
    }
}

async fn eight_identical_creates_at_once_make_one_object(db: TestDb) {
    let env = env(db).await;
    let (_, manager) = env.tenant_with("North", pb::Role::Manager).await;
    for which in CREATES {
        let id = format!("at-once-{which:?}");
        let before = rows(&env, which.table()).await;
        let mut calls = Vec::new();
        for _ in 0..8 {
            let (c, id) = (sender(&env, which, &manager).await, id.clone());
            calls.push(async move { send(c, which, &id, 0).await });
        }
        let answers = at_once(calls).await;
        assert_eq!(answers.len(), 8);
        assert!(
            answers
                .iter()
                .all(|x| (&x.id, &x.answer) == (&answers[0].id, &answers[0].answer)),
            "{which:?}: answers differ"
        );
        let secrets = answers.iter().filter(|x| !x.secret.is_empty()).count();
        let expected = usize::from(which == Create::ApiKey);
        assert_eq!(secrets, expected, "{which:?}: the secret is shown once");
        assert_eq!(rows(&env, which.table()).await, before + 1, "{which:?}");
    }
}

recovery_kit::engine_tests!(
    one_request_id_from_two_tenants_makes_two_objects,
    a_used_request_id_with_another_payload_is_refused_and_writes_nothing,
    eight_identical_creates_at_once_make_one_object,
);
