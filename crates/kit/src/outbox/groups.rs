//! With Redis, each [`Consumer`] reads its topics' streams through a
//! consumer group named after it (`booking.workflow`, ...), as a group
//! member named after the process (host, pid and a fresh id): replicas
//! split the entries between them, at least once.
//!
//! - An entry is acknowledged (`XACK`) only after the consumer succeeded;
//!   a failure keeps it (and the entries behind it) for a retry with
//!   backoff, in order.
//! - Entries a member read and never acknowledged (it was killed) are
//!   claimed by another after [`super::CLAIM_IDLE`] (`XAUTOCLAIM`).
//! - One decision per event id, whichever entry carries it (a relay that
//!   died between its append and its commit appends the row again) and
//!   whichever member reads it: before consuming, a member takes the
//!   marker `<prefix>:consumed:<group>:<event id>` (`SET NX PX`, for as
//!   long as an entry may stay unclaimed); after, it marks it done for a
//!   day. An event already done is acknowledged without consuming it; one
//!   another member is taking waits.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use tracing::Instrument as _;

use super::{Consumer, delivery_span, next_backoff};
use crate::events::streams::{Streams, decode};

/// How long one `XREADGROUP` waits for new entries at most.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read or claimed at once per stream.
const BATCH: usize = 100;
/// How long an event's "done" marker is kept: far longer than any entry
/// waits in a stream.
const DONE_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// A group member that holds nothing and has not read for this long is
/// removed from the group (restarted processes are new members).
const FORGET_MEMBERS_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// The marker's value once the event was consumed.
const DONE: &str = "done";

/// One consumer's reader.
pub(super) struct Group {
    consumer: Arc<dyn Consumer>,
    streams: Arc<Streams>,
    topics: Vec<&'static str>,
    keys: Vec<String>,
    /// This process's name in the group.
    me: String,
    claim_idle: Duration,
}

/// What one round did.
enum Round {
    /// Everything read was taken (or nothing came).
    Done,
    /// An entry could not be taken now; it and those behind it wait.
    Stalled,
}

/// What became of one entry.
enum Taken {
    /// Consumed now, or found consumed before: acknowledged.
    Yes,
    /// The consumer failed, or another member is taking the event.
    NotNow,
}

impl Group {
    pub(super) fn new(
        consumer: Arc<dyn Consumer>,
        streams: Arc<Streams>,
        topics: Vec<&'static str>,
        claim_idle: Duration,
    ) -> Self {
        let keys = topics.iter().map(|topic| streams.key(topic)).collect();
        Self {
            consumer,
            streams,
            topics,
            keys,
            me: member_name(),
            claim_idle,
        }
    }

    fn group(&self) -> &'static str {
        self.consumer.name()
    }

    /// Reads, consumes and acknowledges until the task is dropped.
    pub(super) async fn run(self) {
        let connection = match ConnectionManager::new_lazy_with_config(
            self.streams.client().clone(),
            ConnectionManagerConfig::new()
                .set_number_of_retries(1)
                .set_connection_timeout(Some(Duration::from_secs(1)))
                // A blocked XREADGROUP answers after BLOCK at the latest.
                .set_response_timeout(Some(BLOCK + Duration::from_secs(5))),
        ) {
            Ok(connection) => connection,
            Err(error) => {
                tracing::error!(group = self.group(), error = %error, "consumer group reader cannot start");
                return;
            }
        };
        let mut reader = Reader {
            group: &self,
            connection,
            ready: false,
            waiting: VecDeque::new(),
            last_claim: None,
        };
        let mut backoff = Duration::ZERO;
        let mut failing = false;
        loop {
            match reader.round().await {
                Ok(Round::Done) => {
                    if failing {
                        tracing::info!(
                            group = self.group(),
                            "consumer group reader reaches redis again"
                        );
                        failing = false;
                    }
                    backoff = Duration::ZERO;
                    continue;
                }
                Ok(Round::Stalled) => {}
                Err(error) => {
                    if !failing {
                        tracing::warn!(
                            group = self.group(),
                            error = %error,
                            "consumer group read failed (redis unreachable, or its streams deleted); retrying"
                        );
                        failing = true;
                    }
                    // The group may be gone with Redis's data: make it again.
                    reader.ready = false;
                }
            }
            backoff = next_backoff(backoff);
            tokio::time::sleep(backoff).await;
        }
    }
}

struct Reader<'a> {
    group: &'a Group,
    connection: ConnectionManager,
    /// Whether the groups exist (made once per connection to Redis).
    ready: bool,
    /// Entries read and not yet taken, oldest first: (stream index, entry).
    waiting: VecDeque<(usize, StreamId)>,
    last_claim: Option<Instant>,
}

impl Reader<'_> {
    /// Takes what waits; else what dead members left; else new entries.
    async fn round(&mut self) -> redis::RedisResult<Round> {
        if !self.ready {
            self.create_groups().await?;
            self.ready = true;
        }
        if self.waiting.is_empty() && self.claim_due() {
            self.claim().await?;
        }
        if self.waiting.is_empty() {
            self.read_new().await?;
        }
        while let Some((at, entry)) = self.waiting.front().cloned() {
            match self.take(at, &entry).await? {
                Taken::Yes => {
                    let _: i64 = self
                        .connection
                        .xack(&self.group.keys[at], self.group.group(), &[&entry.id])
                        .await?;
                    self.waiting.pop_front();
                }
                Taken::NotNow => return Ok(Round::Stalled),
            }
        }
        Ok(Round::Done)
    }

    /// Makes the group on each stream (and the stream), reading from the
    /// stream's start: what the relay appended before the first reader
    /// started is read too.
    async fn create_groups(&mut self) -> redis::RedisResult<()> {
        for key in &self.group.keys {
            let made: redis::RedisResult<()> = self
                .connection
                .xgroup_create_mkstream(key, self.group.group(), "0")
                .await;
            match made {
                Err(error) if error.code() == Some("BUSYGROUP") => {}
                other => other?,
            }
            // Every restart is a new member: forget old ones that hold
            // nothing and have been silent for long.
            let members: redis::streams::StreamInfoConsumersReply = self
                .connection
                .xinfo_consumers(key, self.group.group())
                .await?;
            for member in members.consumers {
                if member.pending == 0
                    && member.name != self.group.me
                    && Duration::from_millis(u64::try_from(member.idle).unwrap_or(u64::MAX))
                        >= FORGET_MEMBERS_AFTER
                {
                    let _: i64 = self
                        .connection
                        .xgroup_delconsumer(key, self.group.group(), &member.name)
                        .await?;
                }
            }
        }
        Ok(())
    }

    fn claim_due(&self) -> bool {
        // Often enough that a dead member's entries wait about claim_idle.
        let every = (self.group.claim_idle / 2).max(Duration::from_millis(50));
        self.last_claim.is_none_or(|at| at.elapsed() >= every)
    }

    /// Claims entries other members read and left for `claim_idle`.
    async fn claim(&mut self) -> redis::RedisResult<()> {
        self.last_claim = Some(Instant::now());
        let idle = u64::try_from(self.group.claim_idle.as_millis()).unwrap_or(u64::MAX);
        for at in 0..self.group.keys.len() {
            let reply: redis::streams::StreamAutoClaimReply = self
                .connection
                .xautoclaim_options(
                    &self.group.keys[at],
                    self.group.group(),
                    &self.group.me,
                    idle,
                    "0-0",
                    StreamAutoClaimOptions::default().count(BATCH),
                )
                .await?;
            if !reply.claimed.is_empty() {
                tracing::info!(
                    group = self.group.group(),
                    stream = %self.group.keys[at],
                    entries = reply.claimed.len(),
                    "claimed entries a silent consumer left"
                );
            }
            self.waiting
                .extend(reply.claimed.into_iter().map(|entry| (at, entry)));
        }
        Ok(())
    }

    /// New entries of the group, after waiting at most [`BLOCK`] (or the
    /// claim interval, whichever is shorter).
    async fn read_new(&mut self) -> redis::RedisResult<()> {
        let block = BLOCK.min(self.group.claim_idle.max(Duration::from_millis(100)));
        let options = StreamReadOptions::default()
            .group(self.group.group(), &self.group.me)
            .block(usize::try_from(block.as_millis()).unwrap_or(usize::MAX))
            .count(BATCH);
        let new = vec![">"; self.group.keys.len()];
        let reply: Option<StreamReadReply> = self
            .connection
            .xread_options(&self.group.keys, &new, &options)
            .await?;
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            if let Some(at) = self.group.keys.iter().position(|k| *k == stream.key) {
                self.waiting
                    .extend(stream.ids.into_iter().map(|entry| (at, entry)));
            }
        }
        Ok(())
    }

    /// Consumes the entry unless its event was decided already.
    async fn take(&mut self, at: usize, entry: &StreamId) -> redis::RedisResult<Taken> {
        let group = self.group;
        let Some((_, event)) = decode(entry, group.topics[at]) else {
            tracing::warn!(
                group = group.group(),
                entry = %entry.id,
                "skipped an outbox entry that does not decode"
            );
            return Ok(Taken::Yes);
        };
        let marker = format!(
            "{}:consumed:{}:{}",
            group.streams.prefix(),
            group.group(),
            event.id
        );
        let hold = u64::try_from(group.claim_idle.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let taken: Option<String> = redis::cmd("SET")
            .arg(&marker)
            .arg(&group.me)
            .arg("NX")
            .arg("PX")
            .arg(hold)
            .query_async(&mut self.connection)
            .await?;
        if taken.is_none() {
            let holder: Option<String> = self.connection.get(&marker).await?;
            match holder.as_deref() {
                Some(DONE) => {
                    tracing::debug!(group = group.group(), event_id = %event.id, "event consumed before; acknowledged");
                    return Ok(Taken::Yes);
                }
                // Ours, from a try that failed: try again.
                Some(holder) if holder == group.me => {
                    let _: () = self.connection.pset_ex(&marker, &group.me, hold).await?;
                }
                // Another member is taking it (or its hold just ended).
                _ => return Ok(Taken::NotNow),
            }
        }
        let consumed = group
            .consumer
            .consume(&event)
            .instrument(delivery_span(&event))
            .await;
        match consumed {
            Ok(()) => {
                let _: () = self
                    .connection
                    .set_ex(&marker, DONE, DONE_FOR.as_secs())
                    .await?;
                Ok(Taken::Yes)
            }
            Err(error) => {
                tracing::warn!(
                    consumer = group.group(),
                    event_id = %event.id,
                    topic = event.topic,
                    error = %error,
                    "consumer failed; retrying later"
                );
                Ok(Taken::NotNow)
            }
        }
    }
}

/// This process's member name: host, pid and a fresh id (a restarted
/// process is a new member; what the old one left is claimed).
fn member_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}-{}", std::process::id(), crate::ids::new_id())
}
