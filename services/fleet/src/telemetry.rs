//! Hubs' telemetry: a client stream of readings, stored in batches (one
//! write transaction per batch), the latest reading kept on the device and
//! the history bounded per device.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error, Violations};
use recovery_proto::fleet::v1 as pb;
use tonic::Streaming;

use crate::Fleet;
use crate::model::Reading;

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
                    let reading = Reading::from_wire(
                        message.reading.as_ref(),
                        index,
                        self.clock.now(),
                        &mut v,
                    );
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
        for reading in batch.iter() {
            if !known.contains(&reading.device_id) {
                let found = sqlx::query("SELECT id FROM devices WHERE id = $1 AND tenant_id = $2")
                    .bind(&reading.device_id)
                    .bind(tenant_id)
                    .fetch_optional(self.db.reader())
                    .await?;
                if found.is_none() {
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
        let mut sql = String::from(
            "INSERT INTO device_readings (tenant_id, device_id, reading_time, battery_percent, \
             charging, temperature_c, firmware_version, receive_time) VALUES ",
        );
        for i in 0..batch.len() {
            let b = i * 6;
            if i > 0 {
                sql.push_str(", ");
            }
            let _ = write!(
                sql,
                "($1, ${}, ${}, ${}, ${}, ${}, ${}, $2)",
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8
            );
        }
        let mut insert = sqlx::query(&sql).bind(tenant_id).bind(now);
        for r in batch.iter() {
            insert = insert
                .bind(&r.device_id)
                .bind(to_micros(r.time))
                .bind(r.battery_percent.map(i64::from))
                .bind(i64::from(r.charging))
                .bind(r.temperature_c)
                .bind(&r.firmware_version);
        }
        let mut tx = self.db.begin().await?;
        insert.execute(&mut *tx).await?;
        for (device_id, r) in &latest {
            sqlx::query(
                "UPDATE devices SET battery_percent = $1, charging = $2, temperature_c = $3, \
                 reading_time = $4, \
                 firmware_version = CASE WHEN $5 = '' THEN firmware_version ELSE $5 END \
                 WHERE id = $6 AND (reading_time IS NULL OR reading_time <= $4)",
            )
            .bind(r.battery_percent.map(i64::from))
            .bind(i64::from(r.charging))
            .bind(r.temperature_c)
            .bind(to_micros(r.time))
            .bind(&r.firmware_version)
            .bind(*device_id)
            .execute(&mut *tx)
            .await?;
            // A report is a heartbeat: an offline device is back, and an
            // idle one is charging or not as its latest reading says.
            sqlx::query(
                "UPDATE devices SET last_seen = $1, update_time = $1, state = CASE \
                 WHEN state IN ('available', 'charging', 'offline') \
                   THEN CASE WHEN charging = 1 THEN 'charging' ELSE 'available' END \
                 ELSE state END WHERE id = $2",
            )
            .bind(now)
            .bind(*device_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM device_readings WHERE device_id = $1 AND seq <= \
                 (SELECT seq FROM device_readings WHERE device_id = $1 \
                  ORDER BY seq DESC LIMIT 1 OFFSET $2)",
            )
            .bind(*device_id)
            .bind(i64::from(self.config.history))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let ids: Vec<String> = latest.keys().map(|id| (*id).to_owned()).collect();
        let stored = i64::try_from(batch.len()).unwrap_or(i64::MAX);
        batch.clear();
        self.publish_ids(&ids).await?;
        Ok(stored)
    }
}

/// A reading's tiebreaker in a page token: its storage sequence number.
pub(crate) fn key_of(seq: i64) -> String {
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
