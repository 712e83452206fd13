//! Keyset pagination: `WHERE key > cursor ORDER BY key LIMIT n + 1`, then
//! [`Page::from_overfetch`].

use brokkr_core::page::{Order, Page, PageRequest};
use brokkr_core::store::{Error, Result};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Value};
use uuid::Uuid;

/// The cursor of a listing keyed by id.
pub(crate) fn uuid_cursor(page: &PageRequest) -> Result<Option<Uuid>> {
    page.cursor
        .as_ref()
        .map(|c| Uuid::parse_str(&c.0).map_err(|_| bad_cursor(page)))
        .transpose()
}

/// The cursor of a listing keyed by an integer (sequence, version).
pub(crate) fn int_cursor(page: &PageRequest) -> Result<Option<i64>> {
    page.cursor
        .as_ref()
        .map(|c| c.0.parse::<i64>().map_err(|_| bad_cursor(page)))
        .transpose()
}

/// The error for a cursor this listing did not hand out.
pub(crate) fn bad_cursor(page: &PageRequest) -> Error {
    Error::InvalidCursor(
        page.cursor
            .as_ref()
            .map(|c| c.0.clone())
            .unwrap_or_default(),
    )
}

/// Orders `query` by `col` in the page's direction, starts after `after` and fetches
/// one row more than the page holds.
pub(crate) fn keyset<E, C, V>(
    query: Select<E>,
    col: C,
    after: Option<V>,
    page: &PageRequest,
) -> Select<E>
where
    E: EntityTrait,
    C: ColumnTrait,
    V: Into<Value>,
{
    let query = match (after, page.order) {
        (Some(v), Order::Ascending) => query.filter(col.gt(v)),
        (Some(v), Order::Descending) => query.filter(col.lt(v)),
        (None, _) => query,
    };
    let query = match page.order {
        Order::Ascending => query.order_by_asc(col),
        Order::Descending => query.order_by_desc(col),
    };
    query.limit(u64::from(page.effective_limit()) + 1)
}

/// A page of converted rows.
pub(crate) fn page_of<M, T>(
    rows: Vec<M>,
    page: &PageRequest,
    convert: impl Fn(M) -> Result<T>,
    key_of: impl Fn(&T) -> String,
) -> Result<Page<T>> {
    let items = rows.into_iter().map(convert).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.effective_limit(), key_of))
}
