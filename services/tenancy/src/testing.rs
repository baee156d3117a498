//! Test support for services that stand on tenancy: the platform (tenancy
//! on a test database, with its operator key) and studios made through
//! tenancy's own API, as an operator would make them.

use std::sync::Arc;

use recovery_kit::server::Services;
use recovery_kit::testing::{Bearer, TestServer};
use recovery_kit::time::Clock;
use recovery_kit::{Db, Role};
use recovery_proto::tenancy::v1 as pb;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use tonic::transport::Channel;

use crate::wire::role_to_wire;
use crate::{Bootstrap, Directory, Tenancy};

/// Tenancy on a fresh database, and the operator key it bootstrapped.
pub struct Platform {
    /// The tenancy service.
    pub tenancy: Arc<Tenancy>,
    /// The bootstrap operator key.
    pub operator: String,
}

impl Platform {
    /// Starts tenancy on `db` (which must be fresh) with a 30 s key cache.
    pub async fn start(db: &Db, clock: Arc<dyn Clock>) -> Platform {
        let tenancy = Tenancy::start(db.clone(), clock, std::time::Duration::from_secs(30))
            .await
            .expect("start tenancy");
        let Bootstrap::Generated(operator) = tenancy.bootstrap(None).await.expect("bootstrap")
        else {
            panic!("a fresh database bootstraps a generated operator key");
        };
        Platform { tenancy, operator }
    }

    /// Tenancy as the other services look locations up.
    pub fn directory(&self) -> Arc<dyn Directory> {
        Arc::clone(&self.tenancy) as Arc<dyn Directory>
    }

    /// A set of services with tenancy mounted, whose keys check every call.
    pub fn services(&self) -> Services {
        let mut services = Services::new(self.tenancy.authenticator());
        self.tenancy.mount(&mut services);
        services
    }

    /// A new key of the service role (no tenant's: the platform's own),
    /// made through tenancy's API on `channel`; its secret.
    pub async fn service_key(&self, channel: Channel, display_name: &str) -> String {
        TenancyServiceClient::with_interceptor(channel, Bearer::new(&self.operator))
            .create_api_key(pb::CreateApiKeyRequest {
                tenant_id: String::new(),
                role: pb::Role::Service as i32,
                display_name: display_name.into(),
                request_id: String::new(),
            })
            .await
            .expect("create service key")
            .into_inner()
            .secret
    }
}

/// What a service binary run apart (as in a distributed deployment) finds
/// on the other side: tenancy (and whatever else was mounted) on a test
/// server, a studio "Apart" and another tenant's, "Elsewhere", both in
/// Berlin.
pub struct Apart {
    /// The server the binary reaches tenancy (and its other peers) on.
    pub server: TestServer,
    /// The studio the test works in, with a key for each role asked for.
    pub studio: Studio,
    /// Another tenant's studio, with a manager key: its location is not
    /// the first studio's to use.
    pub other: Studio,
}

impl Apart {
    /// Serves `services` (the platform's, with anything else mounted) and
    /// makes the two studios through tenancy's API.
    pub async fn serve(platform: &Platform, services: Services, roles: &[Role]) -> Apart {
        let server = TestServer::start(services).await;
        let studio = Studio::create(
            server.channel().await,
            &platform.operator,
            "Apart",
            "Europe/Berlin",
            roles,
        )
        .await;
        let other = Studio::create(
            server.channel().await,
            &platform.operator,
            "Elsewhere",
            "Europe/Berlin",
            &[Role::Manager],
        )
        .await;
        Apart {
            server,
            studio,
            other,
        }
    }

    /// The server's URL, for the binary's `--tenancy-url` and the like.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }
}

/// A tenant with one location and a key for each role asked for.
#[derive(Debug, Clone)]
pub struct Studio {
    /// The tenant.
    pub tenant_id: String,
    /// Its location, open every day 06:00-22:00.
    pub location_id: String,
    keys: Vec<(Role, String)>,
}

impl Studio {
    /// Makes, through the tenancy API with the operator key, a tenant
    /// `name`, a location in `time_zone` open every day 06:00-22:00, and a key
    /// for each of `roles`.
    pub async fn create(
        channel: Channel,
        operator: &str,
        name: &str,
        time_zone: &str,
        roles: &[Role],
    ) -> Studio {
        let mut op = TenancyServiceClient::with_interceptor(channel, Bearer::new(operator));
        let tenant_id = op
            .create_tenant(pb::CreateTenantRequest {
                tenant: Some(pb::Tenant {
                    display_name: name.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create tenant")
            .into_inner()
            .tenant
            .expect("tenant")
            .id;
        let location_id = op
            .create_location(pb::CreateLocationRequest {
                tenant_id: tenant_id.clone(),
                location: Some(pb::Location {
                    display_name: format!("{name} studio"),
                    time_zone: time_zone.into(),
                    weekly_hours: (1..=7)
                        .map(|day| pb::OpeningHours {
                            day,
                            open: "06:00".into(),
                            close: "22:00".into(),
                        })
                        .collect(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create location")
            .into_inner()
            .location
            .expect("location")
            .id;
        let mut keys = Vec::new();
        for &role in roles {
            let secret = op
                .create_api_key(pb::CreateApiKeyRequest {
                    tenant_id: tenant_id.clone(),
                    role: role_to_wire(role) as i32,
                    display_name: format!("{name} {role}"),
                    request_id: String::new(),
                })
                .await
                .expect("create api key")
                .into_inner()
                .secret;
            keys.push((role, secret));
        }
        Studio {
            tenant_id,
            location_id,
            keys,
        }
    }

    /// The key of `role`; panics if the studio was made without one.
    pub fn key(&self, role: Role) -> &str {
        match self.keys.iter().find(|(r, _)| *r == role) {
            Some((_, key)) => key,
            None => panic!("the studio has no {role} key"),
        }
    }
}
