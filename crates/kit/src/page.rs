//! List pagination: `page_size` (default 50, at most 500) and an opaque
//! `page_token` that resumes after the last id of the previous page
//! ([`Page`]), or after the last `(position, id)` pair for lists ordered by
//! something other than the id, such as a time ([`Keyset`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Violations;

/// The default page size.
pub const DEFAULT_SIZE: i64 = 50;
/// The largest page size; larger requests are served this many.
pub const MAX_SIZE: i64 = 500;

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// How many items to return.
    pub size: i64,
    /// Resume strictly after this id; `None` from the start.
    pub after: Option<String>,
}

impl Page {
    /// Validates `page_size` and `page_token`, recording field problems.
    pub fn parse(page_size: i32, page_token: &str, violations: &mut Violations) -> Page {
        let size = match page_size {
            0 => DEFAULT_SIZE,
            n if n < 0 => {
                violations.add("page_size", "must not be negative");
                DEFAULT_SIZE
            }
            n => i64::from(n).min(MAX_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else if let Some(id) = decode(page_token) {
            Some(id)
        } else {
            violations.add("page_token", "not a token from a previous page");
            None
        };
        Page { size, after }
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
            rows.last().map(|last| encode(id(last))).unwrap_or_default()
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyset {
    /// How many items to return.
    pub size: i64,
    /// Resume strictly after this `(position, tiebreaker)`; the tiebreaker
    /// is a UUID or a decimal sequence number. `None` from the start.
    pub after: Option<(i64, String)>,
}

impl Keyset {
    /// Validates `page_size` and `page_token`, recording field problems.
    pub fn parse(page_size: i32, page_token: &str, violations: &mut Violations) -> Keyset {
        let size = Page::parse(page_size, "", violations).size;
        let after = if page_token.is_empty() {
            None
        } else if let Some(pair) = decode_pair(page_token) {
            Some(pair)
        } else {
            violations.add("page_token", "not a token from a previous page");
            None
        };
        Keyset { size, after }
    }

    /// How many rows to fetch: one more than the page, to know if more exist.
    pub fn fetch(&self) -> i64 {
        self.size + 1
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
                    URL_SAFE_NO_PAD.encode(format!("k1:{position}:{id}"))
                })
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}

fn decode_pair(token: &str) -> Option<(i64, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
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

fn encode(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{id}"))
}

fn decode(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let id = text.strip_prefix("v1:")?;
    uuid::Uuid::try_parse(id).ok().map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let mut v = Violations::new();
        assert_eq!(Page::parse(0, "", &mut v).size, 50);
        assert_eq!(Page::parse(7, "", &mut v).size, 7);
        assert_eq!(Page::parse(10_000, "", &mut v).size, 500);
        assert!(v.is_empty());
        Page::parse(-1, "", &mut v);
        assert!(!v.is_empty());
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let id = crate::ids::new_id();
        let mut rows = vec![id.clone(), crate::ids::new_id()];
        let page = Page {
            size: 1,
            after: None,
        };
        let token = page.finish(&mut rows, String::as_str);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0], id);
        let mut v = Violations::new();
        assert_eq!(Page::parse(1, &token, &mut v).after, Some(id));
        assert!(v.is_empty());
        Page::parse(1, "not-a-token", &mut v);
        assert!(!v.is_empty());
    }

    #[test]
    fn keyset_tokens_round_trip_and_garbage_is_refused() {
        let (a, b) = (crate::ids::new_id(), crate::ids::new_id());
        let mut rows = vec![(-5_i64, a.clone()), (7, b)];
        let page = Keyset {
            size: 1,
            after: None,
        };
        let token = page.finish(&mut rows, |(p, id)| (*p, id.as_str()));
        assert_eq!(rows, [(-5, a.clone())]);
        let mut v = Violations::new();
        let next = Keyset::parse(1, &token, &mut v);
        assert_eq!(next.after, Some((-5, a.clone())));
        assert!(v.is_empty());
        // A plain page token is not a keyset token, nor the reverse.
        let plain = encode(&a);
        Keyset::parse(1, &plain, &mut v);
        assert!(!v.is_empty());
        let mut v = Violations::new();
        Page::parse(1, &token, &mut v);
        assert!(!v.is_empty());
        let last = Keyset {
            size: 5,
            after: None,
        };
        assert_eq!(last.finish(&mut rows, |(p, id)| (*p, id.as_str())), "");
    }

    #[test]
    fn keyset_tiebreakers_are_uuids_or_sequence_numbers() {
        let mut rows = vec![(1_i64, "41".to_owned()), (1, "42".to_owned())];
        let token = Keyset {
            size: 1,
            after: None,
        }
        .finish(&mut rows, |(p, id)| (*p, id.as_str()));
        let mut v = Violations::new();
        assert_eq!(
            Keyset::parse(1, &token, &mut v).after,
            Some((1, "41".to_owned()))
        );
        assert!(v.is_empty());
        for forged in ["k1:1:DROP TABLE", "k1:1:-3", "k1:1:", "k1:x:41"] {
            Keyset::parse(1, &URL_SAFE_NO_PAD.encode(forged), &mut v);
            assert!(!v.is_empty(), "{forged} accepted");
            v = Violations::new();
        }
    }
}
