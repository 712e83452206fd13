//! Keyset pagination shared by every listing.
//!
//! A page is asked for by a limit and an opaque cursor returned with the previous page.
//! Each listing orders by a unique key (the id, or the sequence for deployment objects),
//! so pages never skip or repeat a row even while rows are being inserted.

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

    /// Transforms every item, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
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
}
