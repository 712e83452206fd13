//! Keyset pagination shared by every listing.
//!
//! A page is asked for by a limit and an opaque cursor returned with the previous page.
//! Each listing orders by a unique key (the id, or the sequence for deployment objects),
//! so pages never skip or repeat a row even while rows are being inserted.
//!
//! Listings whose rows carry a large field (a deployment object's YAML, a template's
//! source and schema) leave it out unless asked ([`ContentListing`]); a page that
//! carries it also ends at a byte budget, so its memory does not grow with the rows'
//! sizes.

use serde::{Deserialize, Serialize};

/// Rows per page when the caller does not say.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page a store returns; larger requests are clamped to it.
pub const MAX_LIMIT: u32 = 1000;

/// Which end to start from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Oldest first.
    #[default]
    Ascending,
    /// Newest first.
    Descending,
}

/// An opaque position in a listing: the key of the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

/// Which page to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows at most; clamped to 1..=[`MAX_LIMIT`].
    pub limit: u32,
    /// Continue after this position; `None` for the first page.
    pub cursor: Option<Cursor>,
    /// Direction.
    pub order: Order,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            cursor: None,
            order: Order::Ascending,
        }
    }
}

impl PageRequest {
    /// The first page of `limit` rows, oldest first.
    pub fn first(limit: u32) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// The same request, continuing after `cursor`.
    pub fn after(&self, cursor: Cursor) -> Self {
        Self {
            cursor: Some(cursor),
            ..self.clone()
        }
    }

    /// The limit a store applies: at least 1, at most [`MAX_LIMIT`].
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, MAX_LIMIT)
    }
}

/// Whether a listing carries its rows' large field (a deployment object's YAML, a
/// template's source and parameter schema), and within what budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContentListing {
    /// Without it: the store does not read it, so a page costs the same whatever the
    /// size of its rows. The field's size is still given.
    #[default]
    Omit,
    /// With it. A page holds at least one row, so paging always progresses; after the
    /// first it ends before the sum of its rows' sizes would pass `page_bytes`, with a
    /// cursor to the rest (so a row larger than the budget comes alone on its page).
    Include {
        /// The most content, in bytes, one page carries (beyond its first row).
        page_bytes: u64,
    },
}

impl ContentListing {
    /// Whether the rows carry their content.
    pub fn includes(self) -> bool {
        matches!(self, Self::Include { .. })
    }

    /// Builds the page from overfetched rows (see [`Page::from_overfetch`]): by count
    /// alone when the content is left out, also by `content_bytes` when it is included
    /// ([`Page::from_overfetch_within`]). A store decides the page from the sizes
    /// first, then reads the content of exactly the rows kept.
    pub fn page<T>(
        self,
        rows: Vec<T>,
        request: &PageRequest,
        content_bytes: impl Fn(&T) -> u64,
        key_of: impl Fn(&T) -> String,
    ) -> Page<T> {
        let limit = request.effective_limit();
        match self {
            Self::Omit => Page::from_overfetch(rows, limit, key_of),
            Self::Include { page_bytes } => {
                Page::from_overfetch_within(rows, limit, page_bytes, content_bytes, key_of)
            }
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows, in the requested order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this page is the last.
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row, if present,
    /// proves there is a next page, whose cursor is the key of the last row kept.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, key_of: impl Fn(&T) -> String) -> Self {
        let limit = limit as usize;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = has_more
            .then(|| rows.last().map(|row| Cursor(key_of(row))))
            .flatten();
        Self {
            items: rows,
            next_cursor,
        }
    }

    /// Builds a page like [`Page::from_overfetch`] that also ends early when its rows'
    /// sizes (`size_of`, e.g. bytes of YAML) would pass `budget`: the first row always
    /// comes, so paging progresses even past a row larger than the budget; after it,
    /// the page stops before the sum passes the budget, with a cursor to the rest.
    pub fn from_overfetch_within(
        rows: Vec<T>,
        limit: u32,
        budget: u64,
        size_of: impl Fn(&T) -> u64,
        key_of: impl Fn(&T) -> String,
    ) -> Self {
        let within = rows_within_budget(rows.iter().map(size_of), budget);
        let limit = u32::try_from(within).map_or(limit, |within| within.min(limit));
        Self::from_overfetch(rows, limit, key_of)
    }

    /// Transforms every item, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// How many of the first rows, given their sizes in order, fit a budget: at least one,
/// then as many as keep the sum within it.
fn rows_within_budget(sizes: impl IntoIterator<Item = u64>, budget: u64) -> usize {
    let mut total = 0u64;
    let mut rows = 0;
    for size in sizes {
        total = total.saturating_add(size);
        if rows > 0 && total > budget {
            break;
        }
        rows += 1;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overfetch_decides_whether_there_is_a_next_page() {
        let page = Page::from_overfetch(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(page.next_cursor, Some(Cursor("2".into())));

        let last = Page::from_overfetch(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn limits_are_clamped() {
        assert_eq!(PageRequest::first(0).effective_limit(), 1);
        assert_eq!(PageRequest::first(5000).effective_limit(), MAX_LIMIT);
        assert_eq!(PageRequest::default().effective_limit(), DEFAULT_LIMIT);
    }

    #[track_caller]
    fn check_budget(sizes: &[u64], budget: u64, expected: usize) {
        assert_eq!(
            rows_within_budget(sizes.iter().copied(), budget),
            expected,
            "{sizes:?} within {budget}"
        );
    }

    #[test]
    fn a_budget_ends_a_page_before_its_sizes_pass_it() {
        check_budget(&[], 10, 0);
        check_budget(&[4, 4, 4], 10, 2);
        check_budget(&[5, 5, 5], 10, 2);
        check_budget(&[3, 3, 3], 10, 3);
        check_budget(&[0, 0, 11, 0], 10, 2);
    }

    #[test]
    fn the_first_row_comes_whatever_its_size() {
        check_budget(&[11, 1], 10, 1);
        check_budget(&[u64::MAX, u64::MAX], 10, 1);
        check_budget(&[1, 1], 0, 1);
    }

    #[test]
    fn a_page_within_a_budget_has_a_cursor_when_it_ends_early() {
        let size = |n: &u64| *n;
        let key = |n: &u64| n.to_string();
        // Cut by the budget: the rest is reachable through the cursor.
        let cut = Page::from_overfetch_within(vec![4, 5, 6], 10, 10, size, key);
        assert_eq!(cut.items, vec![4, 5]);
        assert_eq!(cut.next_cursor, Some(Cursor("5".into())));
        // Cut by the limit first.
        let limited = Page::from_overfetch_within(vec![1, 2, 3], 2, 100, size, key);
        assert_eq!(limited.items, vec![1, 2]);
        assert_eq!(limited.next_cursor, Some(Cursor("2".into())));
        // Everything fits and nothing is left.
        let last = Page::from_overfetch_within(vec![1, 2], 5, 100, size, key);
        assert_eq!(last.items, vec![1, 2]);
        assert_eq!(last.next_cursor, None);
        // The last row alone, larger than the budget: the last page.
        let alone = Page::from_overfetch_within(vec![50], 5, 10, size, key);
        assert_eq!(alone.items, vec![50]);
        assert_eq!(alone.next_cursor, None);
    }
}
