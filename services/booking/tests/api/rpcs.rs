//! The catalog RPCs no story covered (archiving a treatment, listing and
//! updating resources, removing a blackout), each checked by what a desk
//! would see next; and every call of booking under another tenant's key.

use prost_types::FieldMask;
use recovery_kit::Role;
use recovery_kit::testing::TestDb;
use recovery_proto::booking::v1 as pb;
use tonic::{Code, Status};

use crate::support::{Studio, TEN_AM, at, fields, mins, refused, start, t};

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

async fn treatment(studio: &Studio, id: &str) -> pb::Treatment {
    studio
        .client(&studio.desk)
        .await
        .get_treatment(pb::GetTreatmentRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .treatment
        .unwrap()
}

async fn resource(studio: &Studio, id: &str) -> pb::Resource {
    studio
        .client(&studio.desk)
        .await
        .get_resource(pb::GetResourceRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .resource
        .unwrap()
}

/// The treatments' names the desk lists, archived ones too when asked.
async fn treatment_names(studio: &Studio, include_archived: bool) -> Vec<String> {
    studio
        .client(&studio.desk)
        .await
        .list_treatments(pb::ListTreatmentsRequest {
            include_archived,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .treatments
        .into_iter()
        .map(|t| t.display_name)
        .collect()
}

async fn an_archived_treatment_takes_no_new_bookings_and_keeps_its_old_ones(db: TestDb) {
    let studio = start(db).await;
    let booked = studio.book("ana", TEN_AM).await.unwrap();
    let mut manager = studio.client(&studio.manager).await;
    let archive = pb::ArchiveTreatmentRequest {
        id: studio.cryo_id.clone(),
    };
    // The desk may not archive.
    let denied = studio
        .client(&studio.desk)
        .await
        .archive_treatment(archive.clone())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        treatment(&studio, &studio.cryo_id)
            .await
            .archive_time
            .is_none()
    );
    assert_eq!(treatment_names(&studio, false).await, ["Whole-body cryo"]);

    studio.clock.advance(jiff::SignedDuration::from_mins(1));
    let archived = manager
        .archive_treatment(archive.clone())
        .await
        .unwrap()
        .into_inner()
        .treatment
        .unwrap();
    assert_eq!(archived.archive_time, t("2026-12-01T10:01:00Z"));
    // Archiving again changes nothing, not even the time.
    studio.clock.advance(jiff::SignedDuration::from_mins(1));
    let again = manager
        .archive_treatment(archive)
        .await
        .unwrap()
        .into_inner()
        .treatment
        .unwrap();
    assert_eq!(again, archived);
    assert_eq!(treatment(&studio, &studio.cryo_id).await, archived);
    // Lists leave it out unless asked.
    assert!(treatment_names(&studio, false).await.is_empty());
    assert_eq!(treatment_names(&studio, true).await, ["Whole-body cryo"]);
    // A new booking is refused and writes nothing; the old one stands.
    let bookings = studio.rows("bookings").await;
    let allocations = studio.rows("allocations").await;
    refused(
        studio.book("bo", "2026-12-02T16:00:00Z").await,
        "TREATMENT_ARCHIVED",
    );
    assert_eq!(studio.rows("bookings").await, bookings);
    assert_eq!(studio.rows("allocations").await, allocations);
    let kept = studio
        .client(&studio.desk)
        .await
        .get_booking(pb::GetBookingRequest { id: booked.id })
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(kept.status(), pb::BookingStatus::Booked);
    // An unknown treatment is not found.
    let missing = manager
        .archive_treatment(pb::ArchiveTreatmentRequest {
            id: recovery_kit::ids::new_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
}

async fn a_treatment_update_changes_what_the_next_booking_meets(db: TestDb) {
    let studio = start(db).await;
    let mut manager = studio.client(&studio.manager).await;
    // Without notice, tonight (10 hours ahead) is bookable.
    let tonight = "2026-12-01T20:00:00Z";
    assert!(
        studio
            .slots(tonight, "2026-12-01T20:10:00Z")
            .await
            .contains(&at(tonight))
    );
    let before = treatment(&studio, &studio.cryo_id).await;
    let updated = studio
        .set_cryo_policy(pb::BookingPolicy {
            min_notice: mins(24 * 60),
            late_cancel_window: mins(120),
            ..Default::default()
        })
        .await;
    assert_eq!(updated.policy.as_ref().unwrap().min_notice, mins(24 * 60));
    assert_eq!(updated.display_name, before.display_name);
    assert_eq!(treatment(&studio, &studio.cryo_id).await, updated);
    // Now tonight is too short notice; tomorrow at ten still fine.
    let bookings = studio.rows("bookings").await;
    refused(studio.book("ana", tonight).await, "TOO_SHORT_NOTICE");
    assert_eq!(studio.rows("bookings").await, bookings);
    studio.book("ana", TEN_AM).await.unwrap();

    // A bad update is refused and changes nothing.
    let bad = manager
        .update_treatment(pb::UpdateTreatmentRequest {
            treatment: Some(pb::Treatment {
                id: studio.cryo_id.clone(),
                display_name: String::new(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert_eq!(fields(&bad), ["treatment.display_name"]);
    assert_eq!(treatment(&studio, &studio.cryo_id).await, updated);
    // The desk may not update.
    let denied = studio
        .client(&studio.desk)
        .await
        .update_treatment(pb::UpdateTreatmentRequest {
            treatment: Some(pb::Treatment {
                id: studio.cryo_id.clone(),
                display_name: "Desk's cryo".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert_eq!(treatment(&studio, &studio.cryo_id).await, updated);
}

async fn resources_are_listed_by_location_in_pages(db: TestDb) {
    let studio = start(db).await;
    let second = studio.chamber("Chamber 2").await;
    let third = studio.chamber("Chamber 3").await;
    let mut desk = studio.client(&studio.desk).await;
    let list = |page_token: String| pb::ListResourcesRequest {
        location_id: studio.location_id.clone(),
        page_size: 2,
        page_token,
    };
    let first = desk
        .list_resources(list(String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.resources.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let rest = desk
        .list_resources(list(first.next_page_token.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.resources.len(), 1);
    assert!(rest.next_page_token.is_empty());
    let mut ids: Vec<String> = first
        .resources
        .iter()
        .chain(&rest.resources)
        .map(|r| r.id.clone())
        .collect();
    ids.sort();
    let mut made = vec![studio.chamber_id.clone(), second, third];
    made.sort();
    assert_eq!(ids, made, "every resource once over the pages");
    let whole = desk
        .list_resources(pb::ListResourcesRequest {
            location_id: studio.location_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(whole.resources.len(), 3);
    assert_eq!(
        whole.resources.iter().find(|r| r.id == studio.chamber_id),
        Some(&resource(&studio, &studio.chamber_id).await)
    );
    // An unknown location is not found; none named is invalid.
    let unknown = desk
        .list_resources(pb::ListResourcesRequest {
            location_id: recovery_kit::ids::new_id(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let unnamed = desk
        .list_resources(pb::ListResourcesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unnamed.code(), Code::InvalidArgument, "{unnamed:?}");
    assert_eq!(fields(&unnamed), ["location_id"]);
}

async fn a_resource_update_changes_what_search_offers(db: TestDb) {
    let studio = start(db).await;
    studio.book("ana", TEN_AM).await.unwrap();
    let (from, to) = ("2026-12-02T14:45:00Z", "2026-12-02T15:30:00Z");
    // Without turnover the clients before and after may be back to back.
    let slots = studio.slots(from, to).await;
    assert!(slots.contains(&at("2026-12-02T14:57:00Z")), "{slots:?}");
    assert!(slots.contains(&at("2026-12-02T15:03:00Z")), "{slots:?}");
    let mut manager = studio.client(&studio.manager).await;
    let updated = manager
        .update_resource(pb::UpdateResourceRequest {
            resource: Some(pb::Resource {
                id: studio.chamber_id.clone(),
                display_name: "North chamber".into(),
                turnover: mins(5),
                ..Default::default()
            }),
            update_mask: mask(&["display_name", "turnover"]),
        })
        .await
        .unwrap()
        .into_inner()
        .resource
        .unwrap();
    assert_eq!(updated.display_name, "North chamber");
    assert_eq!(updated.turnover, mins(5));
    assert_eq!(resource(&studio, &studio.chamber_id).await, updated);
    // Five minutes to turn the chamber over, on the three-minute grid: the
    // session before ends by 09:55 (starts 09:51), the next starts 10:09.
    let slots = studio.slots(from, to).await;
    let around: Vec<_> = slots
        .iter()
        .filter(|s| (at("2026-12-02T14:51:00Z")..=at("2026-12-02T15:09:00Z")).contains(*s))
        .collect();
    assert_eq!(
        around,
        [&at("2026-12-02T14:51:00Z"), &at("2026-12-02T15:09:00Z")],
        "{slots:?}"
    );
    // A bad update is refused and changes nothing.
    let bad = manager
        .update_resource(pb::UpdateResourceRequest {
            resource: Some(pb::Resource {
                id: studio.chamber_id.clone(),
                turnover: mins(48 * 60),
                ..Default::default()
            }),
            update_mask: mask(&["turnover"]),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert_eq!(fields(&bad), ["resource.turnover"]);
    assert_eq!(resource(&studio, &studio.chamber_id).await, updated);
}

async fn removing_a_blackout_reopens_the_chamber(db: TestDb) {
    let studio = start(db).await;
    let (from, to) = ("2026-12-03T11:00:00Z", "2026-12-04T03:00:00Z");
    let open = studio.slots(from, to).await;
    assert!(
        open.len() > 100,
        "the control search finds the day open: {open:?}"
    );
    let mut manager = studio.client(&studio.manager).await;
    let with = manager
        .add_blackout(pb::AddBlackoutRequest {
            resource_id: studio.chamber_id.clone(),
            blackout: Some(pb::Blackout {
                start_time: t(from),
                end_time: t(to),
                reason: "compressor service".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .resource
        .unwrap();
    assert_eq!(with.blackouts.len(), 1);
    let blackout_id = with.blackouts[0].id.clone();
    assert!(studio.slots(from, to).await.is_empty());
    // Another tenant cannot remove it.
    let rival = rival(&studio).await;
    let remove = pb::RemoveBlackoutRequest {
        resource_id: studio.chamber_id.clone(),
        blackout_id: blackout_id.clone(),
    };
    let foreign = studio
        .client(&rival)
        .await
        .remove_blackout(remove.clone())
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound, "{foreign:?}");
    assert!(studio.slots(from, to).await.is_empty());
    // Removed: the day is as open as before.
    let without = manager
        .remove_blackout(remove.clone())
        .await
        .unwrap()
        .into_inner()
        .resource
        .unwrap();
    assert!(without.blackouts.is_empty());
    assert_eq!(studio.slots(from, to).await, open);
    // It is gone: removing it again is not found.
    let gone = manager.remove_blackout(remove).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
}

/// A manager key of a second tenant in the same server.
async fn rival(studio: &Studio) -> String {
    studio.rival().await.key(Role::Manager).to_owned()
}

fn not_found<T: std::fmt::Debug>(call: &str, result: Result<T, Status>) {
    let status = result.expect_err(call);
    assert_eq!(status.code(), Code::NotFound, "{call}: {status:?}");
}

async fn another_tenants_key_finds_nothing_and_changes_nothing(db: TestDb) {
    let studio = start(db).await;
    let booked = studio.book("ana", TEN_AM).await.unwrap();
    let ana = studio.person("ana").await;
    let with = studio
        .client(&studio.manager)
        .await
        .add_blackout(pb::AddBlackoutRequest {
            resource_id: studio.chamber_id.clone(),
            blackout: Some(pb::Blackout {
                start_time: t("2026-12-05T11:00:00Z"),
                end_time: t("2026-12-05T12:00:00Z"),
                reason: "service".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .resource
        .unwrap();
    let blackout_id = with.blackouts[0].id.clone();
    let get_booking = |id: String| pb::GetBookingRequest { id };
    let mut desk = studio.client(&studio.desk).await;
    let before = (
        treatment(&studio, &studio.cryo_id).await,
        resource(&studio, &studio.chamber_id).await,
        desk.get_booking(get_booking(booked.id.clone()))
            .await
            .unwrap()
            .into_inner(),
    );
    let tables = ["bookings", "allocations", "holds", "booking_outbox"];
    let mut rows = Vec::new();
    for table in tables {
        rows.push(studio.rows(table).await);
    }

    let mut rival = studio.client(&rival(&studio).await).await;
    let id = || booked.id.clone();
    not_found(
        "UpdateTreatment",
        rival
            .update_treatment(pb::UpdateTreatmentRequest {
                treatment: Some(pb::Treatment {
                    id: studio.cryo_id.clone(),
                    display_name: "Taken".into(),
                    ..Default::default()
                }),
                update_mask: None,
            })
            .await,
    );
    not_found(
        "ArchiveTreatment",
        rival
            .archive_treatment(pb::ArchiveTreatmentRequest {
                id: studio.cryo_id.clone(),
            })
            .await,
    );
    not_found(
        "ListResources",
        rival
            .list_resources(pb::ListResourcesRequest {
                location_id: studio.location_id.clone(),
                ..Default::default()
            })
            .await,
    );
    not_found(
        "UpdateResource",
        rival
            .update_resource(pb::UpdateResourceRequest {
                resource: Some(pb::Resource {
                    id: studio.chamber_id.clone(),
                    display_name: "Taken".into(),
                    ..Default::default()
                }),
                update_mask: None,
            })
            .await,
    );
    not_found(
        "AddBlackout",
        rival
            .add_blackout(pb::AddBlackoutRequest {
                resource_id: studio.chamber_id.clone(),
                blackout: Some(pb::Blackout {
                    start_time: t("2026-12-02T11:00:00Z"),
                    end_time: t("2026-12-03T03:00:00Z"),
                    reason: "sabotage".into(),
                    ..Default::default()
                }),
            })
            .await,
    );
    not_found(
        "RemoveBlackout",
        rival
            .remove_blackout(pb::RemoveBlackoutRequest {
                resource_id: studio.chamber_id.clone(),
                blackout_id,
            })
            .await,
    );
    not_found(
        "HoldSlot",
        rival
            .hold_slot(studio.hold_request(&ana, "2026-12-02T16:00:00Z"))
            .await,
    );
    not_found(
        "CreateBooking",
        rival
            .create_booking(pb::CreateBookingRequest {
                location_id: studio.location_id.clone(),
                treatment_id: studio.cryo_id.clone(),
                client_id: ana.clone(),
                start_time: t("2026-12-03T16:00:00Z"),
                ..Default::default()
            })
            .await,
    );
    not_found("GetBooking", rival.get_booking(get_booking(id())).await);
    not_found(
        "ListBookings by location",
        rival
            .list_bookings(pb::ListBookingsRequest {
                location_id: studio.location_id.clone(),
                day: "2026-12-02".into(),
                ..Default::default()
            })
            .await,
    );
    not_found(
        "RescheduleBooking",
        rival
            .reschedule_booking(pb::RescheduleBookingRequest {
                id: id(),
                start_time: t("2026-12-02T16:00:00Z"),
                resource_id: String::new(),
            })
            .await,
    );
    not_found(
        "CheckIn",
        rival.check_in(pb::CheckInRequest { id: id() }).await,
    );
    not_found(
        "StartSession",
        rival
            .start_session(pb::StartSessionRequest { id: id() })
            .await,
    );
    not_found(
        "CompleteSession",
        rival
            .complete_session(pb::CompleteSessionRequest {
                id: id(),
                soreness_before: Some(5),
                soreness_after: Some(2),
                notes: String::new(),
            })
            .await,
    );
    not_found(
        "MarkNoShow",
        rival.mark_no_show(pb::MarkNoShowRequest { id: id() }).await,
    );
    not_found(
        "CancelBooking",
        rival
            .cancel_booking(pb::CancelBookingRequest {
                id: id(),
                reason: String::new(),
            })
            .await,
    );
    not_found(
        "WatchSchedule",
        rival
            .watch_schedule(pb::WatchScheduleRequest {
                location_id: studio.location_id.clone(),
                day: "2026-12-02".into(),
            })
            .await,
    );
    // By client, the rival finds none of ana's bookings.
    let by_client = rival
        .list_bookings(pb::ListBookingsRequest {
            client_id: ana,
            ..Default::default()
        })
        .await;
    match by_client {
        Ok(listed) => assert!(listed.into_inner().bookings.is_empty()),
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
    }

    // Nothing changed.
    let after = (
        treatment(&studio, &studio.cryo_id).await,
        resource(&studio, &studio.chamber_id).await,
        desk.get_booking(get_booking(booked.id.clone()))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(after, before);
    for (table, before) in tables.iter().zip(rows) {
        assert_eq!(studio.rows(table).await, before, "{table}");
    }
}

recovery_kit::engine_tests!(
    an_archived_treatment_takes_no_new_bookings_and_keeps_its_old_ones,
    a_treatment_update_changes_what_the_next_booking_meets,
    resources_are_listed_by_location_in_pages,
    a_resource_update_changes_what_search_offers,
    removing_a_blackout_reopens_the_chamber,
    another_tenants_key_finds_nothing_and_changes_nothing,
);
