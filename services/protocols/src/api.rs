//! The gRPC face of protocols: authorise, validate collecting every field
//! problem, run SQL scoped to the caller's tenant (recording who changed
//! what in the same transaction), answer.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use prost::Message as _;
use recovery_kit::events::Event;
use recovery_kit::idempotency::{Key, without_request_id};
use recovery_kit::ids::{new_id, parse_id};
use recovery_kit::page::{Keyset, Page};
use recovery_kit::time::{from_micros, to_micros};
use recovery_kit::{Caller, Engine, Error, Role, Violations};
use recovery_proto::protocols::v1 as pb;
use recovery_proto::protocols::v1::protocol_service_server::ProtocolService;
use recovery_rules::{Evaluation, Modality, Proposal};
use sqlx::Row as _;
use tonic::{Request, Response, Status};

use crate::model::{
    self, ClientFields, NewScreening, activity_kind_code, duration_to_wire, instant, modality_code,
    ts, wire,
};
use crate::{CLIENT_ERASED, IDEMPOTENCY_TABLE, Protocols, plan, store};

/// Roles that work with clients: the studio's own keys. Operators run the
/// platform and do not read health data; devices never do.
const STUDIO: &[Role] = &[Role::Manager, Role::Staff, Role::FrontDesk];
/// Roles that erase clients and write templates.
const MANAGERS: &[Role] = &[Role::Manager];

/// How far back the summary's recent figures reach.
const RECENT: SignedDuration = SignedDuration::from_hours(24 * 30);

/// Who calls, and the tenant whose data they act on.
struct Ctx {
    caller: Caller,
    tenant: String,
}

fn authorize<T>(request: &Request<T>, roles: &[Role]) -> Result<Ctx, Error> {
    let caller = Caller::of(request)?;
    caller.require(roles)?;
    let tenant = caller
        .tenant_id
        .clone()
        .ok_or_else(|| Error::PermissionDenied("client data is the tenant's own".into()))?;
    Ok(Ctx {
        caller: caller.clone(),
        tenant,
    })
}

fn today(now: Timestamp) -> jiff::civil::Date {
    TimeZone::UTC.to_datetime(now).date()
}

/// Age in whole years on `on` (the birthday counts).
fn age(dob: jiff::civil::Date, on: jiff::civil::Date) -> i16 {
    let before_birthday = (on.month(), on.day()) < (dob.month(), dob.day());
    on.year() - dob.year() - i16::from(before_birthday)
}

fn evaluation(e: &Evaluation) -> pb::Evaluation {
    let finding = |f: &recovery_rules::Finding| pb::Finding {
        reason: f.reason.as_str().to_owned(),
        message: f.message.clone(),
    };
    pb::Evaluation {
        allowed: e.is_allowed(),
        refusals: e.refusals.iter().map(finding).collect(),
        warnings: e.warnings.iter().map(finding).collect(),
        recommended_duration: e.recommended_duration.map(duration_to_wire),
    }
}

/// `$1, $2, …` from `first` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Protocols {
    async fn time_zone(&self, caller: &Caller, location_id: &str) -> Result<TimeZone, Error> {
        let location = self
            .directory
            .location(caller, location_id, "location_id")
            .await?;
        TimeZone::get(&location.time_zone).map_err(|e| {
            Error::Internal(anyhow::anyhow!(
                "location {location_id} has time zone {:?}: {e}",
                location.time_zone
            ))
        })
    }

    async fn create_client(
        &self,
        ctx: &Ctx,
        req: pb::CreateClientRequest,
    ) -> Result<pb::CreateClientResponse, Error> {
        let now = self.clock.now();
        let mut v = Violations::new();
        let mut fields = ClientFields::default();
        fields.apply(
            &req.client.clone().unwrap_or_default(),
            None,
            today(now),
            &mut v,
        );
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new(
            "CreateClient",
            &ctx.tenant,
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        v.finish()?;
        let actor = &ctx.caller.key_id;
        let (client, fresh) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| {
                let id = new_id();
                sqlx::query(
                    "INSERT INTO protocols_clients (id, tenant_id, given_name, family_name, email, \
                 phone, date_of_birth, emergency_name, emergency_phone, emergency_relationship, \
                 search_text, create_time, update_time, created_by, updated_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $13)",
                )
                .bind(&id)
                .bind(&ctx.tenant)
                .bind(&fields.given_name)
                .bind(&fields.family_name)
                .bind(&fields.email)
                .bind(&fields.phone)
                .bind(
                    fields
                        .date_of_birth
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                )
                .bind(&fields.emergency_name)
                .bind(&fields.emergency_phone)
                .bind(&fields.emergency_relationship)
                .bind(fields.search_text())
                .bind(to_micros(now))
                .bind(actor)
                .execute(&mut *tx)
                .await?;
                store::audit(
                    &mut tx,
                    &ctx.tenant,
                    &id,
                    actor,
                    "client.created",
                    &format!("{fields:?}"),
                    now,
                )
                .await?;
                store::find_client(&mut *tx, &ctx.tenant, &id, "").await?
            }
        );
        if fresh {
            tracing::info!(client_id = %client.id, "client created");
        }
        Ok(pb::CreateClientResponse {
            client: Some(client),
        })
    }

    async fn get_client(
        &self,
        ctx: &Ctx,
        req: pb::GetClientRequest,
    ) -> Result<pb::GetClientResponse, Error> {
        let id = parse_id(&req.id).map_err(|e| Error::invalid("id", e))?;
        let client = store::find_client(self.db.reader(), &ctx.tenant, &id, "").await?;
        Ok(pb::GetClientResponse {
            client: Some(client),
        })
    }

    async fn list_clients(
        &self,
        ctx: &Ctx,
        req: pb::ListClientsRequest,
    ) -> Result<pb::ListClientsResponse, Error> {
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, &mut v);
        let query = v
            .check("query", model::short_text(&req.query, 200))
            .unwrap_or_default()
            .to_lowercase();
        v.finish()?;
        let pattern = format!("%{}%", recovery_kit::db::like_escape(&query));
        let rows = sqlx::query(&format!(
            "SELECT {} FROM protocols_clients WHERE tenant_id = $1 AND erase_time IS NULL \
             AND id > $2 AND ($3 = '' OR search_text LIKE $4 ESCAPE '\\') ORDER BY id LIMIT $5",
            store::CLIENT_COLUMNS
        ))
        .bind(&ctx.tenant)
        .bind(page.cursor())
        .bind(&query)
        .bind(&pattern)
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await?;
        let mut clients = rows
            .iter()
            .map(store::client)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page.finish(&mut clients, |c| &c.id);
        Ok(pb::ListClientsResponse {
            clients,
            next_page_token,
        })
    }

    async fn update_client(
        &self,
        ctx: &Ctx,
        req: pb::UpdateClientRequest,
    ) -> Result<pb::UpdateClientResponse, Error> {
        let now = self.clock.now();
        let patch = req.client.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.check("client.id", parse_id(&patch.id));
        let paths = model::mask(
            req.update_mask.map(|m| m.paths),
            &model::CLIENT_PATHS,
            &mut v,
        );
        let mut changed = ClientFields::default();
        if let Some(paths) = &paths {
            changed.apply(&patch, Some(paths), today(now), &mut v);
        }
        let (id, paths) = v.finish_with(id.zip(paths))?;
        let lock = self.db.lock_rows();
        let mut tx = self.db.begin().await?;
        let current = store::live_client(&mut *tx, &ctx.tenant, &id, lock).await?;
        let mut fields = ClientFields::stored(current);
        for path in &paths {
            match path.as_str() {
                "given_name" => fields.given_name.clone_from(&changed.given_name),
                "family_name" => fields.family_name.clone_from(&changed.family_name),
                "email" => fields.email.clone_from(&changed.email),
                "phone" => fields.phone.clone_from(&changed.phone),
                "date_of_birth" => fields.date_of_birth = changed.date_of_birth,
                _ => {
                    fields.emergency_name.clone_from(&changed.emergency_name);
                    fields.emergency_phone.clone_from(&changed.emergency_phone);
                    fields
                        .emergency_relationship
                        .clone_from(&changed.emergency_relationship);
                }
            }
        }
        let actor = &ctx.caller.key_id;
        sqlx::query(
            "UPDATE protocols_clients SET given_name = $1, family_name = $2, email = $3, \
             phone = $4, date_of_birth = $5, emergency_name = $6, emergency_phone = $7, \
             emergency_relationship = $8, search_text = $9, update_time = $10, updated_by = $11 \
             WHERE id = $12 AND tenant_id = $13",
        )
        .bind(&fields.given_name)
        .bind(&fields.family_name)
        .bind(&fields.email)
        .bind(&fields.phone)
        .bind(
            fields
                .date_of_birth
                .map(|d| d.to_string())
                .unwrap_or_default(),
        )
        .bind(&fields.emergency_name)
        .bind(&fields.emergency_phone)
        .bind(&fields.emergency_relationship)
        .bind(fields.search_text())
        .bind(to_micros(now))
        .bind(actor)
        .bind(&id)
        .bind(&ctx.tenant)
        .execute(&mut *tx)
        .await?;
        store::audit(
            &mut tx,
            &ctx.tenant,
            &id,
            actor,
            "client.updated",
            &format!("fields {}: {fields:?}", paths.join(", ")),
            now,
        )
        .await?;
        let client = store::find_client(&mut *tx, &ctx.tenant, &id, "").await?;
        tx.commit().await?;
        tracing::info!(client_id = %id, fields = ?paths, "client updated");
        Ok(pb::UpdateClientResponse {
            client: Some(client),
        })
    }

    async fn delete_client(
        &self,
        ctx: &Ctx,
        req: pb::DeleteClientRequest,
    ) -> Result<pb::DeleteClientResponse, Error> {
        let id = parse_id(&req.id).map_err(|e| Error::invalid("id", e))?;
        let now = self.clock.now();
        let micros = to_micros(now);
        let actor = &ctx.caller.key_id;
        let tenant = &ctx.tenant;
        let mut tx = self.db.begin().await?;
        let current = store::find_client(&mut *tx, tenant, &id, self.db.lock_rows()).await?;
        if current.erase_time.is_some() {
            return Ok(pb::DeleteClientResponse {
                client: Some(current),
            });
        }
        sqlx::query(
            "UPDATE protocols_clients SET given_name = '', family_name = '', email = '', \
             phone = '', date_of_birth = '', emergency_name = '', emergency_phone = '', \
             emergency_relationship = '', search_text = '', update_time = $1, updated_by = $2, \
             erase_time = $1 WHERE id = $3 AND tenant_id = $4",
        )
        .bind(micros)
        .bind(actor)
        .bind(&id)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
        let statements = [
            // Health answers are personal data through and through.
            "DELETE FROM protocols_screening_answers WHERE screening_id IN \
             (SELECT id FROM protocols_screenings WHERE tenant_id = $1 AND client_id = $2)",
            "DELETE FROM protocols_screenings WHERE tenant_id = $1 AND client_id = $2",
            // The waiver's version and times stay; the names go.
            "UPDATE protocols_waivers SET signer_name = '', guardian_name = '' \
             WHERE tenant_id = $1 AND client_id = $2",
            // Sessions and activities stay for anonymous statistics; free
            // text may name people or conditions.
            "UPDATE protocols_sessions SET notes = '' WHERE tenant_id = $1 AND client_id = $2",
            "UPDATE protocols_activities SET notes = '' WHERE tenant_id = $1 AND client_id = $2",
            // Who did what and when stays; the details go.
            "UPDATE protocols_audit SET detail = '' WHERE tenant_id = $1 AND client_id = $2",
        ];
        for sql in statements {
            sqlx::query(sql)
                .bind(tenant)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        // Stored answers of idempotent creates that mention the client.
        let forget = match self.db.engine() {
            Engine::Sqlite => {
                "DELETE FROM protocols_idempotency WHERE scope LIKE $1 \
                 AND instr(response, CAST($2 AS BLOB)) > 0"
            }
            Engine::Postgres => {
                "DELETE FROM protocols_idempotency WHERE scope LIKE $1 \
                 AND position(convert_to($2, 'UTF8') in response) > 0"
            }
        };
        sqlx::query(forget)
            .bind(format!("%/{tenant}"))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        store::audit(&mut tx, tenant, &id, actor, "client.erased", "", now).await?;
        let client = store::find_client(&mut *tx, tenant, &id, "").await?;
        tx.commit().await?;
        tracing::info!(client_id = %id, "client erased");
        self.bus.publish(Event::new(
            CLIENT_ERASED,
            tenant.clone(),
            id.clone(),
            client.encode_to_vec(),
        ));
        Ok(pb::DeleteClientResponse {
            client: Some(client),
        })
    }

    async fn record_screening(
        &self,
        ctx: &Ctx,
        req: pb::RecordScreeningRequest,
    ) -> Result<pb::RecordScreeningResponse, Error> {
        let now = self.clock.now();
        let s = req.screening.clone().unwrap_or_default();
        let mut v = Violations::new();
        let client_id = v.check("screening.client_id", parse_id(&s.client_id));
        let actor = &ctx.caller.key_id;
        let new = NewScreening::parse(&s, now, actor, today(now), &mut v);
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new(
            "RecordScreening",
            &ctx.tenant,
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let client_id = v.finish_with(client_id)?;
        let (screening, fresh) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| {
                store::live_client(&mut *tx, &ctx.tenant, &client_id, self.db.lock_rows()).await?;
                let id = new_id();
                let (systolic, diastolic, measured) = match new.blood_pressure {
                    Some((s, d, at)) => (Some(s), Some(d), Some(to_micros(at))),
                    None => (None, None, None),
                };
                sqlx::query(
                    "INSERT INTO protocols_screenings (id, tenant_id, client_id, \
                 questionnaire_version, systolic, diastolic, measure_time, record_time, \
                 recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&id)
                .bind(&ctx.tenant)
                .bind(&client_id)
                .bind(&new.version)
                .bind(systolic)
                .bind(diastolic)
                .bind(measured)
                .bind(to_micros(now))
                .bind(actor)
                .execute(&mut *tx)
                .await?;
                for (i, a) in new.answers.iter().enumerate() {
                    sqlx::query(
                    "INSERT INTO protocols_screening_answers (screening_id, position, condition, \
                     present, detail, answer_time, answered_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&id)
                .bind(i64::try_from(i).unwrap_or(i64::MAX))
                .bind(a.condition)
                .bind(i64::from(a.present))
                .bind(&a.detail)
                .bind(to_micros(a.at))
                .bind(&a.answered_by)
                .execute(&mut *tx)
                .await?;
                }
                let present: Vec<&str> = new
                    .answers
                    .iter()
                    .filter(|a| a.present)
                    .map(|a| a.condition)
                    .collect();
                store::audit(
                    &mut tx,
                    &ctx.tenant,
                    &client_id,
                    actor,
                    "screening.recorded",
                    &format!(
                        "questionnaire {}, {} answers, present: {present:?}",
                        new.version,
                        new.answers.len()
                    ),
                    now,
                )
                .await?;
                store::screening(&mut tx, &ctx.tenant, &client_id)
                    .await?
                    .ok_or_else(|| Error::Internal(anyhow::anyhow!("screening just written")))?
            }
        );
        if fresh {
            tracing::info!(client_id = %client_id, screening_id = %screening.id, "screening recorded");
        }
        Ok(pb::RecordScreeningResponse {
            screening: Some(screening),
        })
    }

    async fn get_screening(
        &self,
        ctx: &Ctx,
        req: pb::GetScreeningRequest,
    ) -> Result<pb::GetScreeningResponse, Error> {
        let id = parse_id(&req.client_id).map_err(|e| Error::invalid("client_id", e))?;
        let db = self.db.reader();
        store::find_client(db, &ctx.tenant, &id, "").await?;
        let screening = store::screening(&mut *db.acquire().await?, &ctx.tenant, &id)
            .await?
            .ok_or_else(|| Error::not_found("screening of client", &id))?;
        Ok(pb::GetScreeningResponse {
            screening: Some(screening),
        })
    }

    #[allow(clippy::too_many_lines)] // one linear handler: validate, write, answer
    async fn sign_waiver(
        &self,
        ctx: &Ctx,
        req: pb::SignWaiverRequest,
    ) -> Result<pb::SignWaiverResponse, Error> {
        let now = self.clock.now();
        let w = req.waiver.clone().unwrap_or_default();
        let mut v = Violations::new();
        let client_id = v.check("waiver.client_id", parse_id(&w.client_id));
        let version = v.check("waiver.version", model::name(&w.version));
        let signer = v.check("waiver.signer_name", model::name(&w.signer_name));
        let guardian = v.check(
            "waiver.guardian_name",
            model::short_text(&w.guardian_name, 200),
        );
        let sign_time = match model::optional_instant(w.sign_time.as_ref()) {
            Ok(None) => Some(now),
            Ok(Some(t)) if t <= now => Some(t),
            Ok(Some(_)) => {
                v.add("waiver.sign_time", "must not be in the future");
                None
            }
            Err(e) => {
                v.add("waiver.sign_time", e);
                None
            }
        };
        let expires = v
            .check(
                "waiver.expire_time",
                model::optional_instant(w.expire_time.as_ref()),
            )
            .flatten();
        if let (Some(sign_time), Some(expires)) = (sign_time, expires)
            && expires <= sign_time
        {
            v.add("waiver.expire_time", "must be after sign_time");
        }
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new(
            "SignWaiver",
            &ctx.tenant,
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let (client_id, (version, (signer, (guardian, sign_time)))) =
            v.finish_with(client_id.zip(version.zip(signer.zip(guardian.zip(sign_time)))))?;
        let actor = &ctx.caller.key_id;
        let (waiver, fresh) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| {
                let client =
                    store::live_client(&mut *tx, &ctx.tenant, &client_id, self.db.lock_rows())
                        .await?;
                let adult_age = store::rules(&mut *tx, &ctx.tenant).await?.adult_age;
                if guardian.is_empty()
                    && let Ok(dob) = model::date(&client.date_of_birth)
                    && age(dob, today(sign_time)) < i16::from(adult_age)
                {
                    return Err(Error::invalid(
                        "waiver.guardian_name",
                        "required: the client is a minor, a parent or guardian signs",
                    ));
                }
                let id = new_id();
                sqlx::query(
                    "INSERT INTO protocols_waivers (id, tenant_id, client_id, version, sign_time, \
                 expire_time, signer_name, guardian_name, record_time, recorded_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&id)
                .bind(&ctx.tenant)
                .bind(&client_id)
                .bind(&version)
                .bind(to_micros(sign_time))
                .bind(expires.map(to_micros))
                .bind(&signer)
                .bind(&guardian)
                .bind(to_micros(now))
                .bind(actor)
                .execute(&mut *tx)
                .await?;
                store::audit(
                    &mut tx,
                    &ctx.tenant,
                    &client_id,
                    actor,
                    "waiver.signed",
                    &format!("version {version}, signer {signer:?}, guardian {guardian:?}"),
                    now,
                )
                .await?;
                pb::Waiver {
                    id,
                    client_id: client_id.clone(),
                    version: version.clone(),
                    sign_time: wire(sign_time),
                    expire_time: expires.and_then(wire),
                    signer_name: signer.clone(),
                    guardian_name: guardian.clone(),
                    record_time: wire(now),
                    recorded_by: actor.clone(),
                }
            }
        );
        if fresh {
            tracing::info!(client_id = %client_id, waiver_id = %waiver.id, "waiver signed");
        }
        Ok(pb::SignWaiverResponse {
            waiver: Some(waiver),
        })
    }

    async fn get_waiver(
        &self,
        ctx: &Ctx,
        req: pb::GetWaiverRequest,
    ) -> Result<pb::GetWaiverResponse, Error> {
        let id = parse_id(&req.client_id).map_err(|e| Error::invalid("client_id", e))?;
        let db = self.db.reader();
        store::find_client(db, &ctx.tenant, &id, "").await?;
        let waiver = store::current_waiver(db, &ctx.tenant, &id)
            .await?
            .ok_or_else(|| Error::not_found("waiver of client", &id))?;
        Ok(pb::GetWaiverResponse {
            waiver: Some(waiver),
        })
    }

    async fn log_activity(
        &self,
        ctx: &Ctx,
        req: pb::LogActivityRequest,
    ) -> Result<pb::LogActivityResponse, Error> {
        let now = self.clock.now();
        let a = req.activity.clone().unwrap_or_default();
        let mut v = Violations::new();
        let client_id = v.check("activity.client_id", parse_id(&a.client_id));
        let kind = v.check("activity.kind", model::activity_kind(a.kind));
        let start = v.check("activity.start_time", instant(a.start_time.as_ref()));
        let end = v.check("activity.end_time", instant(a.end_time.as_ref()));
        if let (Some(start), Some(end)) = (start, end) {
            v.check("activity.end_time", model::activity_span(start, end));
        }
        if !(0..=1_000_000).contains(&a.distance_meters) {
            v.add("activity.distance_meters", "must be 0 (unknown) to 1000 km");
        }
        if !(0..=10).contains(&a.perceived_effort) {
            v.add("activity.perceived_effort", "must be 1 to 10 (0: unknown)");
        }
        let notes = v.check("activity.notes", model::text(&a.notes));
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new(
            "LogActivity",
            &ctx.tenant,
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let (client_id, (kind, (start, (end, notes)))) =
            v.finish_with(client_id.zip(kind.zip(start.zip(end.zip(notes)))))?;
        let actor = &ctx.caller.key_id;
        let (activity, fresh) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| {
                store::live_client(&mut *tx, &ctx.tenant, &client_id, "").await?;
                let id = new_id();
                sqlx::query(
                    "INSERT INTO protocols_activities (id, tenant_id, client_id, kind, start_time, \
                 end_time, distance_meters, perceived_effort, notes, create_time, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&id)
                .bind(&ctx.tenant)
                .bind(&client_id)
                .bind(activity_kind_code(kind))
                .bind(to_micros(start))
                .bind(to_micros(end))
                .bind(i64::from(a.distance_meters))
                .bind(i64::from(a.perceived_effort))
                .bind(&notes)
                .bind(to_micros(now))
                .bind(actor)
                .execute(&mut *tx)
                .await?;
                store::audit(
                    &mut tx,
                    &ctx.tenant,
                    &client_id,
                    actor,
                    "activity.logged",
                    &format!(
                        "{} {start} to {end}, notes {notes:?}",
                        activity_kind_code(kind)
                    ),
                    now,
                )
                .await?;
                pb::Activity {
                    id,
                    client_id: client_id.clone(),
                    kind: model::activity_kind_to_wire(kind) as i32,
                    start_time: wire(start),
                    end_time: wire(end),
                    distance_meters: a.distance_meters,
                    perceived_effort: a.perceived_effort,
                    notes: notes.clone(),
                    create_time: wire(now),
                    created_by: actor.clone(),
                }
            }
        );
        if fresh {
            tracing::info!(client_id = %client_id, activity_id = %activity.id, "activity logged");
        }
        Ok(pb::LogActivityResponse {
            activity: Some(activity),
        })
    }

    async fn list_activities(
        &self,
        ctx: &Ctx,
        req: pb::ListActivitiesRequest,
    ) -> Result<pb::ListActivitiesResponse, Error> {
        let mut v = Violations::new();
        let client_id = v.check("client_id", parse_id(&req.client_id));
        let page = Keyset::parse(req.page_size, &req.page_token, &mut v);
        let client_id = v.finish_with(client_id)?;
        let db = self.db.reader();
        store::find_client(db, &ctx.tenant, &client_id, "").await?;
        let (at, id) = page.after.clone().unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(&format!(
            "SELECT {} FROM protocols_activities WHERE tenant_id = $1 AND client_id = $2 \
             AND (start_time < $3 OR (start_time = $3 AND id < $4)) \
             ORDER BY start_time DESC, id DESC LIMIT $5",
            store::ACTIVITY_COLUMNS
        ))
        .bind(&ctx.tenant)
        .bind(&client_id)
        .bind(at)
        .bind(if page.after.is_some() {
            id
        } else {
            "~".to_owned()
        })
        .bind(page.fetch())
        .fetch_all(db)
        .await?;
        let mut activities = rows
            .iter()
            .map(store::activity)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page.finish(&mut activities, |a| {
            (
                a.start_time.as_ref().map_or(0, |t| {
                    to_micros(recovery_kit::time::from_proto(t).unwrap_or_default())
                }),
                a.id.as_str(),
            )
        });
        Ok(pb::ListActivitiesResponse {
            activities,
            next_page_token,
        })
    }

    #[allow(clippy::too_many_lines)] // one linear handler: validate, write, answer
    async fn record_session(
        &self,
        ctx: &Ctx,
        req: pb::RecordSessionRequest,
    ) -> Result<pb::RecordSessionResponse, Error> {
        let now = self.clock.now();
        let s = req.session.clone().unwrap_or_default();
        let mut v = Violations::new();
        let client_id = v.check("session.client_id", parse_id(&s.client_id));
        let modality = v.check("session.modality", model::modality(s.modality));
        let start = match instant(s.start_time.as_ref()) {
            Ok(t) if t > now => {
                v.add(
                    "session.start_time",
                    "a completed session must have started already",
                );
                None
            }
            Ok(t) => Some(t),
            Err(e) => {
                v.add("session.start_time", e);
                None
            }
        };
        let duration = v.check(
            "session.duration",
            model::session_duration(s.duration.as_ref()),
        );
        let before = v.check(
            "session.soreness_before",
            model::soreness(s.soreness_before),
        );
        let after = v.check("session.soreness_after", model::soreness(s.soreness_after));
        let device_id = if s.device_id.is_empty() {
            Some(String::new())
        } else {
            v.check("session.device_id", parse_id(&s.device_id))
        };
        let location_id = if s.location_id.is_empty() {
            Some(String::new())
        } else {
            v.check("session.location_id", parse_id(&s.location_id))
        };
        let settings = model::settings(&s.device_settings, &mut v);
        let notes = v.check("session.notes", model::text(&s.notes));
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new(
            "RecordSession",
            &ctx.tenant,
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let (
            client_id,
            (modality, (start, (duration, (before, (after, (device_id, (location_id, notes))))))),
        ) = v.finish_with(client_id.zip(modality.zip(
            start.zip(duration.zip(before.zip(after.zip(device_id.zip(location_id.zip(notes)))))),
        )))?;
        if !location_id.is_empty() {
            self.directory
                .location(&ctx.caller, &location_id, "session.location_id")
                .await?;
        }
        let actor = &ctx.caller.key_id;
        let (session, fresh) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| {
                store::live_client(&mut *tx, &ctx.tenant, &client_id, "").await?;
                let id = new_id();
                sqlx::query(
                "INSERT INTO protocols_sessions (id, tenant_id, client_id, modality, start_time, \
                 duration_us, device_id, device_settings, soreness_before, soreness_after, notes, \
                 location_id, create_time, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&id)
            .bind(&ctx.tenant)
            .bind(&client_id)
            .bind(modality_code(modality))
            .bind(to_micros(start))
            .bind(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX))
            .bind(&device_id)
            .bind(model::settings_to_db(&settings))
            .bind(before)
            .bind(after)
            .bind(&notes)
            .bind(&location_id)
            .bind(to_micros(now))
            .bind(actor)
            .execute(&mut *tx)
            .await?;
                store::audit(
                    &mut tx,
                    &ctx.tenant,
                    &client_id,
                    actor,
                    "session.recorded",
                    &format!(
                        "{modality} at {start}, soreness {before:?} to {after:?}, notes {notes:?}"
                    ),
                    now,
                )
                .await?;
                let row = sqlx::query(&format!(
                    "SELECT {} FROM protocols_sessions WHERE id = $1",
                    store::SESSION_COLUMNS
                ))
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?;
                store::session(&row)?
            }
        );
        if fresh {
            tracing::info!(client_id = %client_id, session_id = %session.id, "session recorded");
        }
        Ok(pb::RecordSessionResponse {
            session: Some(session),
        })
    }

    #[allow(clippy::too_many_lines)] // one linear handler: validate, write, answer
    async fn list_timeline(
        &self,
        ctx: &Ctx,
        req: pb::ListTimelineRequest,
    ) -> Result<pb::ListTimelineResponse, Error> {
        let mut v = Violations::new();
        let client_id = v.check("client_id", parse_id(&req.client_id));
        let from = v
            .check(
                "start_time",
                model::optional_instant(req.start_time.as_ref()),
            )
            .flatten();
        let to = v
            .check("end_time", model::optional_instant(req.end_time.as_ref()))
            .flatten();
        if let (Some(from), Some(to)) = (from, to)
            && to <= from
        {
            v.add("end_time", "must be after start_time");
        }
        let mut modalities = String::new();
        for (i, m) in req.modalities.iter().enumerate() {
            if let Some(m) = v.check(&format!("modalities[{i}]"), model::modality(*m)) {
                modalities.push(',');
                modalities.push_str(modality_code(m));
            }
        }
        if !modalities.is_empty() {
            modalities.push(',');
        }
        let page = Keyset::parse(req.page_size, &req.page_token, &mut v);
        let client_id = v.finish_with(client_id)?;
        let db = self.db.reader();
        store::find_client(db, &ctx.tenant, &client_id, "").await?;
        let (after_at, after_id) = page.after.clone().unwrap_or((i64::MAX, "~".to_owned()));
        let rows = sqlx::query(
            "SELECT entry, id, occur FROM ( \
               SELECT 'session' AS entry, id, start_time AS occur FROM protocols_sessions \
               WHERE tenant_id = $1 AND client_id = $2 \
               AND ($3 = '' OR $3 LIKE '%,' || modality || ',%') \
               UNION ALL \
               SELECT 'activity' AS entry, id, start_time AS occur FROM protocols_activities \
               WHERE tenant_id = $1 AND client_id = $2 AND $3 = '' \
             ) AS timeline \
             WHERE occur >= $4 AND occur < $5 AND (occur < $6 OR (occur = $6 AND id < $7)) \
             ORDER BY occur DESC, id DESC LIMIT $8",
        )
        .bind(&ctx.tenant)
        .bind(&client_id)
        .bind(&modalities)
        .bind(from.map_or(i64::MIN, to_micros))
        .bind(to.map_or(i64::MAX, to_micros))
        .bind(after_at)
        .bind(&after_id)
        .bind(page.fetch())
        .fetch_all(db)
        .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let entry: String = row.try_get("entry")?;
            let id: String = row.try_get("id")?;
            let occur: i64 = row.try_get("occur")?;
            keys.push((entry, id, occur));
        }
        let next_page_token = page.finish(&mut keys, |(_, id, occur)| (*occur, id.as_str()));
        let mut sessions = HashMap::new();
        let mut activities = HashMap::new();
        for (kind, columns, table) in [
            ("session", store::SESSION_COLUMNS, "protocols_sessions"),
            ("activity", store::ACTIVITY_COLUMNS, "protocols_activities"),
        ] {
            let ids: Vec<&str> = keys
                .iter()
                .filter(|(k, _, _)| k == kind)
                .map(|(_, id, _)| id.as_str())
                .collect();
            if ids.is_empty() {
                continue;
            }
            let sql = format!(
                "SELECT {columns} FROM {table} WHERE tenant_id = $1 AND id IN ({})",
                placeholders(2, ids.len())
            );
            let mut query = sqlx::query(&sql).bind(&ctx.tenant);
            for id in &ids {
                query = query.bind(*id);
            }
            for row in query.fetch_all(db).await? {
                if kind == "session" {
                    let s = store::session(&row)?;
                    sessions.insert(s.id.clone(), s);
                } else {
                    let a = store::activity(&row)?;
                    activities.insert(a.id.clone(), a);
                }
            }
        }
        let entries = keys
            .into_iter()
            .filter_map(|(kind, id, occur)| {
                let entry = if kind == "session" {
                    pb::timeline_entry::Entry::Session(sessions.remove(&id)?)
                } else {
                    pb::timeline_entry::Entry::Activity(activities.remove(&id)?)
                };
                Some(pb::TimelineEntry {
                    occur_time: ts(occur),
                    entry: Some(entry),
                })
            })
            .collect();
        Ok(pb::ListTimelineResponse {
            entries,
            next_page_token,
        })
    }

    async fn get_summary(
        &self,
        ctx: &Ctx,
        req: pb::GetSummaryRequest,
    ) -> Result<pb::GetSummaryResponse, Error> {
        let client_id = parse_id(&req.client_id).map_err(|e| Error::invalid("client_id", e))?;
        let db = self.db.reader();
        store::find_client(db, &ctx.tenant, &client_id, "").await?;
        let now = self.clock.now();
        let since = to_micros(now.saturating_sub(RECENT).unwrap_or(now));
        let both = "soreness_before IS NOT NULL AND soreness_after IS NOT NULL";
        let rows = sqlx::query(&format!(
            "SELECT modality, COUNT(*) AS sessions, \
             CAST(SUM(CASE WHEN {both} THEN soreness_before - soreness_after ELSE 0 END) AS BIGINT) AS drop_sum, \
             CAST(SUM(CASE WHEN {both} THEN 1 ELSE 0 END) AS BIGINT) AS drop_n, \
             CAST(SUM(CASE WHEN start_time >= $3 THEN 1 ELSE 0 END) AS BIGINT) AS recent, \
             CAST(SUM(CASE WHEN start_time >= $3 AND {both} THEN soreness_before - soreness_after ELSE 0 END) AS BIGINT) AS recent_drop_sum, \
             CAST(SUM(CASE WHEN start_time >= $3 AND {both} THEN 1 ELSE 0 END) AS BIGINT) AS recent_drop_n \
             FROM protocols_sessions WHERE tenant_id = $1 AND client_id = $2 GROUP BY modality"
        ))
        .bind(&ctx.tenant)
        .bind(&client_id)
        .bind(since)
        .fetch_all(db)
        .await?;
        #[allow(clippy::cast_precision_loss)]
        let average = |sum: i64, n: i64| (n > 0).then(|| sum as f64 / n as f64);
        let count = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        let mut out = pb::GetSummaryResponse::default();
        let (mut drop_sum, mut drop_n, mut total, mut recent) = (0, 0, 0, 0);
        for row in &rows {
            let modality: String = row.try_get("modality")?;
            let modality = model::modality_from_code(&modality)?;
            let sessions: i64 = row.try_get("sessions")?;
            let (ds, dn): (i64, i64) = (row.try_get("drop_sum")?, row.try_get("drop_n")?);
            let r: i64 = row.try_get("recent")?;
            let (rs, rn): (i64, i64) = (
                row.try_get("recent_drop_sum")?,
                row.try_get("recent_drop_n")?,
            );
            out.modalities.push(pb::ModalitySummary {
                modality: model::modality_to_wire(modality) as i32,
                session_count: count(sessions),
                average_soreness_drop: average(ds, dn),
                session_count_last_30_days: count(r),
                average_soreness_drop_last_30_days: average(rs, rn),
            });
            drop_sum += ds;
            drop_n += dn;
            total += sessions;
            recent += r;
        }
        out.modalities.sort_by_key(|m| m.modality);
        out.session_count = count(total);
        out.average_soreness_drop = average(drop_sum, drop_n);
        out.session_count_last_30_days = count(recent);
        let activities: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM protocols_activities \
             WHERE tenant_id = $1 AND client_id = $2 AND start_time >= $3 AND start_time <= $4",
        )
        .bind(&ctx.tenant)
        .bind(&client_id)
        .bind(since)
        .bind(to_micros(now))
        .fetch_one(db)
        .await?
        .try_get("n")?;
        out.activity_count_last_30_days = count(activities);
        Ok(out)
    }

    async fn create_protocol_template(
        &self,
        ctx: &Ctx,
        req: pb::CreateProtocolTemplateRequest,
    ) -> Result<pb::CreateProtocolTemplateResponse, Error> {
        let now = self.clock.now();
        let mut v = Violations::new();
        let template = plan::parse_template(&req.template.clone().unwrap_or_default(), &mut v);
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new(
            "CreateProtocolTemplate",
            &ctx.tenant,
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        v.finish()?;
        let actor = &ctx.caller.key_id;
        let (template, fresh) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| {
                let id = new_id();
                let steps = pb::ProtocolTemplate {
                    steps: template.steps.clone(),
                    ..Default::default()
                };
                sqlx::query(
                    "INSERT INTO protocols_templates (id, tenant_id, display_name, description, \
                 steps, create_time, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&id)
                .bind(&ctx.tenant)
                .bind(&template.display_name)
                .bind(&template.description)
                .bind(steps.encode_to_vec())
                .bind(to_micros(now))
                .bind(actor)
                .execute(&mut *tx)
                .await?;
                pb::ProtocolTemplate {
                    id,
                    create_time: wire(now),
                    created_by: actor.clone(),
                    ..template.clone()
                }
            }
        );
        if fresh {
            tracing::info!(template_id = %template.id, "protocol template created");
        }
        Ok(pb::CreateProtocolTemplateResponse {
            template: Some(template),
        })
    }

    async fn list_protocol_templates(
        &self,
        ctx: &Ctx,
        req: pb::ListProtocolTemplatesRequest,
    ) -> Result<pb::ListProtocolTemplatesResponse, Error> {
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, &mut v);
        v.finish()?;
        let rows = sqlx::query(
            "SELECT id, display_name, description, steps, create_time, created_by \
             FROM protocols_templates WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(&ctx.tenant)
        .bind(page.cursor())
        .bind(page.fetch())
        .fetch_all(self.db.reader())
        .await?;
        let mut templates = rows.iter().map(template).collect::<Result<Vec<_>, _>>()?;
        let next_page_token = page.finish(&mut templates, |t| &t.id);
        Ok(pb::ListProtocolTemplatesResponse {
            templates,
            next_page_token,
        })
    }

    #[allow(clippy::too_many_lines)] // one linear handler: validate, write, answer
    async fn assign_protocol(
        &self,
        ctx: &Ctx,
        req: pb::AssignProtocolRequest,
    ) -> Result<pb::AssignProtocolResponse, Error> {
        let now = self.clock.now();
        let a = req.assignment.clone().unwrap_or_default();
        let mut v = Violations::new();
        let client_id = v.check("assignment.client_id", parse_id(&a.client_id));
        let template_id = v.check("assignment.template_id", parse_id(&a.template_id));
        let anchor_time = v
            .check(
                "assignment.anchor_time",
                model::optional_instant(a.anchor_time.as_ref()),
            )
            .flatten();
        let activity_id = match (a.anchor_activity_id.is_empty(), anchor_time) {
            (true, None) => {
                v.add(
                    "assignment.anchor_activity_id",
                    "required: an activity of the client, or an anchor_time",
                );
                None
            }
            (true, Some(_)) => Some(String::new()),
            (false, None) => v.check(
                "assignment.anchor_activity_id",
                parse_id(&a.anchor_activity_id),
            ),
            (false, Some(_)) => {
                v.add(
                    "assignment.anchor_time",
                    "name an anchor_activity_id or an anchor_time, not both",
                );
                None
            }
        };
        let fingerprint = without_request_id(&req, |r| r.request_id.clear());
        let key = Key::new(
            "AssignProtocol",
            &ctx.tenant,
            &req.request_id,
            &fingerprint,
            &mut v,
        );
        let (client_id, (template_id, activity_id)) =
            v.finish_with(client_id.zip(template_id.zip(activity_id)))?;
        let actor = &ctx.caller.key_id;
        let (assignment, fresh) = recovery_kit::once!(
            &self.db,
            IDEMPOTENCY_TABLE,
            key.as_ref(),
            to_micros(now),
            |tx| {
                store::live_client(&mut *tx, &ctx.tenant, &client_id, "").await?;
                sqlx::query("SELECT id FROM protocols_templates WHERE id = $1 AND tenant_id = $2")
                    .bind(&template_id)
                    .bind(&ctx.tenant)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| Error::not_found("protocol template", &template_id))?;
                let (start, end) = if activity_id.is_empty() {
                    let t = to_micros(anchor_time.unwrap_or(now));
                    (t, t)
                } else {
                    let row = sqlx::query(
                        "SELECT start_time, end_time FROM protocols_activities \
                     WHERE id = $1 AND tenant_id = $2 AND client_id = $3",
                    )
                    .bind(&activity_id)
                    .bind(&ctx.tenant)
                    .bind(&client_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| Error::not_found("activity of client", &activity_id))?;
                    (row.try_get("start_time")?, row.try_get("end_time")?)
                };
                let id = new_id();
                sqlx::query(
                    "INSERT INTO protocols_assignments (id, tenant_id, client_id, template_id, \
                 anchor_activity_id, anchor_start, anchor_end, assign_time, assigned_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&id)
                .bind(&ctx.tenant)
                .bind(&client_id)
                .bind(&template_id)
                .bind(&activity_id)
                .bind(start)
                .bind(end)
                .bind(to_micros(now))
                .bind(actor)
                .execute(&mut *tx)
                .await?;
                store::audit(
                    &mut tx,
                    &ctx.tenant,
                    &client_id,
                    actor,
                    "protocol.assigned",
                    &format!("template {template_id}"),
                    now,
                )
                .await?;
                pb::ProtocolAssignment {
                    id,
                    client_id: client_id.clone(),
                    template_id: template_id.clone(),
                    anchor_activity_id: activity_id.clone(),
                    anchor_time: if activity_id.is_empty() {
                        ts(start)
                    } else {
                        None
                    },
                    assign_time: wire(now),
                    assigned_by: actor.clone(),
                }
            }
        );
        if fresh {
            tracing::info!(client_id = %client_id, assignment_id = %assignment.id, "protocol assigned");
        }
        Ok(pb::AssignProtocolResponse {
            assignment: Some(assignment),
        })
    }

    async fn get_recommendations(
        &self,
        ctx: &Ctx,
        req: pb::GetRecommendationsRequest,
    ) -> Result<pb::GetRecommendationsResponse, Error> {
        let mut v = Violations::new();
        let client_id = v.check("client_id", parse_id(&req.client_id));
        let location_id = v.check("location_id", parse_id(&req.location_id));
        let (client_id, location_id) = v.finish_with(client_id.zip(location_id))?;
        let tz = self.time_zone(&ctx.caller, &location_id).await?;
        let db = self.db.reader();
        let client = store::live_client(db, &ctx.tenant, &client_id, "").await?;
        let now = self.clock.now();
        let rows = sqlx::query(
            "SELECT a.id, a.template_id, a.anchor_start, a.anchor_end, t.steps \
             FROM protocols_assignments a JOIN protocols_templates t ON t.id = a.template_id \
             WHERE a.tenant_id = $1 AND a.client_id = $2 ORDER BY a.id DESC LIMIT 100",
        )
        .bind(&ctx.tenant)
        .bind(&client_id)
        .fetch_all(db)
        .await?;
        let facts = store::facts(db, &ctx.tenant, &client, now).await?;
        let rules = store::rules(db, &ctx.tenant).await?;
        let mut out = Vec::new();
        for row in &rows {
            let assignment_id: String = row.try_get("id")?;
            let template_id: String = row.try_get("template_id")?;
            let anchor_start = from_micros(row.try_get("anchor_start")?);
            let anchor_end = from_micros(row.try_get("anchor_end")?);
            let steps: Vec<u8> = row.try_get("steps")?;
            let steps = pb::ProtocolTemplate::decode(steps.as_slice())
                .map_err(|e| Error::Internal(anyhow::Error::new(e).context("stored steps")))?
                .steps;
            for (i, step) in steps.into_iter().enumerate() {
                let Some((from, to)) = plan::window(&step, anchor_start, anchor_end, &tz) else {
                    continue;
                };
                if to <= now {
                    continue;
                }
                let modality = (step.modality != 0)
                    .then(|| model::modality(step.modality).ok())
                    .flatten();
                if let Some(m) = modality
                    && facts
                        .history
                        .iter()
                        .any(|s| s.modality == m && s.start >= from && s.start < to)
                {
                    continue;
                }
                let suggested = from.max(now);
                let evaluation = match modality {
                    Some(m) => {
                        let facts = if suggested == now {
                            facts.clone()
                        } else {
                            store::facts(db, &ctx.tenant, &client, suggested).await?
                        };
                        Some(evaluate(
                            &rules,
                            m,
                            suggested,
                            step.session_duration.as_ref(),
                            &tz,
                            &facts,
                        ))
                    }
                    None => None,
                };
                out.push(pb::Recommendation {
                    assignment_id: assignment_id.clone(),
                    template_id: template_id.clone(),
                    step_index: i32::try_from(i).unwrap_or(i32::MAX),
                    step: Some(step),
                    window_start_time: wire(from),
                    window_end_time: wire(to),
                    status: if from <= now {
                        pb::RecommendationStatus::Due
                    } else {
                        pb::RecommendationStatus::Upcoming
                    } as i32,
                    evaluation: evaluation.as_ref().map(evaluation_wire),
                    suggested_start_time: modality.and(wire(suggested)),
                });
            }
        }
        out.sort_by(|a, b| {
            let key = |r: &pb::Recommendation| {
                r.window_start_time
                    .as_ref()
                    .map(|t| (t.seconds, t.nanos))
                    .unwrap_or_default()
            };
            key(a)
                .cmp(&key(b))
                .then_with(|| a.assignment_id.cmp(&b.assignment_id))
                .then(a.step_index.cmp(&b.step_index))
        });
        Ok(pb::GetRecommendationsResponse {
            recommendations: out,
        })
    }

    async fn get_rule_config(
        &self,
        ctx: &Ctx,
        _req: pb::GetRuleConfigRequest,
    ) -> Result<pb::GetRuleConfigResponse, Error> {
        let stored = store::stored_rules(self.db.reader(), &ctx.tenant, "").await?;
        Ok(pb::GetRuleConfigResponse {
            is_default: stored.is_none(),
            rule_config: Some(stored.map_or_else(
                || model::rules_to_wire(&recovery_rules::Config::default()),
                |s| s.to_wire(),
            )),
        })
    }

    async fn update_rule_config(
        &self,
        ctx: &Ctx,
        req: pb::UpdateRuleConfigRequest,
    ) -> Result<pb::UpdateRuleConfigResponse, Error> {
        let now = self.clock.now();
        let patch = req.rule_config.unwrap_or_default();
        let mut v = Violations::new();
        let paths = model::mask(req.update_mask.map(|m| m.paths), &model::RULE_PATHS, &mut v);
        let paths = v.finish_with(paths)?;
        let actor = &ctx.caller.key_id;
        let mut tx = self.db.begin().await?;
        // Claim the row first so that two first changes queue on its lock.
        let defaults = recovery_rules::Config::default();
        store::save_rules(&mut tx, &ctx.tenant, &defaults, actor, now, false).await?;
        let mut config = store::stored_rules(&mut *tx, &ctx.tenant, self.db.lock_rows())
            .await?
            .map_or(defaults, |s| s.config);
        // Thresholds must agree with the ones kept, so validate against them;
        // on bad input the transaction is dropped and nothing is written.
        let mut v = Violations::new();
        model::apply_rules(&mut config, &patch, &paths, &mut v);
        v.finish()?;
        store::save_rules(&mut tx, &ctx.tenant, &config, actor, now, true).await?;
        store::audit(
            &mut tx,
            &ctx.tenant,
            "",
            actor,
            "rules.updated",
            &format!("fields {}: {config:?}", paths.join(", ")),
            now,
        )
        .await?;
        let saved = store::stored_rules(&mut *tx, &ctx.tenant, "")
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("rule config vanished")))?;
        tx.commit().await?;
        tracing::info!(fields = ?paths, "rule thresholds updated");
        Ok(pb::UpdateRuleConfigResponse {
            rule_config: Some(saved.to_wire()),
        })
    }

    async fn list_audit_events(
        &self,
        ctx: &Ctx,
        req: pb::ListAuditEventsRequest,
    ) -> Result<pb::ListAuditEventsResponse, Error> {
        let mut v = Violations::new();
        let client_id = if req.client_id.is_empty() {
            Some(String::new())
        } else {
            v.check("client_id", parse_id(&req.client_id))
        };
        let from = v
            .check(
                "start_time",
                model::optional_instant(req.start_time.as_ref()),
            )
            .flatten();
        let to = v
            .check("end_time", model::optional_instant(req.end_time.as_ref()))
            .flatten();
        if let (Some(from), Some(to)) = (from, to)
            && to <= from
        {
            v.add("end_time", "must be after start_time");
        }
        let page = Keyset::parse(req.page_size, &req.page_token, &mut v);
        let client_id = v.finish_with(client_id)?;
        let db = self.db.reader();
        if !client_id.is_empty() {
            // Another tenant's client is NOT_FOUND; an erased one keeps its trail.
            store::find_client(db, &ctx.tenant, &client_id, "").await?;
        }
        let (after_at, after_id) = page.after.clone().unwrap_or((i64::MAX, "~".to_owned()));
        let rows = sqlx::query(
            "SELECT id, client_id, actor, action, detail, occur_time FROM protocols_audit \
             WHERE tenant_id = $1 AND ($2 = '' OR client_id = $2) \
             AND occur_time >= $3 AND occur_time < $4 \
             AND (occur_time < $5 OR (occur_time = $5 AND id < $6)) \
             ORDER BY occur_time DESC, id DESC LIMIT $7",
        )
        .bind(&ctx.tenant)
        .bind(&client_id)
        .bind(from.map_or(i64::MIN, to_micros))
        .bind(to.map_or(i64::MAX, to_micros))
        .bind(after_at)
        .bind(&after_id)
        .bind(page.fetch())
        .fetch_all(db)
        .await?;
        let mut events = rows
            .iter()
            .map(|row| {
                let occur: i64 = row.try_get("occur_time")?;
                Ok((occur, store::audit_event(row)?))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let next_page_token = page.finish(&mut events, |(occur, e)| (*occur, e.id.as_str()));
        Ok(pb::ListAuditEventsResponse {
            events: events.into_iter().map(|(_, e)| e).collect(),
            next_page_token,
        })
    }

    async fn evaluate_session(
        &self,
        ctx: &Ctx,
        req: pb::EvaluateSessionRequest,
    ) -> Result<pb::EvaluateSessionResponse, Error> {
        let mut v = Violations::new();
        let client_id = v.check("client_id", parse_id(&req.client_id));
        let modality = v.check("modality", model::modality(req.modality));
        let start = v.check("start_time", instant(req.start_time.as_ref()));
        let duration = v.check("duration", model::session_duration(req.duration.as_ref()));
        let location_id = v.check("location_id", parse_id(&req.location_id));
        let (client_id, (modality, (start, (duration, location_id)))) =
            v.finish_with(client_id.zip(modality.zip(start.zip(duration.zip(location_id)))))?;
        let tz = self.time_zone(&ctx.caller, &location_id).await?;
        let db = self.db.reader();
        let client = store::live_client(db, &ctx.tenant, &client_id, "").await?;
        let facts = store::facts(db, &ctx.tenant, &client, start).await?;
        let rules = store::rules(db, &ctx.tenant).await?;
        let proposal = Proposal {
            modality,
            start,
            duration,
            time_zone: tz,
        };
        let result = recovery_rules::evaluate(&proposal, &facts, &rules);
        Ok(pb::EvaluateSessionResponse {
            evaluation: Some(evaluation(&result)),
        })
    }
}

/// The rules for a session step: its own duration, or the modality's
/// default (for whole-body cryotherapy the progression's recommendation).
fn evaluate(
    rules: &recovery_rules::Config,
    modality: Modality,
    start: Timestamp,
    duration: Option<&prost_types::Duration>,
    tz: &TimeZone,
    facts: &recovery_rules::ClientFacts,
) -> Evaluation {
    let given = duration.and_then(|d| model::session_duration(Some(d)).ok());
    let mut proposal = Proposal {
        modality,
        start,
        duration: given.unwrap_or(match modality {
            Modality::WholeBodyCryotherapy | Modality::LocalCryotherapy => {
                SignedDuration::from_mins(3)
            }
            _ => SignedDuration::from_mins(30),
        }),
        time_zone: tz.clone(),
    };
    let first = recovery_rules::evaluate(&proposal, facts, rules);
    match (given, first.recommended_duration) {
        (None, Some(recommended)) if recommended != proposal.duration => {
            proposal.duration = recommended;
            recovery_rules::evaluate(&proposal, facts, rules)
        }
        _ => first,
    }
}

fn evaluation_wire(e: &Evaluation) -> pb::Evaluation {
    evaluation(e)
}

fn template(row: &sqlx::any::AnyRow) -> Result<pb::ProtocolTemplate, Error> {
    let steps: Vec<u8> = row.try_get("steps")?;
    let steps = pb::ProtocolTemplate::decode(steps.as_slice())
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("stored steps")))?
        .steps;
    Ok(pb::ProtocolTemplate {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        description: row.try_get("description")?,
        steps,
        create_time: ts(row.try_get("create_time")?),
        created_by: row.try_get("created_by")?,
    })
}

/// Each RPC: authorise with its roles, run its handler, answer.
macro_rules! rpcs {
    ($($method:ident($request:ident -> $response:ident) $roles:expr;)*) => {
        #[tonic::async_trait]
        impl ProtocolService for Protocols {
            $(
                async fn $method(
                    &self,
                    request: Request<pb::$request>,
                ) -> Result<Response<pb::$response>, Status> {
                    let ctx = authorize(&request, $roles)?;
                    Ok(Response::new(
                        Protocols::$method(self, &ctx, request.into_inner()).await?,
                    ))
                }
            )*
        }
    };
}

rpcs! {
    create_client(CreateClientRequest -> CreateClientResponse) STUDIO;
    get_client(GetClientRequest -> GetClientResponse) STUDIO;
    list_clients(ListClientsRequest -> ListClientsResponse) STUDIO;
    update_client(UpdateClientRequest -> UpdateClientResponse) STUDIO;
    delete_client(DeleteClientRequest -> DeleteClientResponse) MANAGERS;
    record_screening(RecordScreeningRequest -> RecordScreeningResponse) STUDIO;
    get_screening(GetScreeningRequest -> GetScreeningResponse) STUDIO;
    sign_waiver(SignWaiverRequest -> SignWaiverResponse) STUDIO;
    get_waiver(GetWaiverRequest -> GetWaiverResponse) STUDIO;
    log_activity(LogActivityRequest -> LogActivityResponse) STUDIO;
    list_activities(ListActivitiesRequest -> ListActivitiesResponse) STUDIO;
    record_session(RecordSessionRequest -> RecordSessionResponse) STUDIO;
    list_timeline(ListTimelineRequest -> ListTimelineResponse) STUDIO;
    get_summary(GetSummaryRequest -> GetSummaryResponse) STUDIO;
    create_protocol_template(CreateProtocolTemplateRequest -> CreateProtocolTemplateResponse) MANAGERS;
    list_protocol_templates(ListProtocolTemplatesRequest -> ListProtocolTemplatesResponse) STUDIO;
    assign_protocol(AssignProtocolRequest -> AssignProtocolResponse) STUDIO;
    get_recommendations(GetRecommendationsRequest -> GetRecommendationsResponse) STUDIO;
    evaluate_session(EvaluateSessionRequest -> EvaluateSessionResponse) STUDIO;
    get_rule_config(GetRuleConfigRequest -> GetRuleConfigResponse) STUDIO;
    update_rule_config(UpdateRuleConfigRequest -> UpdateRuleConfigResponse) MANAGERS;
    list_audit_events(ListAuditEventsRequest -> ListAuditEventsResponse) MANAGERS;
}
