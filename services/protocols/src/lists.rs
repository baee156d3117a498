//! Pages of `ListClients` and `ListTimeline` kept in memory, each under the
//! version of what it shows (migration 40060: a tenant's client list, a
//! client's timeline, bumped by triggers in every writing transaction,
//! whichever replica wrote it). A list reads the version first and serves
//! the page kept under that version when there is one: no change to it
//! committed since it was read, so it is what a read would return. Lists
//! asking at once share one read of the version (`kit::kept::Shared`).

use std::sync::Arc;

use prost::Message;
use recovery_kit::Scope;
use recovery_kit::kept::{Shared, Versioned};
use recovery_proto::protocols::v1 as pb;

use crate::Listed;
use crate::wire::clients::ClientSearch;
use crate::wire::history::TimelineQuery;

/// Pages kept at most per list, in encoded bytes (in memory a few times
/// that); a full cache starts over (a studio pages through a few searches
/// and the timelines of the clients in today).
const PAGES: usize = 1 << 20;

/// What a page weighs against [`PAGES`]: its items' encoded size.
pub(crate) fn weight<T: Message>(page: &Listed<T>) -> usize {
    page.items.iter().map(Message::encoded_len).sum()
}

/// The kept pages.
#[derive(Debug)]
pub(crate) struct Kept {
    /// Pages of a tenant's clients, by search, under its client list version.
    pub(crate) clients: Versioned<(Scope, ClientSearch), i64, Arc<Listed<pb::Client>>>,
    /// Pages of a client's timeline, by query, under its timeline version.
    pub(crate) timelines: Versioned<(Scope, TimelineQuery), i64, Arc<Listed<pb::TimelineEntry>>>,
    /// Reads of a tenant's client list version, shared by lists asking at once.
    pub(crate) client_versions: Shared<Scope, i64>,
    /// Reads of a client's timeline version, shared likewise.
    pub(crate) timeline_versions: Shared<(Scope, String), i64>,
}

impl Default for Kept {
    fn default() -> Self {
        Self {
            clients: Versioned::new(PAGES),
            timelines: Versioned::new(PAGES),
            client_versions: Shared::default(),
            timeline_versions: Shared::default(),
        }
    }
}
