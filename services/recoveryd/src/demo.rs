//! `--demo`: a studio to try the day on. Tenancy and booking seed their
//! base in process (the tenant, its location, a manager key and a cryo
//! treatment); the rest is made the way a studio would make it, through the
//! server's own gRPC API as the demo manager: a stretch room and a
//! therapist, a stretch treatment that needs a massage gun with the fork
//! head, a compression treatment, and in fleet two cryo chambers, two guns
//! and a compression system (registered once: fleet tells booking, which
//! offers the chambers and the compression system as resources), and one
//! screened client with a signed waiver. A demo hub reports the chambers'
//! temperature and the batteries every 60 s, so the devices stay online.
//! Every create carries a request id, so a restart finds what it made
//! before.

use std::net::SocketAddr;

use anyhow::Context as _;
use recovery_proto::booking::v1 as booking;
use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
use recovery_proto::fleet::v1 as fleet;
use recovery_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use recovery_proto::protocols::v1 as protocols;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use recovery_proto::tenancy::v1 as tenancy;
use recovery_proto::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use tonic::transport::Channel;

/// What the demo made, printed for the person trying it.
pub(crate) struct Studio {
    pub(crate) tenant_id: String,
    pub(crate) location_id: String,
    pub(crate) manager_key: String,
    pub(crate) cryo_treatment_id: String,
    pub(crate) chamber_ids: Vec<String>,
    pub(crate) stretch_treatment_id: String,
    pub(crate) compression_treatment_id: String,
    pub(crate) gun_ids: Vec<String>,
    pub(crate) compression_system_id: String,
    pub(crate) client_id: String,
}

impl Studio {
    /// The lines `recoveryd --demo` prints.
    pub(crate) fn describe(&self) -> String {
        format!(
            "demo studio: tenant {} location {}\n\
             demo cryo treatment {} chambers {}\n\
             demo stretch treatment {} (needs a gun with the fork head) guns {}\n\
             demo compression treatment {} compression system {}\n\
             demo client {} (screened, waiver signed)\n\
             a demo hub reports the chambers' temperature and the batteries every 60 s\n\
             demo manager key: {}",
            self.tenant_id,
            self.location_id,
            self.cryo_treatment_id,
            self.chamber_ids.join(" "),
            self.stretch_treatment_id,
            self.gun_ids.join(" "),
            self.compression_treatment_id,
            self.compression_system_id,
            self.client_id,
            self.manager_key,
        )
    }
}

/// A request carrying the demo manager's key.
fn signed<T>(key: &str, message: T) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse()?);
    Ok(request)
}

/// The parts tenancy and booking seeded in process.
pub(crate) struct Base {
    pub(crate) tenant_id: String,
    pub(crate) location_id: String,
    pub(crate) manager_key: String,
    pub(crate) cryo_treatment_id: String,
}

/// Seeds the rest through the server at `addr`.
pub(crate) async fn seed(addr: SocketAddr, base: Base) -> anyhow::Result<Studio> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .context("connect to the demo server")?;
    let key = base.manager_key.as_str();
    let location = base.location_id.as_str();
    let (stretch, compression) = catalog(&channel, key, location).await?;
    let mut gun_ids = devices(&channel, key, location).await?;
    let compression_system_id = gun_ids.pop().unwrap_or_default();
    let chamber_ids = chambers(&channel, key, location).await?;
    let client_id = client(channel, key).await?;
    Ok(Studio {
        tenant_id: base.tenant_id,
        location_id: base.location_id,
        manager_key: base.manager_key,
        cryo_treatment_id: base.cryo_treatment_id,
        chamber_ids,
        stretch_treatment_id: stretch,
        compression_treatment_id: compression,
        gun_ids,
        compression_system_id,
        client_id,
    })
}

/// Booking: where stretch and compression happen, and their treatments
/// (ids of the stretch and the compression treatment).
async fn catalog(channel: &Channel, key: &str, location: &str) -> anyhow::Result<(String, String)> {
    let mut desk = BookingServiceClient::new(channel.clone());
    for (request_id, name, kind) in [
        (
            "demo-stretch-room",
            "Stretch room",
            booking::ResourceKind::Room,
        ),
        (
            "demo-therapist",
            "Mia (therapist)",
            booking::ResourceKind::Therapist,
        ),
    ] {
        desk.create_resource(signed(
            key,
            booking::CreateResourceRequest {
                resource: Some(booking::Resource {
                    location_id: location.to_owned(),
                    display_name: name.to_owned(),
                    kind: kind as i32,
                    ..Default::default()
                }),
                request_id: request_id.to_owned(),
            },
        )?)
        .await
        .with_context(|| format!("demo resource {name}"))?;
    }
    let treatment =
        |request_id: &str, treatment: booking::Treatment| booking::CreateTreatmentRequest {
            treatment: Some(treatment),
            request_id: request_id.to_owned(),
        };
    let stretch = desk
        .create_treatment(signed(
            key,
            treatment(
                "demo-stretch",
                booking::Treatment {
                    display_name: "Assisted stretch".into(),
                    modality: booking::Modality::StretchTherapy as i32,
                    duration: Some(prost_types::Duration {
                        seconds: 30 * 60,
                        nanos: 0,
                    }),
                    device_needs: vec![booking::DeviceNeed {
                        kind: fleet::DeviceKind::PercussionMassager as i32,
                        attachment: fleet::Attachment::Fork as i32,
                        min_battery_percent: 20,
                    }],
                    ..Default::default()
                },
            ),
        )?)
        .await
        .context("demo stretch treatment")?
        .into_inner()
        .treatment
        .unwrap_or_default();
    let compression = desk
        .create_treatment(signed(
            key,
            treatment(
                "demo-compression",
                booking::Treatment {
                    display_name: "Compression boots".into(),
                    modality: booking::Modality::Compression as i32,
                    duration: Some(prost_types::Duration {
                        seconds: 30 * 60,
                        nanos: 0,
                    }),
                    needs: vec![booking::ResourceNeed {
                        kind: booking::ResourceKind::CompressionStation as i32,
                        count: 1,
                    }],
                    device_needs: vec![booking::DeviceNeed {
                        kind: fleet::DeviceKind::CompressionSystem as i32,
                        attachment: fleet::Attachment::Unspecified as i32,
                        min_battery_percent: 0,
                    }],
                    ..Default::default()
                },
            ),
        )?)
        .await
        .context("demo compression treatment")?
        .into_inner()
        .treatment
        .unwrap_or_default();
    Ok((stretch.id, compression.id))
}

/// The demo's devices with their request ids: two chambers, two guns and a
/// compression system.
fn demo_devices(location: &str) -> Vec<(&'static str, fleet::Device)> {
    let gun = |n: u32| fleet::Device {
        location_id: location.to_owned(),
        kind: fleet::DeviceKind::PercussionMassager as i32,
        display_name: format!("Gun {n}"),
        serial_number: format!("DEMO-HV-{n:04}"),
        model: "Hypervolt 2 Pro".into(),
        spec: Some(fleet::device::Spec::Percussion(fleet::PercussionSpec {
            speed_levels: 5,
            attachments: vec![
                fleet::Attachment::Ball as i32,
                fleet::Attachment::Fork as i32,
                fleet::Attachment::Cushion as i32,
            ],
        })),
        ..Default::default()
    };
    let boots = fleet::Device {
        location_id: location.to_owned(),
        kind: fleet::DeviceKind::CompressionSystem as i32,
        display_name: "Boots".into(),
        serial_number: "DEMO-NT-0001".into(),
        model: "NormaTec 3".into(),
        spec: Some(fleet::device::Spec::Compression(fleet::CompressionSpec {
            pressure_levels: 7,
            attachments: vec![fleet::Attachment::Legs as i32],
            zones: 5,
        })),
        ..Default::default()
    };
    let chamber = |n: u32| fleet::Device {
        location_id: location.to_owned(),
        kind: fleet::DeviceKind::CryoChamber as i32,
        display_name: format!("Chamber {n}"),
        serial_number: format!("DEMO-CH-{n:04}"),
        model: "Arctic 3".into(),
        spec: Some(fleet::device::Spec::CryoChamber(fleet::CryoChamberSpec {
            target_temperature_celsius: -110.0,
            ready_threshold_celsius: -90.0,
        })),
        ..Default::default()
    };
    vec![
        ("demo-chamber-1", chamber(1)),
        ("demo-chamber-2", chamber(2)),
        ("demo-gun-1", gun(1)),
        ("demo-gun-2", gun(2)),
        ("demo-boots", boots),
    ]
}

/// Fleet: two chambers, two guns and a compression system (the ids of the
/// guns and the compression system, in that order), their hub's first
/// readings, and the demo hub that keeps reporting.
async fn devices(channel: &Channel, key: &str, location: &str) -> anyhow::Result<Vec<String>> {
    let mut floor = FleetServiceClient::new(channel.clone());
    let mut device_ids = Vec::new();
    let mut chamber_devices = Vec::new();
    for (request_id, device) in demo_devices(location) {
        let name = device.display_name.clone();
        let registered = floor
            .register_device(signed(
                key,
                fleet::RegisterDeviceRequest {
                    device: Some(device),
                    request_id: request_id.to_owned(),
                },
            )?)
            .await
            .with_context(|| format!("demo device {name}"))?
            .into_inner()
            .device
            .unwrap_or_default();
        if registered.kind == fleet::DeviceKind::CryoChamber as i32 {
            chamber_devices.push(registered.id);
        } else {
            device_ids.push(registered.id);
        }
    }
    let hub_key = TenancyServiceClient::new(channel.clone())
        .create_api_key(signed(
            key,
            tenancy::CreateApiKeyRequest {
                role: tenancy::Role::Device as i32,
                display_name: "demo hub".into(),
                ..Default::default()
            },
        )?)
        .await
        .context("demo hub key")?
        .into_inner()
        .secret;
    let readings: Vec<fleet::ReportTelemetryRequest> = device_ids
        .iter()
        .map(|id| fleet::TelemetryReading {
            device_id: id.clone(),
            battery_percent: Some(90),
            ..Default::default()
        })
        .chain(chamber_devices.iter().map(|id| fleet::TelemetryReading {
            device_id: id.clone(),
            temperature_celsius: Some(-110.0),
            ..Default::default()
        }))
        .map(|reading| fleet::ReportTelemetryRequest {
            reading: Some(reading),
        })
        .collect();
    floor
        .report_telemetry(signed(&hub_key, tokio_stream::iter(readings.clone()))?)
        .await
        .context("demo hub readings")?;
    tokio::spawn(hub(floor, hub_key, readings));
    Ok(device_ids)
}

/// The demo hub: the same readings every 60 s, so no device of the demo
/// goes offline for want of a heartbeat.
async fn hub(
    mut floor: FleetServiceClient<Channel>,
    key: String,
    readings: Vec<fleet::ReportTelemetryRequest>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        let sent = match signed(&key, tokio_stream::iter(readings.clone())) {
            Ok(request) => floor.report_telemetry(request).await.map(|_| ()),
            Err(error) => {
                tracing::warn!(error = %error, "demo hub key unusable");
                return;
            }
        };
        if let Err(status) = sent {
            tracing::warn!(code = ?status.code(), "demo hub reading refused");
        }
    }
}

/// The chambers booking offers once fleet told it about them (fleet's
/// outbox relay runs in the background): their resource ids, waited for
/// up to 10 s.
async fn chambers(channel: &Channel, key: &str, location: &str) -> anyhow::Result<Vec<String>> {
    let mut desk = BookingServiceClient::new(channel.clone());
    for _ in 0..100 {
        let resources = desk
            .list_resources(signed(
                key,
                booking::ListResourcesRequest {
                    location_id: location.to_owned(),
                    ..Default::default()
                },
            )?)
            .await
            .context("demo chambers")?
            .into_inner()
            .resources;
        let chambers: Vec<String> = resources
            .into_iter()
            .filter(|r| {
                r.kind == booking::ResourceKind::CryoChamber as i32 && !r.device_id.is_empty()
            })
            .map(|r| r.id)
            .collect();
        if chambers.len() >= 2 {
            return Ok(chambers);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("booking did not hear of the demo chambers from fleet within 10 s")
}

/// Protocols: one client ready to book: screened, waiver signed.
async fn client(channel: Channel, key: &str) -> anyhow::Result<String> {
    let mut records = ProtocolServiceClient::new(channel);
    let client = records
        .create_client(signed(
            key,
            protocols::CreateClientRequest {
                client: Some(protocols::Client {
                    given_name: "Demo".into(),
                    family_name: "Runner".into(),
                    email: "runner@example.com".into(),
                    date_of_birth: "1992-05-01".into(),
                    ..Default::default()
                }),
                request_id: "demo-client".into(),
            },
        )?)
        .await
        .context("demo client")?
        .into_inner()
        .client
        .unwrap_or_default();
    records
        .record_screening(signed(
            key,
            protocols::RecordScreeningRequest {
                screening: Some(protocols::Screening {
                    client_id: client.id.clone(),
                    questionnaire_version: "demo".into(),
                    answers: [
                        protocols::Condition::Pregnancy,
                        protocols::Condition::Pacemaker,
                        protocols::Condition::Raynauds,
                        protocols::Condition::ColdUrticaria,
                    ]
                    .into_iter()
                    .map(|condition| protocols::ScreeningAnswer {
                        condition: condition as i32,
                        present: false,
                        ..Default::default()
                    })
                    .collect(),
                    blood_pressure: Some(protocols::BloodPressure {
                        systolic: 118,
                        diastolic: 76,
                        measure_time: None,
                    }),
                    ..Default::default()
                }),
                request_id: "demo-screening".into(),
            },
        )?)
        .await
        .context("demo screening")?;
    records
        .sign_waiver(signed(
            key,
            protocols::SignWaiverRequest {
                waiver: Some(protocols::Waiver {
                    client_id: client.id.clone(),
                    version: "demo".into(),
                    signer_name: "Demo Runner".into(),
                    ..Default::default()
                }),
                request_id: "demo-waiver".into(),
            },
        )?)
        .await
        .context("demo waiver")?;
    Ok(client.id)
}
