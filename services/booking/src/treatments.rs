//! The catalog: treatments, what a session of each takes and the rules for
//! booking it.

use jiff::SignedDuration;
use recovery_kit::idempotency;
use recovery_kit::ids::new_id;
use recovery_kit::kept::Versioned;
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error, Lock, Scope};
use recovery_peers::DeviceNeed;
use recovery_proto::booking::v1 as pb;
use recovery_rules::Modality;
use recovery_scheduling as sched;
use sqlx::AnyConnection;

use crate::resources::ResourceKind;
use crate::store::{self, Treatment};
use crate::wire::{Named as _, NewTreatment, TreatmentPatch, TreatmentsQuery};
use crate::{Bookings, IDEMPOTENCY_TABLE};

/// What a session of a treatment takes and the rules for booking it.
#[derive(Debug, Clone)]
pub(crate) struct Terms {
    pub(crate) duration: SignedDuration,
    pub(crate) needs: Vec<Need>,
    pub(crate) step: SignedDuration,
    pub(crate) turnover: SignedDuration,
    pub(crate) min_notice: SignedDuration,
    pub(crate) max_days_ahead: i64,
    pub(crate) late_cancel: SignedDuration,
    /// Sessions of the modality per client and local day; 0: no limit.
    pub(crate) max_per_day: i64,
    /// Devices a session takes from fleet, reserved with the booking.
    pub(crate) device_needs: Vec<DeviceNeed>,
}

/// Treatments as searches last read them, each under its tenant's catalog
/// version at the time (`store::treatments::versions`): one is used only
/// while that version stands, so never after a change committed.
#[derive(Debug)]
pub(crate) struct Catalog {
    kept: Versioned<String, i64, Treatment>,
}

/// Treatments kept at most; a full catalog starts over.
const KEPT: usize = 1_000;

impl Default for Catalog {
    fn default() -> Self {
        Self {
            kept: Versioned::new(KEPT),
        }
    }
}

impl Catalog {
    /// The treatment `id` as kept under catalog `version`.
    pub(crate) fn get(&self, id: &str, version: i64) -> Option<Treatment> {
        self.kept.get(id, version)
    }

    /// Keeps `treatment`, read after catalog `version` was.
    pub(crate) fn put(&self, version: i64, treatment: &Treatment) {
        self.kept
            .put(treatment.id.clone(), version, treatment.clone());
    }
}

/// How many resources of a kind a session takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Need {
    pub(crate) kind: ResourceKind,
    pub(crate) count: u32,
}

impl Need {
    /// What a session of `modality` takes unless the treatment says.
    pub(crate) fn defaults(modality: Modality) -> Vec<Need> {
        let one = |kind| Need { kind, count: 1 };
        match modality {
            Modality::WholeBodyCryotherapy | Modality::LocalCryotherapy => {
                vec![one(ResourceKind::CryoChamber)]
            }
            Modality::StretchTherapy => {
                vec![one(ResourceKind::Room), one(ResourceKind::Therapist)]
            }
            Modality::Compression => vec![one(ResourceKind::CompressionStation)],
            Modality::InfraredSauna => vec![one(ResourceKind::Sauna)],
            Modality::PercussionMassage | Modality::Other => vec![one(ResourceKind::Room)],
        }
    }
}

impl Treatment {
    /// The treatment as the scheduler sees it.
    pub(crate) fn to_sched(&self) -> sched::Treatment {
        sched::Treatment {
            step: Some(self.terms.step),
            turnover: self.terms.turnover,
            ..sched::Treatment::new(
                self.terms.duration,
                self.terms
                    .needs
                    .iter()
                    .map(|n| sched::Need::new(n.kind.as_str(), n.count))
                    .collect(),
            )
        }
    }
}

impl Bookings {
    /// The treatment `id` as `scope` sees it.
    pub(crate) async fn treatment(
        &self,
        conn: &mut AnyConnection,
        scope: &Scope,
        id: &str,
        lock: Lock,
    ) -> Result<Treatment, Error> {
        store::treatments::get(conn, scope, id, lock)
            .await?
            .ok_or_else(|| Error::not_found("treatment", id))
    }

    pub(crate) async fn create_treatment(
        &self,
        caller: &Caller,
        new: NewTreatment,
    ) -> Result<pb::Treatment, Error> {
        let now = to_micros(self.clock.now());
        let treatment = Treatment {
            id: new_id(),
            tenant_id: new.tenant_id,
            display_name: new.display_name,
            modality: new.modality,
            terms: new.terms,
            archive_time: None,
            create_time: now,
            update_time: now,
        };
        let input = (&treatment, caller.key_id.as_str());
        let (created, _) = idempotency::create(
            &self.db,
            IDEMPOTENCY_TABLE,
            new.key.as_ref(),
            now,
            &input,
            |tx, (treatment, key_id)| {
                Box::pin(async move {
                    store::treatments::insert(tx, treatment, key_id).await?;
                    Ok(treatment.to_wire())
                })
            },
        )
        .await?;
        tracing::info!(treatment_id = %created.id, "treatment created");
        Ok(created)
    }

    pub(crate) async fn get_treatment(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::Treatment, Error> {
        let mut conn = self.db.read().await?;
        let treatment = self
            .treatment(&mut conn, &caller.scope()?, id, Lock::Read)
            .await?;
        Ok(treatment.to_wire())
    }

    pub(crate) async fn list_treatments(
        &self,
        caller: &Caller,
        query: TreatmentsQuery,
    ) -> Result<pb::ListTreatmentsResponse, Error> {
        let page = query.page;
        let mut conn = self.db.read().await?;
        let rows = store::treatments::list(
            &mut conn,
            &caller.scope()?,
            page.after.as_deref(),
            query.include_archived,
            page.fetch(),
        )
        .await?;
        let mut treatments: Vec<pb::Treatment> = rows.iter().map(Treatment::to_wire).collect();
        let next_page_token = page.finish(&mut treatments, |t| &t.id);
        Ok(pb::ListTreatmentsResponse {
            treatments,
            next_page_token,
        })
    }

    pub(crate) async fn update_treatment(
        &self,
        caller: &Caller,
        patch: TreatmentPatch,
    ) -> Result<pb::Treatment, Error> {
        let mut tx = self.db.begin().await?;
        let mut treatment = self
            .treatment(&mut tx, &caller.scope()?, &patch.id, Lock::ForUpdate)
            .await?;
        // Validate the merged treatment, so every rule holds after the update.
        let (display_name, terms) = patch.apply(&treatment)?;
        treatment.display_name = display_name;
        treatment.terms = terms;
        treatment.update_time = to_micros(self.clock.now());
        store::treatments::update(&mut tx, &treatment, &caller.key_id).await?;
        tx.commit().await?;
        tracing::info!(treatment_id = %patch.id, fields = ?patch.paths, "treatment updated");
        Ok(treatment.to_wire())
    }

    pub(crate) async fn archive_treatment(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::Treatment, Error> {
        let now = to_micros(self.clock.now());
        let mut tx = self.db.begin().await?;
        let mut treatment = self
            .treatment(&mut tx, &caller.scope()?, id, Lock::Read)
            .await?;
        if treatment.archive_time.is_none() {
            store::treatments::archive(&mut tx, id, now, &caller.key_id).await?;
            treatment.archive_time = Some(now);
            treatment.update_time = now;
        }
        tx.commit().await?;
        tracing::info!(treatment_id = %id, "treatment archived");
        Ok(treatment.to_wire())
    }
}
