//! The rules check: what the pure `recovery_rules` needs to know about a
//! client, gathered from storage, a proposal evaluated with the tenant's
//! thresholds, and those thresholds, read by the studio and changed by its
//! managers.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use recovery_kit::{Caller, Error, Lock, Scope};
use recovery_peers::Follows;
use recovery_proto::protocols::v1 as pb;
use recovery_rules::{ClientFacts, Config, Evaluation, Modality, Proposal};
use sqlx::AnyConnection;

use crate::audit::Action;
use crate::store::history::Span;
use crate::store::rules::{Save, StoredRules};
use crate::wire::date;
use crate::wire::rules::{RulePatch, SessionBatch, SessionProposal};
use crate::{Protocols, clients, store};

/// How far around a proposal activities matter: the cryo window looks back
/// hours, the race rule forward a day and an evening.
const ACTIVITY_REACH: SignedDuration = SignedDuration::from_hours(24 * 3);

/// What the rules need to know about `client` for a session at `start`:
/// date of birth, current screening and waiver, activities around the
/// start, and every session.
pub(crate) async fn facts(
    conn: &mut AnyConnection,
    scope: &Scope,
    client: &pb::Client,
    start: Timestamp,
) -> Result<ClientFacts, Error> {
    let (around, before) = reach(start, start);
    let stored = store::facts::read(conn, scope, &client.id, around, before).await?;
    client_facts(client, stored)
}

/// The client `id` (refused when erased, as [`clients::live`]), the
/// tenant's thresholds and what the rules need to know about the client
/// for sessions starting in `[first, last]` ([`facts`] with the activities
/// around all of them): one statement where the scope is one tenant.
pub(crate) async fn client_with_facts(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
    (first, last): (Timestamp, Timestamp),
) -> Result<(pb::Client, Config, ClientFacts), Error> {
    let (around, before) = reach(first, last);
    let (client, config, stored) = if let Some(tenant) = scope.tenant() {
        let (client, config, stored) =
            store::facts::read_with_client(conn, tenant, id, around, before).await?;
        (clients::living(client)?, config, stored)
    } else {
        let (client, config) = clients::live_with_config(conn, scope, id).await?;
        let stored = store::facts::read(conn, scope, &client.id, around, before).await?;
        (client, config, stored)
    };
    let facts = client_facts(&client, stored)?;
    Ok((client, config, facts))
}

/// The activities that matter to sessions starting in `[first, last]`:
/// those around them, and the last one that ended by `first`.
fn reach(first: Timestamp, last: Timestamp) -> ((Timestamp, Timestamp), Timestamp) {
    let around = (
        first.saturating_sub(ACTIVITY_REACH).unwrap_or(first),
        last.saturating_add(ACTIVITY_REACH).unwrap_or(last),
    );
    (around, first)
}

fn client_facts(client: &pb::Client, stored: store::facts::Stored) -> Result<ClientFacts, Error> {
    let date_of_birth = if client.date_of_birth.is_empty() {
        None
    } else {
        Some(date(&client.date_of_birth).map_err(anyhow::Error::msg)?)
    };
    Ok(ClientFacts {
        date_of_birth,
        screening: stored.screening,
        waiver: stored.waiver,
        activities: stored.activities,
        history: stored.history,
        // Booked sessions are the caller's to name (EvaluateSession's
        // `booked`): protocols does not hold bookings.
        booked: Vec::new(),
    })
}

/// The rules for a session step: its own duration, or the modality's
/// default (for whole-body cryotherapy the progression's recommendation).
pub(crate) fn evaluate_step(
    config: &Config,
    modality: Modality,
    start: Timestamp,
    duration: Option<SignedDuration>,
    tz: &TimeZone,
    facts: &ClientFacts,
) -> Evaluation {
    let mut proposal = Proposal {
        modality,
        start,
        duration: duration.unwrap_or(match modality {
            Modality::WholeBodyCryotherapy | Modality::LocalCryotherapy => {
                SignedDuration::from_mins(3)
            }
            _ => SignedDuration::from_mins(30),
        }),
        time_zone: tz.clone(),
    };
    let first = recovery_rules::evaluate(&proposal, facts, config);
    match (duration, first.recommended_duration) {
        (None, Some(recommended)) if recommended != proposal.duration => {
            proposal.duration = recommended;
            recovery_rules::evaluate(&proposal, facts, config)
        }
        _ => first,
    }
}

/// The rules' answers to a batch.
pub(crate) struct Batched {
    /// One per session, in order.
    pub(crate) evaluations: Vec<Evaluation>,
    /// The activity followed.
    pub(crate) activity: Option<Span>,
    /// The tenant's cryo window.
    pub(crate) cryo_window: SignedDuration,
}

impl Protocols {
    /// The time zone of a location the caller may see.
    pub(crate) async fn time_zone(
        &self,
        caller: &Caller,
        location_id: &str,
    ) -> Result<TimeZone, Error> {
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

    /// `EvaluateSession`: a proposed session for a client not erased, at a
    /// location of the caller's tenant, with the tenant's thresholds.
    pub(crate) async fn evaluate(
        &self,
        caller: &Caller,
        scope: &Scope,
        proposal: SessionProposal,
    ) -> Result<Evaluation, Error> {
        let tz = self.time_zone(caller, &proposal.location_id).await?;
        let mut conn = store::reader(&self.db).await?;
        let window = (proposal.start, proposal.start);
        let (_, config, mut facts) =
            client_with_facts(&mut conn, scope, &proposal.client_id, window).await?;
        facts.booked = proposal.booked;
        let proposal = Proposal {
            modality: proposal.modality,
            start: proposal.start,
            duration: proposal.duration,
            time_zone: tz,
        };
        Ok(recovery_rules::evaluate(&proposal, &facts, &config))
    }

    /// `EvaluateSessions`: each session of a batch for one client not
    /// erased, the client's facts and the tenant's thresholds read once,
    /// each location's time zone looked up once; and the activity followed.
    pub(crate) async fn evaluate_batch(
        &self,
        caller: &Caller,
        scope: &Scope,
        batch: SessionBatch,
    ) -> Result<Batched, Error> {
        let mut zones: HashMap<&str, TimeZone> = HashMap::new();
        for session in &batch.sessions {
            if !zones.contains_key(session.location_id.as_str()) {
                let tz = self.time_zone(caller, &session.location_id).await?;
                zones.insert(&session.location_id, tz);
            }
        }
        let starts = batch.sessions.iter().map(|s| s.start);
        let first = starts.clone().min().unwrap_or_else(|| self.clock.now());
        let last = starts.max().unwrap_or(first);
        let mut conn = store::reader(&self.db).await?;
        let (client, config, mut facts) =
            client_with_facts(&mut conn, scope, &batch.client_id, (first, last)).await?;
        facts.booked = batch.booked;
        let activity = match &batch.follows {
            Follows::Nothing => None,
            Follows::Activity(id) => Some(
                store::history::activity_span(&mut conn, scope, &client.id, id)
                    .await?
                    .ok_or_else(|| Error::not_found("activity of client", id))?,
            ),
            Follows::LastActivity => {
                store::history::last_activity(&mut conn, scope, &client.id, self.clock.now())
                    .await?
            }
        };
        drop(conn);
        let evaluations = batch
            .sessions
            .iter()
            .map(|s| {
                let proposal = Proposal {
                    modality: s.modality,
                    start: s.start,
                    duration: s.duration,
                    time_zone: zones
                        .get(s.location_id.as_str())
                        .cloned()
                        .unwrap_or(TimeZone::UTC),
                };
                recovery_rules::evaluate(&proposal, &facts, &config)
            })
            .collect();
        Ok(Batched {
            evaluations,
            activity,
            cryo_window: config.cryo_window,
        })
    }

    /// `GetRuleConfig`: the tenant's thresholds, `None` while the studio
    /// defaults apply.
    pub(crate) async fn rule_config(&self, scope: &Scope) -> Result<Option<StoredRules>, Error> {
        let mut conn = store::reader(&self.db).await?;
        store::rules::stored(&mut conn, scope, Lock::Read).await
    }

    /// `UpdateRuleConfig`: the named thresholds, checked against the ones
    /// kept; audited.
    pub(crate) async fn change_rules(
        &self,
        caller: &Caller,
        scope: &Scope,
        patch: RulePatch,
    ) -> Result<StoredRules, Error> {
        let change = self.change(caller, scope);
        let mut tx = self.db.begin().await?;
        // Claim the row first so that two first changes queue on its lock.
        let defaults = Config::default();
        store::rules::save(&mut tx, &change, &defaults, Save::Claim).await?;
        let mut config = store::rules::stored(&mut tx, scope, Lock::ForUpdate)
            .await?
            .map_or(defaults, |s| s.config);
        // On bad input the transaction is dropped and nothing is written.
        patch.apply(&mut config)?;
        store::rules::save(&mut tx, &change, &config, Save::Overwrite).await?;
        let detail = format!("fields {}: {config:?}", patch.paths.join(", "));
        change
            .audit(&mut tx, None, Action::RulesUpdated, detail)
            .await?;
        let saved = store::rules::stored(&mut tx, scope, Lock::Read)
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("rule config vanished")))?;
        tx.commit().await?;
        tracing::info!(fields = ?patch.paths, "rule thresholds updated");
        Ok(saved)
    }
}
