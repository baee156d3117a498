//! What the load examples share: a client the rules let book (screened,
//! waiver signed), made through protocols' API as a front desk would.

use recovery_kit::testing::Bearer;
use recovery_proto::protocols::v1 as protocols_pb;
use recovery_proto::protocols::v1::protocol_service_client::ProtocolServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Client `n`: created, screened (nothing that rules out a session) and
/// with a signed waiver; its id.
pub(crate) async fn screened_client(
    people: &mut ProtocolServiceClient<InterceptedService<Channel, Bearer>>,
    n: usize,
) -> anyhow::Result<String> {
    let id = people
        .create_client(protocols_pb::CreateClientRequest {
            client: Some(protocols_pb::Client {
                given_name: format!("Client {n}"),
                family_name: "Load".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .client
        .unwrap_or_default()
        .id;
    people
        .record_screening(protocols_pb::RecordScreeningRequest {
            screening: Some(protocols_pb::Screening {
                client_id: id.clone(),
                questionnaire_version: "2026-01".into(),
                answers: vec![protocols_pb::ScreeningAnswer {
                    condition: protocols_pb::Condition::Pregnancy as i32,
                    present: false,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;
    people
        .sign_waiver(protocols_pb::SignWaiverRequest {
            waiver: Some(protocols_pb::Waiver {
                client_id: id.clone(),
                version: "v1".into(),
                signer_name: format!("Client {n}"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;
    Ok(id)
}
