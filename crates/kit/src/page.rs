//! List pagination: `page_size` (default 50, at most 500) and an opaque
//! `page_token` that resumes after the last id of the previous page
//! ([`Page`]), or after the last `(position, id)` pair for lists ordered by
//! something other than the id, such as a time ([`Keyset`]).
//!
//! A token is bound to the list that made it, the caller's tenant and the
//! list's filter (every request field but the page size and token): it
//! carries an HMAC over those and its cursor under the deployment's
//! [`TokenKey`], so a token used on another list, by another tenant or with
//! a changed filter is refused with INVALID_ARGUMENT, and a forged cursor
//! never reaches a query. The page size may change from page to page.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

use crate::{Scope, Violations};

/// The key that signs page tokens. One per deployment: it is kept in the
/// database ([`crate::db::Db::token_key`]), so every replica and every
/// restart accepts the others' tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey(Arc<[u8; 32]>);

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

impl TokenKey {
    /// A key of these bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Arc::new(bytes))
    }

    /// A fresh random key (tokens it signs die with the process).
    pub fn random() -> Self {
        let mut bytes = [0; 32];
        // The OS's generator failing leaves a key of zeros: tokens are then
        // still bound to their list, tenant and filter, just forgeable.
        let _ = getrandom::fill(&mut bytes);
        Self::new(bytes)
    }

    /// What a list request's tokens are bound to: the list (the request's
    /// type), whose rows the caller sees, and the filter: `unpaged` is the
    /// request with its page size and token cleared.
    pub fn bind<M: prost::Message>(&self, scope: &Scope, unpaged: &M) -> Binding {
        let mut context = Sha256::new();
        context.update(std::any::type_name::<M>());
        context.update([0]);
        context.update(scope.tenant().unwrap_or("*"));
        context.update([0]);
        context.update(unpaged.encode_to_vec());
        Binding {
            key: Arc::clone(&self.0),
            context: context.finalize().into(),
        }
    }
}

/// A list request's list, tenant and filter, under a [`TokenKey`]: what its
/// page tokens are bound to.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    key: Arc<[u8; 32]>,
    context: [u8; 32],
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Binding(…)")
    }
}

/// How many bytes of the HMAC a token carries.
const TAG: usize = 16;
/// The first bytes of every bound token (its format's version).
const VERSION: &[u8] = b"p2";

impl Binding {
    /// A binding for a service's own paging that never leaves the process
    /// (its tokens are never handed to a caller).
    pub fn internal() -> Self {
        Self {
            key: Arc::new([0; 32]),
            context: [0; 32],
        }
    }

    /// The HMAC of `cursor` in this binding's context.
    fn mac(&self, cursor: &str) -> Hmac<Sha256> {
        // HMAC pads a key shorter than SHA-256's 64-byte block with zeros.
        let mut block = [0; 64];
        block[..32].copy_from_slice(self.key.as_slice());
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
        mac.update(&self.context);
        mac.update(cursor.as_bytes());
        mac
    }

    fn tag(&self, cursor: &str) -> [u8; TAG] {
        let full = self.mac(cursor).finalize().into_bytes();
        let mut tag = [0; TAG];
        tag.copy_from_slice(&full[..TAG]);
        tag
    }

    /// The token of `cursor`.
    fn seal(&self, cursor: &str) -> String {
        let mut bytes = VERSION.to_vec();
        bytes.extend_from_slice(&self.tag(cursor));
        bytes.extend_from_slice(cursor.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor of `token`, if this binding sealed it.
    fn open(&self, token: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let rest = bytes.strip_prefix(VERSION)?;
        let (tag, cursor) = rest.split_at_checked(TAG)?;
        let cursor = std::str::from_utf8(cursor).ok()?;
        self.mac(cursor).verify_truncated_left(tag).ok()?;
        Some(cursor.to_owned())
    }
}

/// The refusal of a token that is not this list's.
const NOT_OURS: &str = "not a token from a previous page of this list (a token holds only for \
                        the list, the tenant and the filter it came from)";

/// The default page size.
pub const DEFAULT_SIZE: i64 = 50;
/// The largest page size; larger requests are served this many.
pub const MAX_SIZE: i64 = 500;

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Page {
    /// How many items to return.
    pub size: i64,
    /// Resume strictly after this id; `None` from the start.
    pub after: Option<String>,
    /// What the next page's token is bound to.
    pub binding: Binding,
}

impl Page {
    /// Validates `page_size` and `page_token` (which must come from a page
    /// of the list `binding` describes), recording field problems.
    pub fn parse(
        page_size: i32,
        page_token: &str,
        binding: &Binding,
        violations: &mut Violations,
    ) -> Page {
        let size = size(page_size, violations);
        let after = if page_token.is_empty() {
            None
        } else if let Some(id) = binding.open(page_token).and_then(|c| decode(&c)) {
            Some(id)
        } else {
            violations.add("page_token", NOT_OURS);
            None
        };
        Page {
            size,
            after,
            binding: binding.clone(),
        }
    }

    /// The first page of `size` items, for a service's own paging.
    pub fn first(size: i64) -> Page {
        Page {
            size,
            after: None,
            binding: Binding::internal(),
        }
    }

    /// How many rows to fetch: one more than the page, to know if more exist.
    pub fn fetch(&self) -> i64 {
        self.size + 1
    }

    /// The cursor for queries: `after` or the empty string (every UUID sorts
    /// after it).
    pub fn cursor(&self) -> &str {
        self.after.as_deref().unwrap_or("")
    }

    /// Trims `rows` (fetched with [`Page::fetch`]) to the page and returns
    /// the next page token, empty on the last page.
    pub fn finish<T>(&self, rows: &mut Vec<T>, id: impl Fn(&T) -> &str) -> String {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if rows.len() > size {
            rows.truncate(size);
            rows.last()
                .map(|last| self.binding.seal(&format!("v1:{}", id(last))))
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}

/// One page of a list and the token of the next (empty on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// The token that resumes after them.
    pub next_page_token: String,
}

impl<T> Listed<T> {
    /// `rows` fetched for `page` (one more than it holds), cut to the page.
    pub fn new(page: &Page, mut rows: Vec<T>, id: impl Fn(&T) -> &str) -> Self {
        let next_page_token = page.finish(&mut rows, id);
        Self {
            items: rows,
            next_page_token,
        }
    }

    /// The same page with each item converted (e.g. to its wire form).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listed<U> {
        Listed {
            items: self.items.into_iter().map(f).collect(),
            next_page_token: self.next_page_token,
        }
    }
}

/// A validated page request for a list ordered by `(position, id)`, e.g.
/// an occurrence time in microseconds and then the id. Resuming after the
/// last pair (a keyset cursor) keeps pages stable while rows are added.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Keyset {
    /// How many items to return.
    pub size: i64,
    /// Resume strictly after this `(position, tiebreaker)`; the tiebreaker
    /// is a UUID or a decimal sequence number. `None` from the start.
    pub after: Option<(i64, String)>,
    /// What the next page's token is bound to.
    pub binding: Binding,
}

impl Keyset {
    /// Validates `page_size` and `page_token` (which must come from a page
    /// of the list `binding` describes), recording field problems.
    pub fn parse(
        page_size: i32,
        page_token: &str,
        binding: &Binding,
        violations: &mut Violations,
    ) -> Keyset {
        let size = size(page_size, violations);
        let after = if page_token.is_empty() {
            None
        } else if let Some(pair) = binding.open(page_token).and_then(|c| decode_pair(&c)) {
            Some(pair)
        } else {
            violations.add("page_token", NOT_OURS);
            None
        };
        Keyset {
            size,
            after,
            binding: binding.clone(),
        }
    }

    /// How many rows to fetch: one more than the page, to know if more exist.
    pub fn fetch(&self) -> i64 {
        self.size + 1
    }

    /// The condition of a newest-first list (`ORDER BY column DESC, id
    /// DESC`) for the rows after the cursor, its pair bound as `$n` and
    /// `$n+1`: written only when there is a cursor ([`crate::db::optional`]).
    pub fn older_than(&self, column: &str, n: u8) -> String {
        let id = n.saturating_add(1);
        crate::db::optional(
            self.after.is_some(),
            &format!("{column} < ${n} OR ({column} = ${n} AND id < ${id})"),
            &[n, id],
        )
    }

    /// Trims `rows` (fetched with [`Keyset::fetch`]) to the page and returns
    /// the next page token, empty on the last page.
    pub fn finish<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> (i64, &str)) -> String {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if rows.len() > size {
            rows.truncate(size);
            rows.last()
                .map(|last| {
                    let (position, id) = key(last);
                    self.binding.seal(&format!("k1:{position}:{id}"))
                })
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}

/// A page size: 0 is the default, more than [`MAX_SIZE`] is served
/// [`MAX_SIZE`].
fn size(page_size: i32, violations: &mut Violations) -> i64 {
    match page_size {
        0 => DEFAULT_SIZE,
        n if n < 0 => {
            violations.add("page_size", "must not be negative");
            DEFAULT_SIZE
        }
        n => i64::from(n).min(MAX_SIZE),
    }
}

fn decode_pair(text: &str) -> Option<(i64, String)> {
    let (position, id) = text.strip_prefix("k1:")?.split_once(':')?;
    let position = position.parse().ok()?;
    // The tiebreaker is a UUID, or a row's sequence number for rows that
    // have no UUID (telemetry readings).
    let id = match uuid::Uuid::try_parse(id) {
        Ok(uuid) => uuid.to_string(),
        Err(_) if id.parse::<u64>().is_ok() && id.len() <= 20 => id.to_owned(),
        Err(_) => return None,
    };
    Some((position, id))
}

fn decode(text: &str) -> Option<String> {
    let id = text.strip_prefix("v1:")?;
    uuid::Uuid::try_parse(id).ok().map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two list requests of different lists, for bindings (any messages do).
    type ListA = prost_types::Duration;
    type ListB = prost_types::Timestamp;

    fn tenant(id: &str) -> Scope {
        Scope::Tenant(id.to_owned())
    }

    fn filter(seconds: i64) -> ListA {
        ListA { seconds, nanos: 0 }
    }

    #[test]
    fn sizes() {
        let mut v = Violations::new();
        let b = Binding::internal();
        assert_eq!(Page::parse(0, "", &b, &mut v).size, 50);
        assert_eq!(Page::parse(7, "", &b, &mut v).size, 7);
        assert_eq!(Page::parse(10_000, "", &b, &mut v).size, 500);
        assert!(v.is_empty());
        Page::parse(-1, "", &b, &mut v);
        assert!(!v.is_empty());
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let key = TokenKey::random();
        let binding = key.bind(&tenant("t1"), &filter(1));
        let id = crate::ids::new_id();
        let mut rows = vec![id.clone(), crate::ids::new_id()];
        let token =
            Page::parse(1, "", &binding, &mut Violations::new()).finish(&mut rows, String::as_str);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0], id);
        let mut v = Violations::new();
        // The same list, tenant and filter, at another page size.
        assert_eq!(Page::parse(20, &token, &binding, &mut v).after, Some(id));
        assert!(v.is_empty());
        for garbage in ["not-a-token", "", "cDI", &token[..token.len() - 2]] {
            let mut v = Violations::new();
            let page = Page::parse(1, garbage, &binding, &mut v);
            assert_eq!(page.after, None);
            assert_eq!(v.is_empty(), garbage.is_empty(), "{garbage:?}");
        }
    }

    #[test]
    fn a_token_holds_only_for_its_list_tenant_filter_and_key() {
        let key = TokenKey::random();
        let scope = tenant("t1");
        let binding = key.bind(&scope, &filter(1));
        let mut rows = vec![crate::ids::new_id(), crate::ids::new_id()];
        let token = Page::first(1).finish(&mut rows, String::as_str);
        // Page::first's tokens never leave the process: not even its own
        // kind of binding takes them.
        assert!(refused(&token, &binding));
        let mut rows = vec![crate::ids::new_id(), crate::ids::new_id()];
        let token =
            Page::parse(1, "", &binding, &mut Violations::new()).finish(&mut rows, String::as_str);
        assert!(!refused(&token, &binding));
        assert!(refused(&token, &key.bind(&tenant("t2"), &filter(1))));
        assert!(refused(&token, &key.bind(&Scope::All, &filter(1))));
        assert!(refused(&token, &key.bind(&scope, &filter(2))));
        assert!(refused(&token, &key.bind(&scope, &ListB::default())));
        assert!(refused(
            &token,
            &TokenKey::random().bind(&scope, &filter(1))
        ));
        // A key of the same bytes (another replica's, read from the same
        // database) takes it.
        let same = TokenKey::new(*key.0);
        assert!(!refused(&token, &same.bind(&scope, &filter(1))));
        // A cursor changed by hand breaks the tag.
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap_or_default();
        if let Some(last) = bytes.last_mut() {
            *last ^= 1;
        }
        assert!(refused(&URL_SAFE_NO_PAD.encode(bytes), &binding));
    }

    fn refused(token: &str, binding: &Binding) -> bool {
        assert!(!token.is_empty());
        let mut v = Violations::new();
        Page::parse(1, token, binding, &mut v);
        let mut w = Violations::new();
        Keyset::parse(1, token, binding, &mut w);
        // No token is both a page token and a keyset token.
        assert!(!v.is_empty() || !w.is_empty());
        !v.is_empty()
    }

    #[test]
    fn keyset_tokens_round_trip_and_garbage_is_refused() {
        let binding = TokenKey::random().bind(&tenant("t1"), &filter(1));
        let (a, b) = (crate::ids::new_id(), crate::ids::new_id());
        let mut rows = vec![(-5_i64, a.clone()), (7, b)];
        let page = Keyset::parse(1, "", &binding, &mut Violations::new());
        let token = page.finish(&mut rows, |(p, id)| (*p, id.as_str()));
        assert_eq!(rows, [(-5, a.clone())]);
        let mut v = Violations::new();
        let next = Keyset::parse(1, &token, &binding, &mut v);
        assert_eq!(next.after, Some((-5, a.clone())));
        assert!(v.is_empty());
        // A page token is not a keyset token.
        assert!(refused(&token, &binding));
        let last = Keyset::parse(5, "", &binding, &mut v);
        assert_eq!(last.finish(&mut rows, |(p, id)| (*p, id.as_str())), "");
    }

    #[test]
    fn keyset_tiebreakers_are_uuids_or_sequence_numbers() {
        let binding = TokenKey::random().bind(&tenant("t1"), &filter(1));
        let mut rows = vec![(1_i64, "41".to_owned()), (1, "42".to_owned())];
        let token = Keyset::parse(1, "", &binding, &mut Violations::new())
            .finish(&mut rows, |(p, id)| (*p, id.as_str()));
        let mut v = Violations::new();
        assert_eq!(
            Keyset::parse(1, &token, &binding, &mut v).after,
            Some((1, "41".to_owned()))
        );
        assert!(v.is_empty());
        // Even a correctly sealed cursor must parse.
        for forged in ["k1:1:DROP TABLE", "k1:1:-3", "k1:1:", "k1:x:41"] {
            let mut v = Violations::new();
            Keyset::parse(1, &binding.seal(forged), &binding, &mut v);
            assert!(!v.is_empty(), "{forged} accepted");
        }
    }
}
