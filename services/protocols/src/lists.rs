//! Pages of `ListClients` and `ListTimeline` kept in memory, each under the
//! version of what it shows (migration 40060: a tenant's client list, a
//! client's timeline, bumped by triggers in every writing transaction,
//! whichever replica wrote it). A list reads the version first and serves
//! the page kept under that version when there is one: no change to it
//! committed since it was read, so it is what a read would return.

use std::sync::Arc;

use prost::Message;
use recovery_kit::Scope;
use recovery_kit::kept::Versioned;
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
}

impl Default for Kept {
    fn default() -> Self {
        Self {
            clients: Versioned::new(PAGES),
            timelines: Versioned::new(PAGES),
        }
    }
}
