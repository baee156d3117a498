//! The catalog (treatments) and the resources of each location.

use jiff::SignedDuration;
use recovery_kit::idempotency::Key;
use recovery_kit::ids::{new_id, parse_id};
use recovery_kit::page::Page;
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error, Violations};
use recovery_proto::booking::v1 as pb;

use crate::model::{self, MAX_SESSION, duration, kind, modality, text};
use crate::store::{self, Treatment};
use crate::{Bookings, IDEMPOTENCY_TABLE, MANAGERS};

/// What `UpdateTreatment` may change.
const UPDATABLE: [&str; 6] = [
    "display_name",
    "duration",
    "needs",
    "slot_step",
    "turnover",
    "policy",
];

/// The validated, storable part of a treatment.
struct TreatmentFields {
    duration: SignedDuration,
    needs: Vec<(String, u32)>,
    step: SignedDuration,
    turnover: SignedDuration,
    min_notice: SignedDuration,
    max_days_ahead: i64,
    late_cancel: SignedDuration,
    max_per_day: i64,
}

fn default_duration(modality: &str) -> Option<SignedDuration> {
    Some(SignedDuration::from_mins(match modality {
        "whole_body_cryotherapy" => 3,
        "local_cryotherapy" => 5,
        "percussion_massage" => 15,
        "stretch_therapy" | "compression" | "infrared_sauna" => 30,
        _ => return None,
    }))
}

/// Validates a wire treatment; `modality` is its stored modality name.
fn treatment_fields(
    t: &pb::Treatment,
    modality: Option<&str>,
    v: &mut Violations,
) -> TreatmentFields {
    let length = match (t.duration.as_ref(), modality.and_then(default_duration)) {
        (None, None) => {
            if modality.is_some() {
                v.add("treatment.duration", "required for this modality");
            }
            SignedDuration::from_mins(30)
        }
        (given, default) => v
            .check(
                "treatment.duration",
                duration(given, default.unwrap_or_default()).and_then(|d| {
                    if d.is_zero() || d > MAX_SESSION {
                        Err("must be between 1 second and 8 hours".to_owned())
                    } else {
                        Ok(d)
                    }
                }),
            )
            .unwrap_or(SignedDuration::from_mins(30)),
    };
    let needs = model::needs(&t.needs, modality, "treatment.needs", v);
    let step = v
        .check(
            "treatment.slot_step",
            duration(t.slot_step.as_ref(), length).and_then(|d| {
                if d < SignedDuration::from_mins(1) {
                    Err("at least one minute".to_owned())
                } else {
                    Ok(d)
                }
            }),
        )
        .unwrap_or(length);
    let turnover = v
        .check(
            "treatment.turnover",
            duration(t.turnover.as_ref(), SignedDuration::ZERO),
        )
        .unwrap_or_default();
    let policy = t.policy.unwrap_or_default();
    let min_notice = v
        .check(
            "treatment.policy.min_notice",
            duration(policy.min_notice.as_ref(), SignedDuration::ZERO),
        )
        .unwrap_or_default();
    let late_cancel = v
        .check(
            "treatment.policy.late_cancel_window",
            duration(policy.late_cancel_window.as_ref(), SignedDuration::ZERO),
        )
        .unwrap_or_default();
    let max_days_ahead = match policy.max_days_ahead {
        0 => 60,
        n @ 1..=365 => i64::from(n),
        _ => {
            v.add(
                "treatment.policy.max_days_ahead",
                "must be between 1 and 365",
            );
            60
        }
    };
    let max_per_day = match policy.max_sessions_per_client_per_day {
        0 if modality == Some("whole_body_cryotherapy") => 1,
        n @ 0..=50 => i64::from(n),
        _ => {
            v.add(
                "treatment.policy.max_sessions_per_client_per_day",
                "must be between 0 (no limit) and 50",
            );
            0
        }
    };
    TreatmentFields {
        duration: length,
        needs,
        step,
        turnover,
        min_notice,
        max_days_ahead,
        late_cancel,
        max_per_day,
    }
}

/// Validates a wire precool; a chamber without one gets the defaults.
fn precool(
    wire: Option<&pb::Precool>,
    kind: &str,
    v: &mut Violations,
) -> Option<recovery_scheduling::Precool> {
    let default = recovery_scheduling::Precool::default();
    let wire = match wire {
        Some(p) => p,
        None if kind == "cryo_chamber" => return Some(default),
        None => return None,
    };
    let after = v.check(
        "resource.precool.after",
        duration(wire.after.as_ref(), default.after),
    );
    let length = v.check(
        "resource.precool.duration",
        duration(wire.duration.as_ref(), default.duration),
    );
    Some(recovery_scheduling::Precool {
        after: after.unwrap_or(default.after),
        duration: length.unwrap_or(default.duration),
    })
}

impl Bookings {
    pub(crate) async fn create_treatment(
        &self,
        caller: &Caller,
        req: pb::CreateTreatmentRequest,
    ) -> Result<pb::Treatment, Error> {
        caller.require(MANAGERS)?;
        let t = req.treatment.clone().unwrap_or_default();
        let tenant_id = caller.tenant_scope(&t.tenant_id, "treatment.tenant_id")?;
        let mut v = Violations::new();
        let name = v.check("treatment.display_name", text(&t.display_name));
        let modality_name = modality::name_of(t.modality);
        if modality_name.is_none() {
            v.add("treatment.modality", "required: a MODALITY_…");
        }
        let fields = treatment_fields(&t, modality_name, &mut v);
        let mut fingerprint = req.clone();
        fingerprint.request_id.clear();
        let key = Key::new(
            "CreateTreatment",
            &tenant_id,
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let (name, modality_name) = v.finish_with(name.zip(modality_name))?;
        let now = self.clock.now();
        let treatment = Treatment {
            id: new_id(),
            tenant_id: tenant_id.clone(),
            display_name: name,
            modality: modality_name.to_owned(),
            duration: fields.duration,
            needs: fields.needs,
            step: fields.step,
            turnover: fields.turnover,
            min_notice: fields.min_notice,
            max_days_ahead: fields.max_days_ahead,
            late_cancel: fields.late_cancel,
            max_per_day: fields.max_per_day,
            archive_time: None,
            create_time: to_micros(now),
            update_time: to_micros(now),
        };
        let (created, _) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| {
                sqlx::query(
                    "INSERT INTO treatments (id, tenant_id, display_name, modality, duration_s, needs, \
                     step_s, turnover_s, min_notice_s, max_days_ahead, late_cancel_s, max_per_day, \
                     create_time, update_time, created_by, updated_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $14)",
                )
                .bind(&treatment.id)
                .bind(&treatment.tenant_id)
                .bind(&treatment.display_name)
                .bind(&treatment.modality)
                .bind(treatment.duration.as_secs())
                .bind(model::needs_to_db(&treatment.needs))
                .bind(treatment.step.as_secs())
                .bind(treatment.turnover.as_secs())
                .bind(treatment.min_notice.as_secs())
                .bind(treatment.max_days_ahead)
                .bind(treatment.late_cancel.as_secs())
                .bind(treatment.max_per_day)
                .bind(treatment.create_time)
                .bind(&caller.key_id)
                .execute(&mut *tx)
                .await?;
                treatment.to_wire()
            }
        );
        tracing::info!(treatment_id = %created.id, "treatment created");
        Ok(created)
    }

    pub(crate) async fn get_treatment(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::Treatment, Error> {
        let id = parse_id(id).map_err(|e| Error::invalid("id", e))?;
        Ok(store::treatment(self.db.reader(), caller, &id)
            .await?
            .to_wire())
    }

    pub(crate) async fn list_treatments(
        &self,
        caller: &Caller,
        req: &pb::ListTreatmentsRequest,
    ) -> Result<pb::ListTreatmentsResponse, Error> {
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, &mut v);
        v.finish()?;
        let tenant_id = caller.tenant_scope("", "tenant_id").unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT {} FROM treatments WHERE ($1 = '' OR tenant_id = $1) AND id > $2 \
             AND ($3 = 1 OR archive_time IS NULL) ORDER BY id LIMIT $4",
            store::TREATMENT_COLUMNS
        ))
        .bind(&tenant_id)
        .bind(page.cursor())
        .bind(i64::from(req.include_archived))
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await?;
        let mut treatments = rows
            .iter()
            .map(|r| Treatment::from_row(r).map(|t| t.to_wire()))
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page.finish(&mut treatments, |t| &t.id);
        Ok(pb::ListTreatmentsResponse {
            treatments,
            next_page_token,
        })
    }

    pub(crate) async fn update_treatment(
        &self,
        caller: &Caller,
        req: pb::UpdateTreatmentRequest,
    ) -> Result<pb::Treatment, Error> {
        caller.require(MANAGERS)?;
        let patch = req.treatment.unwrap_or_default();
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        let mut v = Violations::new();
        let id = v.check("treatment.id", parse_id(&patch.id));
        if paths.is_empty() {
            v.add("update_mask", "name the fields to update");
        }
        for (i, path) in paths.iter().enumerate() {
            if !UPDATABLE.contains(&path.as_str()) {
                v.add(
                    format!("update_mask.paths[{i}]"),
                    format!("{path:?} cannot be updated; use {}", UPDATABLE.join(", ")),
                );
            }
        }
        let id = v.finish_with(id)?;
        let mut tx = self.db.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {} FROM treatments WHERE id = $1 AND ($2 = '' OR tenant_id = $2){}",
            store::TREATMENT_COLUMNS,
            self.db.lock_rows()
        ))
        .bind(&id)
        .bind(caller.scope_text())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("treatment", &id))?;
        let mut current = Treatment::from_row(&row)?;
        // Validate the merged treatment, so every rule holds after the update.
        let mut merged = current.to_wire();
        for path in &paths {
            match path.as_str() {
                "display_name" => merged.display_name.clone_from(&patch.display_name),
                "duration" => merged.duration = patch.duration,
                "needs" => merged.needs.clone_from(&patch.needs),
                "slot_step" => merged.slot_step = patch.slot_step,
                "turnover" => merged.turnover = patch.turnover,
                _ => merged.policy = patch.policy,
            }
        }
        let mut v = Violations::new();
        let name = v.check("treatment.display_name", text(&merged.display_name));
        let fields = treatment_fields(&merged, Some(&current.modality), &mut v);
        let name = v.finish_with(name)?;
        current.display_name = name;
        current.duration = fields.duration;
        current.needs = fields.needs;
        current.step = fields.step;
        current.turnover = fields.turnover;
        current.min_notice = fields.min_notice;
        current.max_days_ahead = fields.max_days_ahead;
        current.late_cancel = fields.late_cancel;
        current.max_per_day = fields.max_per_day;
        current.update_time = to_micros(self.clock.now());
        sqlx::query(
            "UPDATE treatments SET display_name = $1, duration_s = $2, needs = $3, step_s = $4, \
             turnover_s = $5, min_notice_s = $6, max_days_ahead = $7, late_cancel_s = $8, \
             max_per_day = $9, update_time = $10, updated_by = $11 WHERE id = $12",
        )
        .bind(&current.display_name)
        .bind(current.duration.as_secs())
        .bind(model::needs_to_db(&current.needs))
        .bind(current.step.as_secs())
        .bind(current.turnover.as_secs())
        .bind(current.min_notice.as_secs())
        .bind(current.max_days_ahead)
        .bind(current.late_cancel.as_secs())
        .bind(current.max_per_day)
        .bind(current.update_time)
        .bind(&caller.key_id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(treatment_id = %id, fields = ?paths, "treatment updated");
        Ok(current.to_wire())
    }

    pub(crate) async fn archive_treatment(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::Treatment, Error> {
        caller.require(MANAGERS)?;
        let id = parse_id(id).map_err(|e| Error::invalid("id", e))?;
        let now = to_micros(self.clock.now());
        let mut tx = self.db.begin().await?;
        let mut treatment = store::treatment(&mut *tx, caller, &id).await?;
        if treatment.archive_time.is_none() {
            sqlx::query(
                "UPDATE treatments SET archive_time = $1, update_time = $1, updated_by = $2 WHERE id = $3",
            )
            .bind(now)
            .bind(&caller.key_id)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            treatment.archive_time = Some(now);
            treatment.update_time = now;
        }
        tx.commit().await?;
        tracing::info!(treatment_id = %id, "treatment archived");
        Ok(treatment.to_wire())
    }

    pub(crate) async fn create_resource(
        &self,
        caller: &Caller,
        req: pb::CreateResourceRequest,
    ) -> Result<pb::Resource, Error> {
        caller.require(MANAGERS)?;
        let r = req.resource.clone().unwrap_or_default();
        let mut v = Violations::new();
        let name = v.check("resource.display_name", text(&r.display_name));
        let kind_name = kind::name_of(r.kind);
        if kind_name.is_none() {
            v.add("resource.kind", "required: a RESOURCE_KIND_…");
        }
        let turnover = v.check("resource.turnover", model::turnover(r.turnover.as_ref()));
        let precool = precool(r.precool.as_ref(), kind_name.unwrap_or(""), &mut v);
        model::weekly(&r.shifts, "resource.shifts", &mut v);
        if r.location_id.is_empty() {
            v.add("resource.location_id", "required");
        }
        let mut fingerprint = req.clone();
        fingerprint.request_id.clear();
        let key = Key::new(
            "CreateResource",
            caller.scope_text(),
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let ((name, kind_name), turnover) = v.finish_with(name.zip(kind_name).zip(turnover))?;
        let location = self
            .directory
            .location(caller, &r.location_id, "resource.location_id")
            .await?;
        let now = self.clock.now();
        let id = new_id();
        let (created, _) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| {
                sqlx::query(
                    "INSERT INTO resources (id, tenant_id, location_id, display_name, kind, turnover_s, \
                     precool_after_s, precool_s, shifts, create_time, update_time, created_by, updated_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $11)",
                )
                .bind(&id)
                .bind(&location.tenant_id)
                .bind(&location.id)
                .bind(&name)
                .bind(kind_name)
                .bind(turnover.as_secs())
                .bind(precool.map(|p| p.after.as_secs()))
                .bind(precool.map(|p| p.duration.as_secs()))
                .bind(model::shifts_to_db(&r.shifts))
                .bind(to_micros(now))
                .bind(&caller.key_id)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(&format!(
                    "SELECT {} FROM resources WHERE id = $1",
                    store::RESOURCE_COLUMNS
                ))
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?;
                store::Resource::from_row(&row)?.to_wire()
            }
        );
        tracing::info!(resource_id = %created.id, kind = kind_name, "resource created");
        Ok(created)
    }

    pub(crate) async fn get_resource(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::Resource, Error> {
        let id = parse_id(id).map_err(|e| Error::invalid("id", e))?;
        let mut conn = self.db.reader().acquire().await?;
        Ok(
            store::resource(&mut conn, caller, &id, self.clock.now(), "")
                .await?
                .to_wire(),
        )
    }

    pub(crate) async fn list_resources(
        &self,
        caller: &Caller,
        req: &pb::ListResourcesRequest,
    ) -> Result<pb::ListResourcesResponse, Error> {
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, &mut v);
        v.finish()?;
        let location = self
            .directory
            .location(caller, &req.location_id, "location_id")
            .await?;
        let mut conn = self.db.reader().acquire().await?;
        let all = store::resources(
            &mut conn,
            &location.tenant_id,
            &location.id,
            self.clock.now(),
        )
        .await?;
        let mut resources: Vec<pb::Resource> = all
            .iter()
            .filter(|r| r.wire.id.as_str() > page.cursor())
            .take(usize::try_from(page.fetch()).unwrap_or(usize::MAX))
            .map(store::Resource::to_wire)
            .collect();
        let next_page_token = page.finish(&mut resources, |r| &r.id);
        Ok(pb::ListResourcesResponse {
            resources,
            next_page_token,
        })
    }

    pub(crate) async fn update_resource(
        &self,
        caller: &Caller,
        req: pb::UpdateResourceRequest,
    ) -> Result<pb::Resource, Error> {
        caller.require(MANAGERS)?;
        let patch = req.resource.unwrap_or_default();
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        let mut v = Violations::new();
        let id = v.check("resource.id", parse_id(&patch.id));
        if paths.is_empty() {
            v.add("update_mask", "name the fields to update");
        }
        let mut name = None;
        let mut turnover = None;
        let mut new_precool = None;
        let mut shifts = None;
        for (i, path) in paths.iter().enumerate() {
            match path.as_str() {
                "display_name" => {
                    name = v.check("resource.display_name", text(&patch.display_name));
                }
                "turnover" => {
                    turnover = v.check(
                        "resource.turnover",
                        model::turnover(patch.turnover.as_ref()),
                    );
                }
                "precool" => new_precool = Some(patch.precool),
                "shifts" => {
                    model::weekly(&patch.shifts, "resource.shifts", &mut v);
                    shifts = Some(patch.shifts.clone());
                }
                other => v.add(
                    format!("update_mask.paths[{i}]"),
                    format!(
                        "{other:?} cannot be updated; use display_name, turnover, precool or shifts"
                    ),
                ),
            }
        }
        let id = v.finish_with(id)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let mut current = store::resource(&mut tx, caller, &id, now, self.db.lock_rows()).await?;
        let mut v = Violations::new();
        let precool = match new_precool {
            Some(wire) => precool(wire.as_ref(), &current.kind, &mut v),
            None => current.precool,
        };
        v.finish()?;
        if let Some(name) = name {
            current.wire.display_name = name;
        }
        let turnover = turnover.unwrap_or(current.turnover);
        let shifts = shifts.unwrap_or(current.wire.shifts.clone());
        sqlx::query(
            "UPDATE resources SET display_name = $1, turnover_s = $2, precool_after_s = $3, \
             precool_s = $4, shifts = $5, update_time = $6, updated_by = $7 WHERE id = $8",
        )
        .bind(&current.wire.display_name)
        .bind(turnover.as_secs())
        .bind(precool.map(|p| p.after.as_secs()))
        .bind(precool.map(|p| p.duration.as_secs()))
        .bind(model::shifts_to_db(&shifts))
        .bind(to_micros(now))
        .bind(&caller.key_id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        let updated = store::resource(&mut tx, caller, &id, now, "").await?;
        tx.commit().await?;
        tracing::info!(resource_id = %id, fields = ?paths, "resource updated");
        Ok(updated.to_wire())
    }

    pub(crate) async fn add_blackout(
        &self,
        caller: &Caller,
        req: pb::AddBlackoutRequest,
    ) -> Result<pb::Resource, Error> {
        caller.require(MANAGERS)?;
        let b = req.blackout.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.check("resource_id", parse_id(&req.resource_id));
        let start = v.check("blackout.start_time", model::instant(b.start_time.as_ref()));
        let end = v.check("blackout.end_time", model::instant(b.end_time.as_ref()));
        let reason = v.check("blackout.reason", text(&b.reason));
        if let (Some(start), Some(end)) = (start, end)
            && end <= start
        {
            v.add("blackout.end_time", "must be after start_time");
        }
        let (((id, start), end), reason) = v.finish_with(id.zip(start).zip(end).zip(reason))?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let resource = store::resource(&mut tx, caller, &id, now, self.db.lock_rows()).await?;
        sqlx::query(
            "INSERT INTO blackouts (id, tenant_id, resource_id, start_us, end_us, reason, create_time, \
             created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(&resource.wire.tenant_id)
        .bind(&id)
        .bind(to_micros(start))
        .bind(to_micros(end))
        .bind(&reason)
        .bind(to_micros(now))
        .bind(&caller.key_id)
        .execute(&mut *tx)
        .await?;
        let updated = store::resource(&mut tx, caller, &id, now, "").await?;
        tx.commit().await?;
        tracing::info!(resource_id = %id, "blackout added");
        Ok(updated.to_wire())
    }

    pub(crate) async fn remove_blackout(
        &self,
        caller: &Caller,
        req: &pb::RemoveBlackoutRequest,
    ) -> Result<pb::Resource, Error> {
        caller.require(MANAGERS)?;
        let mut v = Violations::new();
        let id = v.check("resource_id", parse_id(&req.resource_id));
        let blackout = v.check("blackout_id", parse_id(&req.blackout_id));
        let (id, blackout) = v.finish_with(id.zip(blackout))?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        store::resource(&mut tx, caller, &id, now, self.db.lock_rows()).await?;
        let removed = sqlx::query("DELETE FROM blackouts WHERE id = $1 AND resource_id = $2")
            .bind(&blackout)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            return Err(Error::not_found("blackout", blackout));
        }
        let updated = store::resource(&mut tx, caller, &id, now, "").await?;
        tx.commit().await?;
        tracing::info!(resource_id = %id, blackout_id = %blackout, "blackout removed");
        Ok(updated.to_wire())
    }
}
