//! The catalog and the resources: updates by field mask (AIP-134).

use prost_types::FieldMask;
use recovery_kit::testing::TestDb;
use recovery_proto::booking::v1 as pb;
use tonic::Code;

use crate::support::{fields, mins, start};

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

async fn an_update_without_a_mask_changes_the_populated_fields(db: TestDb) {
    let studio = start(db).await;
    let mut manager = studio.client(&studio.manager).await;
    let update = |patch: pb::Treatment, update_mask| pb::UpdateTreatmentRequest {
        treatment: Some(pb::Treatment {
            id: studio.cryo_id.clone(),
            ..patch
        }),
        update_mask,
    };
    // No mask: the populated name changes, the policy set at creation stays.
    let renamed = manager
        .update_treatment(update(
            pb::Treatment {
                display_name: "Cryo, three minutes".into(),
                ..Default::default()
            },
            None,
        ))
        .await
        .unwrap()
        .into_inner()
        .treatment
        .unwrap();
    assert_eq!(renamed.display_name, "Cryo, three minutes");
    let policy = renamed.policy.unwrap();
    assert_eq!(policy.late_cancel_window, mins(120));
    // A mask names what changes, unset fields too: the policy's defaults.
    let reset = manager
        .update_treatment(update(pb::Treatment::default(), mask(&["policy"])))
        .await
        .unwrap()
        .into_inner()
        .treatment
        .unwrap();
    assert_eq!(reset.display_name, "Cryo, three minutes");
    assert_eq!(reset.policy.unwrap().late_cancel_window, mins(0));
    // An unknown path, and an update that changes nothing, are refused.
    let unknown = manager
        .update_treatment(update(pb::Treatment::default(), mask(&["tenant_id"])))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert_eq!(fields(&unknown), ["update_mask.paths[0]"]);
    let nothing = manager
        .update_treatment(update(pb::Treatment::default(), None))
        .await
        .unwrap_err();
    assert_eq!(fields(&nothing), ["update_mask"]);

    // Resources alike: only the turnover is sent, the rest stays.
    let resource = manager
        .update_resource(pb::UpdateResourceRequest {
            resource: Some(pb::Resource {
                id: studio.chamber_id.clone(),
                turnover: mins(5),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .resource
        .unwrap();
    assert_eq!(resource.turnover, mins(5));
    assert_eq!(resource.display_name, "Chamber 1");
    assert!(resource.precool.is_some(), "a chamber keeps its precool");
}

/// A treatment's turnover is at most 24 hours, like a resource's: the
/// allocation scan reaches back that far, and a longer turnover could hide a
/// booking from it (issue 11's code-reading list: up to 366 days was
/// accepted).
async fn a_treatment_turnover_over_a_day_is_refused(db: TestDb) {
    let studio = start(db).await;
    let mut manager = studio.client(&studio.manager).await;
    let long = pb::Treatment {
        display_name: "Long clean".into(),
        modality: pb::Modality::StretchTherapy as i32,
        turnover: Some(prost_types::Duration {
            seconds: 48 * 3600,
            nanos: 0,
        }),
        ..Default::default()
    };
    let created = manager
        .create_treatment(pb::CreateTreatmentRequest {
            treatment: Some(long.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(created.code(), Code::InvalidArgument);
    assert_eq!(fields(&created), ["treatment.turnover"]);
    let updated = manager
        .update_treatment(pb::UpdateTreatmentRequest {
            treatment: Some(pb::Treatment {
                id: studio.cryo_id.clone(),
                ..long
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["turnover".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(updated.code(), Code::InvalidArgument);
    assert_eq!(fields(&updated), ["treatment.turnover"]);
}

recovery_kit::engine_tests!(
    an_update_without_a_mask_changes_the_populated_fields,
    a_treatment_turnover_over_a_day_is_refused,
);
