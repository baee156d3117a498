//! A client's history: activities (training, races), the recovery sessions
//! they took, both merged into a timeline, and a summary of how sessions
//! helped.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::SignedDuration;
use recovery_kit::ids::new_id;
use recovery_kit::time::{from_proto, to_micros};
use recovery_kit::wire::stored_timestamp;
use recovery_kit::{Caller, Error, Lock, Scope};
use recovery_proto::protocols::v1 as pb;

use crate::audit::Action;
use crate::store::history::{EntryKind, ModalityCounts};
use crate::wire::history::{ActivityList, NewActivity, NewSession, TimelineQuery};
use crate::{Listed, Protocols, clients, lists, store};

/// How far back the summary's recent figures reach.
const RECENT: SignedDuration = SignedDuration::from_hours(24 * 30);

impl Protocols {
    /// `LogActivity`: once per `request_id`, for a client not erased.
    pub(crate) async fn add_activity(
        &self,
        caller: &Caller,
        scope: &Scope,
        new: NewActivity,
    ) -> Result<pb::Activity, Error> {
        let change = self.change(caller, scope);
        let key = new.key.as_ref();
        let (activity, fresh) = self
            .create_once(change, key, &new, |tx, (change, new)| {
                Box::pin(async move {
                    let client_id = new.client_id.as_str();
                    clients::live(tx, change.scope, client_id, Lock::ForUpdate).await?;
                    let id = new_id();
                    store::history::insert_activity(tx, change, &id, new).await?;
                    let kind = store::history::kind_code(new.kind);
                    let (start, end, notes) = (new.start, new.end, &new.notes);
                    let detail = format!("{kind} {start} to {end}, notes {notes:?}");
                    change
                        .audit(tx, Some(client_id), Action::ActivityLogged, detail)
                        .await?;
                    Ok(new.to_wire(id, change.now, change.actor))
                })
            })
            .await?;
        if fresh {
            tracing::info!(client_id = %new.client_id, activity_id = %activity.id, "activity logged");
        }
        Ok(activity)
    }

    /// `ListActivities`: newest start first.
    pub(crate) async fn activities(
        &self,
        scope: &Scope,
        list: ActivityList,
    ) -> Result<Listed<pb::Activity>, Error> {
        let mut conn = store::reader(&self.db).await?;
        store::clients::find(&mut conn, scope, &list.client_id, Lock::Read).await?;
        let mut activities =
            store::history::activities(&mut conn, scope, &list.client_id, &list.page).await?;
        let next_page_token = list.page.finish(&mut activities, |a| {
            (
                a.start_time
                    .as_ref()
                    .map_or(0, |t| to_micros(from_proto(t).unwrap_or_default())),
                a.id.as_str(),
            )
        });
        Ok(Listed {
            items: activities,
            next_page_token,
        })
    }

    /// `RecordSession`: once per `request_id`, for a client not erased, at
    /// a location of the caller's tenant when one is named. A session from a
    /// booking (`booking_id`) is recorded once per booking — a second
    /// delivery answers the first session — and, when the client was erased
    /// meanwhile, kept anonymous (without notes).
    pub(crate) async fn add_session(
        &self,
        caller: &Caller,
        scope: &Scope,
        new: NewSession,
    ) -> Result<pb::RecoverySession, Error> {
        if let Some(location_id) = &new.location_id {
            self.directory
                .location(caller, location_id, "session.location_id")
                .await?;
        }
        let change = self.change(caller, scope);
        let key = new.key.as_ref();
        let (session, fresh) = self
            .create_once(change, key, &new, |tx, (change, new)| {
                Box::pin(async move {
                    let client_id = new.client_id.as_str();
                    let erased = match &new.booking_id {
                        None => {
                            clients::live(tx, change.scope, client_id, Lock::ForUpdate).await?;
                            false
                        }
                        Some(booking_id) => {
                            // The client's lock queues deliveries of one
                            // booking; the first one recorded answers the rest.
                            let client =
                                store::clients::find(tx, change.scope, client_id, Lock::ForUpdate)
                                    .await?;
                            if let Some(first) =
                                store::history::session_of_booking(tx, change.scope, booking_id)
                                    .await?
                            {
                                return Ok(first);
                            }
                            client.erase_time.is_some()
                        }
                    };
                    let notes = if erased { "" } else { new.notes.as_str() };
                    let id = new_id();
                    store::history::insert_session(tx, change, &id, new, notes).await?;
                    let (modality, start) = (new.modality, new.start);
                    let (before, after) = (new.soreness_before, new.soreness_after);
                    let booking = new.booking_id.as_deref().unwrap_or_default();
                    let detail = if erased {
                        String::new()
                    } else {
                        format!(
                            "{modality} at {start}, soreness {before:?} to {after:?}, notes {notes:?}, booking {booking:?}"
                        )
                    };
                    change
                        .audit(tx, Some(client_id), Action::SessionRecorded, detail)
                        .await?;
                    store::history::sessions(tx, change.scope, &[id.as_str()])
                        .await?
                        .pop()
                        .ok_or_else(|| Error::Internal(anyhow::anyhow!("session just written")))
                })
            })
            .await?;
        if fresh {
            tracing::info!(client_id = %new.client_id, session_id = %session.id, "session recorded");
        }
        Ok(session)
    }

    /// `ListTimeline`: sessions and activities merged, newest first, on a
    /// keyset that holds still while entries arrive.
    pub(crate) async fn timeline(
        &self,
        scope: &Scope,
        query: TimelineQuery,
    ) -> Result<Listed<pb::TimelineEntry>, Error> {
        // The version first: a page read after it is at least as new.
        let read = || async {
            let mut counters = self.db.counter().await?;
            store::history::timeline_version(&mut counters, scope, &query.client_id).await
        };
        let version = self
            .kept
            .timeline_versions
            .read(&(scope.clone(), query.client_id.clone()), read)
            .await?;
        let key = (scope.clone(), query);
        if let Some(page) = self.kept.timelines.get(&key, version) {
            return Ok(Listed::clone(&page));
        }
        let query = &key.1;
        let mut conn = store::reader(&self.db).await?;
        store::clients::find(&mut conn, scope, &query.client_id, Lock::Read).await?;
        let mut keys = store::history::timeline(&mut conn, scope, query).await?;
        let next_page_token = query
            .page
            .finish(&mut keys, |key| (key.occur, key.id.as_str()));
        let ids = |kind: EntryKind| -> Vec<&str> {
            keys.iter()
                .filter(|key| key.kind == kind)
                .map(|key| key.id.as_str())
                .collect()
        };
        let mut sessions: HashMap<String, pb::RecoverySession> =
            store::history::sessions(&mut conn, scope, &ids(EntryKind::Session))
                .await?
                .into_iter()
                .map(|s| (s.id.clone(), s))
                .collect();
        let mut activities: HashMap<String, pb::Activity> =
            store::history::activities_by_id(&mut conn, scope, &ids(EntryKind::Activity))
                .await?
                .into_iter()
                .map(|a| (a.id.clone(), a))
                .collect();
        let entries = keys
            .into_iter()
            .filter_map(|key| {
                let entry = match key.kind {
                    EntryKind::Session => {
                        pb::timeline_entry::Entry::Session(sessions.remove(&key.id)?)
                    }
                    EntryKind::Activity => {
                        pb::timeline_entry::Entry::Activity(activities.remove(&key.id)?)
                    }
                };
                Some(pb::TimelineEntry {
                    occur_time: stored_timestamp(key.occur),
                    entry: Some(entry),
                })
            })
            .collect();
        drop(conn);
        let page = Listed {
            items: entries,
            next_page_token,
        };
        self.kept
            .timelines
            .put_weighed(key, version, Arc::new(page.clone()), lists::weight(&page));
        Ok(page)
    }

    /// `GetSummary`: sessions and soreness drops per modality and in all,
    /// all time and in the last 30 days, and the activities of those days.
    pub(crate) async fn summary(
        &self,
        scope: &Scope,
        client_id: &str,
    ) -> Result<pb::GetSummaryResponse, Error> {
        let mut conn = store::reader(&self.db).await?;
        store::clients::find(&mut conn, scope, client_id, Lock::Read).await?;
        let now = self.clock.now();
        let since = now.saturating_sub(RECENT).unwrap_or(now);
        let counts = store::history::modality_counts(&mut conn, scope, client_id, since).await?;
        let activities =
            store::history::activity_count(&mut conn, scope, client_id, since, now).await?;
        Ok(summarize(&counts, activities))
    }
}

/// The summary of per-modality counts and a count of recent activities.
fn summarize(counts: &[ModalityCounts], recent_activities: i64) -> pb::GetSummaryResponse {
    #[allow(clippy::cast_precision_loss)]
    let average = |sum: i64, n: i64| (n > 0).then(|| sum as f64 / n as f64);
    let count = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
    let mut out = pb::GetSummaryResponse::default();
    let (mut drop_sum, mut drop_n, mut total, mut recent) = (0, 0, 0, 0);
    for c in counts {
        out.modalities.push(pb::ModalitySummary {
            modality: c.modality.wire(),
            session_count: count(c.sessions),
            average_soreness_drop: average(c.drop_sum, c.drop_n),
            session_count_last_30_days: count(c.recent),
            average_soreness_drop_last_30_days: average(c.recent_drop_sum, c.recent_drop_n),
        });
        drop_sum += c.drop_sum;
        drop_n += c.drop_n;
        total += c.sessions;
        recent += c.recent;
    }
    out.modalities.sort_by_key(|m| m.modality);
    out.session_count = count(total);
    out.average_soreness_drop = average(drop_sum, drop_n);
    out.session_count_last_30_days = count(recent);
    out.activity_count_last_30_days = count(recent_activities);
    out
}
