//! Hubs' telemetry: a client stream of readings, stored in batches (one
//! write transaction per batch), the latest reading kept on the device and
//! the history bounded per device; and the history, a page at a time.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use recovery_kit::page::Keyset;
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error, Scope, Violations};
use recovery_proto::fleet::v1 as pb;
use tonic::Streaming;

use crate::store::{self, ReadingRow};
use crate::{Fleet, Listing, wire};

/// A hub's reading, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    pub(crate) device_id: String,
    pub(crate) battery_percent: Option<u32>,
    pub(crate) charging: bool,
    pub(crate) temperature_c: Option<f64>,
    pub(crate) firmware_version: String,
    pub(crate) time: Timestamp,
}

/// Which readings `ListTelemetry` asks for.
#[derive(Debug, Clone)]
pub(crate) struct ReadingsQuery {
    pub(crate) device_id: String,
    /// Where the page starts: after the reading time and seq of the
    /// previous page's last reading.
    pub(crate) after: Option<(i64, i64)>,
}

impl Fleet {
    /// Stores a hub's stream; answers how many readings were stored.
    pub(crate) async fn ingest(
        &self,
        caller: &Caller,
        mut stream: Streaming<pb::ReportTelemetryRequest>,
    ) -> Result<i64, Error> {
        let Some(tenant_id) = caller.tenant_id.clone() else {
            return Err(Error::PermissionDenied(
                "device keys belong to a tenant".into(),
            ));
        };
        let batch_size = usize::try_from(self.config.batch).unwrap_or(500);
        let mut known = HashSet::new();
        let mut batch: Vec<Reading> = Vec::with_capacity(batch_size);
        let mut accepted = 0i64;
        let mut index = 0usize;
        loop {
            // Wait for a reading when nothing is pending; otherwise take what
            // has arrived already and store the batch when nothing more has.
            let next = if batch.is_empty() {
                stream.message().await
            } else {
                tokio::select! {
                    biased;
                    next = stream.message() => next,
                    () = std::future::ready(()) => {
                        accepted += self.store_batch(&tenant_id, &mut known, &mut batch).await?;
                        continue;
                    }
                }
            };
            match next {
                Ok(Some(message)) => {
                    let mut v = Violations::new();
                    let reading =
                        wire::reading(message.reading.as_ref(), index, self.clock.now(), &mut v);
                    let reading = v.finish_with(reading)?;
                    index += 1;
                    batch.push(reading);
                    if batch.len() >= batch_size {
                        accepted += self.store_batch(&tenant_id, &mut known, &mut batch).await?;
                    }
                }
                Ok(None) => {
                    accepted += self.store_batch(&tenant_id, &mut known, &mut batch).await?;
                    break;
                }
                Err(status) => {
                    // The hub went away mid-stream: keep what it sent whole.
                    accepted += self.store_batch(&tenant_id, &mut known, &mut batch).await?;
                    tracing::info!(code = ?status.code(), accepted, "telemetry stream broken");
                    return Err(Error::Unavailable(format!("telemetry stream: {status}")));
                }
            }
        }
        Ok(accepted)
    }

    /// Stores `batch` in one write transaction and empties it.
    async fn store_batch(
        &self,
        tenant_id: &str,
        known: &mut HashSet<String>,
        batch: &mut Vec<Reading>,
    ) -> Result<i64, Error> {
        if batch.is_empty() {
            return Ok(0);
        }
        let scope = Scope::tenant_of(tenant_id);
        for reading in batch.iter() {
            if !known.contains(&reading.device_id) {
                if !store::device_in_scope(&mut *self.db.read().await?, &scope, &reading.device_id)
                    .await?
                {
                    return Err(Error::not_found("device", &reading.device_id));
                }
                known.insert(reading.device_id.clone());
            }
        }
        let now = to_micros(self.clock.now());
        // The newest reading of each device in the batch.
        let mut latest: HashMap<&str, &Reading> = HashMap::new();
        for reading in batch.iter() {
            let entry = latest.entry(reading.device_id.as_str()).or_insert(reading);
            if reading.time >= entry.time {
                *entry = reading;
            }
        }
        let mut tx = self.db.begin().await?;
        store::store_readings(&mut tx, tenant_id, batch, now).await?;
        let times = self.times();
        let mut told = false;
        for reading in latest.values() {
            store::record_latest(&mut tx, reading, now, self.config.history).await?;
            // Only a change booking sees travels (back online, cold, warm).
            let device = store::device(&mut *tx, times, &Scope::All, &reading.device_id).await?;
            told |= self.tell(&mut tx, &device, now).await?;
        }
        tx.commit().await?;
        if told {
            self.outbox.wake();
        }
        let ids: Vec<String> = latest.keys().map(|id| (*id).to_owned()).collect();
        recovery_kit::metrics::readings_ingested(batch.len() as u64);
        let stored = i64::try_from(batch.len()).unwrap_or(i64::MAX);
        batch.clear();
        self.publish_ids(&ids).await?;
        Ok(stored)
    }

    /// A page of a device's readings, newest reading time first, then
    /// latest received: a keyset on (reading time, seq), so readings stored
    /// meanwhile never shift a later page.
    pub(crate) async fn telemetry(
        &self,
        caller: &Caller,
        query: ReadingsQuery,
        page: Keyset,
    ) -> Result<Listing<ReadingRow>, Error> {
        self.device(caller, &query.device_id).await?;
        let rows = store::readings(
            &mut *self.db.read().await?,
            &query.device_id,
            query.after,
            page.fetch(),
        )
        .await?;
        let mut rows: Vec<_> = rows.into_iter().map(|r| (key_of(r.seq), r)).collect();
        let next_page_token = page.finish(&mut rows, |(key, r)| (r.reading_time, key.as_str()));
        Ok(Listing::new(
            rows.into_iter().map(|(_, r)| r).collect(),
            next_page_token,
        ))
    }
}

/// A reading's tiebreaker in a page token: its storage sequence number.
fn key_of(seq: i64) -> String {
    seq.to_string()
}

/// The sequence number of a key made by [`key_of`]; `None` for any other
/// tiebreaker (a UUID from another list's token).
pub(crate) fn seq_of(key: &str) -> Option<i64> {
    key.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reading_keys_round_trip() {
        for seq in [0, 1, 42, i64::MAX] {
            assert_eq!(super::seq_of(&super::key_of(seq)), Some(seq));
        }
        assert_eq!(super::seq_of(&recovery_kit::ids::new_id()), None);
    }
}
