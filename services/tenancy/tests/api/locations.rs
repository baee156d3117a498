//! Locations: created, read, listed and updated by their tenant; bad input
//! named field by field.

use jiff::SignedDuration;
use recovery_kit::events::Bus;
use recovery_kit::server::Shutdown;
use recovery_kit::testing::TestDb;
use recovery_kit::{Caller, Role};
use recovery_proto::tenancy::v1 as pb;
use recovery_tenancy::{Directory as _, Tenancy};
use tonic::Code;

use crate::support::{
    apply, berlin, client_of, code, create_key, create_location, env, fields, get_location, hours,
    key_request, location_count, new_location, serve, start, update,
};

async fn locations_are_created_read_listed_and_updated(db: TestDb) {
    let env = env(db).await;
    let (tenant_id, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    let mut m = env.client(&manager).await;
    // A manager names no tenant: their own is meant.
    let created = new_location(&mut m, berlin("Mitte")).await;
    assert_eq!(created.tenant_id, tenant_id);
    assert_eq!(created.time_zone, "Europe/Berlin");
    assert_eq!(created.weekly_hours.len(), 3);
    assert_eq!(created.closure_dates, ["2026-12-25"]);

    let got = get_location(&mut m, &created.id).await;
    assert_eq!(got, created);

    env.clock.advance(SignedDuration::from_mins(1));
    let rename = pb::Location {
        id: created.id.clone(),
        display_name: "Berlin Mitte".into(),
        time_zone: "ignored because the mask does not name it".into(),
        ..Default::default()
    };
    let updated = apply(&mut m, update(rename, Some(&["display_name"]))).await;
    assert_eq!(updated.display_name, "Berlin Mitte");
    assert_eq!(updated.time_zone, "Europe/Berlin");
    assert_eq!(updated.weekly_hours, created.weekly_hours);
    assert!(updated.update_time.unwrap().seconds > created.update_time.unwrap().seconds);

    let reread = get_location(&mut m, &created.id).await;
    assert_eq!(reread, updated);

    // New hours replace the old ones.
    let rehours = pb::Location {
        id: created.id.clone(),
        weekly_hours: vec![hours(pb::Weekday::Sunday, "09:00", "13:00")],
        ..Default::default()
    };
    let updated = apply(&mut m, update(rehours, Some(&["weekly_hours"]))).await;
    assert_eq!(updated.weekly_hours.len(), 1);
    assert_eq!(updated.closure_dates, ["2026-12-25"]);

    // Staff read locations but do not change them.
    let staff = create_key(&mut m, key_request("", pb::Role::Staff, "tablet"))
        .await
        .secret;
    let mut s = env.client(&staff).await;
    assert_eq!(location_count(&mut s, "").await, 1);
    let denied = s.create_location(create_location("", berlin("Nope"), ""));
    assert_eq!(code(denied.await), Code::PermissionDenied);
    assert_eq!(location_count(&mut s, "").await, 1);
}

async fn bad_input_names_every_field_and_changes_nothing(db: TestDb) {
    let env = env(db).await;
    let (tenant_id, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    let mut m = env.client(&manager).await;
    let bad = pb::Location {
        display_name: "   ".into(),
        time_zone: "Mars/Olympus_Mons".into(),
        weekly_hours: vec![
            hours(pb::Weekday::Monday, "06:00", "12:00"),
            hours(pb::Weekday::Monday, "11:00", "13:00"),
            hours(pb::Weekday::Tuesday, "18:00", "07:00"),
        ],
        closure_dates: vec!["2026-13-01".into()],
        ..Default::default()
    };
    let status = m
        .create_location(create_location("", bad, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&status),
        [
            "location.display_name",
            "location.time_zone",
            "location.weekly_hours[1]",
            "location.weekly_hours[2].close",
            "location.closure_dates[0]",
        ]
    );
    assert_eq!(location_count(&mut m, &tenant_id).await, 0);

    let created = new_location(&mut m, berlin("Mitte")).await;
    let patch = pb::Location {
        id: created.id.clone(),
        display_name: "Renamed".into(),
        time_zone: "Not/AZone".into(),
        ..Default::default()
    };
    let status = m
        .update_location(update(
            patch,
            Some(&["display_name", "time_zone", "tenant_id"]),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&status),
        ["location.time_zone", "update_mask.paths[2]"]
    );
    let unchanged = get_location(&mut m, &created.id).await;
    assert_eq!(
        unchanged.display_name, "Mitte",
        "a refused update writes nothing"
    );

    let status = m
        .list_locations(pb::ListLocationsRequest {
            tenant_id: String::new(),
            page_size: -1,
            page_token: "garbage".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["page_size", "page_token"]);

    let status = m
        .get_location(pb::GetLocationRequest { id: "42".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["id"]);
}

async fn an_update_without_a_mask_changes_the_fields_it_fills_in(db: TestDb) {
    let env = env(db).await;
    let (_, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    let mut m = env.client(&manager).await;
    let created = new_location(&mut m, berlin("Mitte")).await;
    let patch = pb::Location {
        id: created.id.clone(),
        time_zone: "Europe/Vienna".into(),
        closure_dates: vec!["2026-12-31".into()],
        ..Default::default()
    };
    let updated = apply(&mut m, update(patch.clone(), None)).await;
    assert_eq!(updated.display_name, "Mitte");
    assert_eq!(updated.time_zone, "Europe/Vienna");
    assert_eq!(updated.weekly_hours, created.weekly_hours);
    assert_eq!(updated.closure_dates, ["2026-12-31"]);

    // "*" names every field: an empty name is then refused.
    let status = m
        .update_location(update(patch, Some(&["*"])))
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["location.display_name"]);
    // A patch that fills in nothing changes nothing.
    let empty = pb::Location {
        id: created.id.clone(),
        ..Default::default()
    };
    let status = m.update_location(update(empty, None)).await.unwrap_err();
    assert_eq!(fields(&status), ["update_mask"]);
    assert_eq!(get_location(&mut m, &created.id).await, updated);
}

/// The locations other services look up are kept, and a change reaches
/// them at once: in the process that made it, and on another replica of
/// the same database that shares its bus (as Redis shares it across
/// replicas). Another tenant's caller is refused a kept location too.
async fn a_location_change_reaches_other_services_lookups_at_once(db: TestDb) {
    let env = env(db).await;
    let (tenant_id, manager) = env.tenant_with("Studio", pb::Role::Manager).await;
    let (rival_id, _) = env.tenant_with("Rival", pb::Role::Manager).await;
    let here = start(&env.db, env.clock.clone()).await;
    let there = start(&env.db, env.clock.clone()).await;
    let bus = Bus::default();
    here.share_revocations(&bus, Shutdown::never());
    there.share_revocations(&bus, Shutdown::never());
    let server = serve(&here).await;
    let mut m = client_of(&server, &manager).await;
    let location = new_location(&mut m, berlin("Mitte")).await;
    let caller = |tenant: &str| Caller {
        tenant_id: Some(tenant.to_owned()),
        role: Role::Manager,
        key_id: "key".into(),
    };
    let (ours, rivals) = (caller(&tenant_id), caller(&rival_id));
    let name = async |tenancy: &Tenancy| {
        tenancy
            .location(&ours, &location.id, "location_id")
            .await
            .unwrap()
            .display_name
    };
    assert_eq!(name(&here).await, "Mitte");
    assert_eq!(name(&there).await, "Mitte");
    let hidden = there.location(&rivals, &location.id, "location_id").await;
    assert!(
        matches!(hidden, Err(recovery_kit::Error::NotFound { .. })),
        "{hidden:?}"
    );

    let renamed = pb::Location {
        id: location.id.clone(),
        display_name: "Mitte (new hours)".into(),
        ..Default::default()
    };
    apply(&mut m, update(renamed, Some(&["display_name"]))).await;
    assert_eq!(
        name(&here).await,
        "Mitte (new hours)",
        "in process: at once"
    );
    // The other replica: as soon as the event arrives (well inside the
    // 30 s the cache would keep it without one).
    let began = std::time::Instant::now();
    while name(&there).await != "Mitte (new hours)" {
        assert!(
            began.elapsed() < std::time::Duration::from_secs(5),
            "the other replica still answers the old location"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // A process that shares no bus learns its own changes at once.
    let alone = start(&env.db, env.clock.clone()).await;
    let server = serve(&alone).await;
    let mut m = client_of(&server, &manager).await;
    assert_eq!(name(&alone).await, "Mitte (new hours)");
    let renamed = pb::Location {
        id: location.id.clone(),
        display_name: "Mitte (closed Mondays)".into(),
        ..Default::default()
    };
    apply(&mut m, update(renamed, Some(&["display_name"]))).await;
    assert_eq!(name(&alone).await, "Mitte (closed Mondays)");
}

recovery_kit::engine_tests!(
    a_location_change_reaches_other_services_lookups_at_once,
    locations_are_created_read_listed_and_updated,
    bad_input_names_every_field_and_changes_nothing,
    an_update_without_a_mask_changes_the_fields_it_fills_in,
);
