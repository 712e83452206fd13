//! What the listings that leave out a large field share (deployment objects' YAML,
//! templates' source and schema): its size measured by the database, and its value
//! put in place after the page is decided.
//!
//! A listing first selects its rows with the sizes only and decides where the page
//! ends from them ([`brokkr_core::ContentListing::page`]); when it includes the
//! content, one more query reads the content of exactly the rows kept.

use std::collections::HashMap;
use std::hash::Hash;

use brokkr_core::store::Result;
use sea_orm::sea_query::{Expr, SimpleExpr};

use crate::errors::corrupt;

/// The size in bytes of a text or JSON column's value, as BIGINT on both databases
/// (PostgreSQL's `OCTET_LENGTH` is an `integer`, which the driver does not read as
/// `i64`). For a text column neither database reads the value to answer (SQLite takes
/// it from the record header, PostgreSQL from the TOAST header); a `jsonb` column is
/// written out as text by PostgreSQL to be measured, on the database's side.
pub(crate) fn byte_length(table: &str, column: &str) -> SimpleExpr {
    Expr::cust(format!(
        r#"CAST(OCTET_LENGTH(CAST("{table}"."{column}" AS TEXT)) AS BIGINT)"#
    ))
}

/// A size read by [`byte_length`] as the model's `u64`.
pub(crate) fn size(what: &'static str, bytes: i64) -> Result<u64> {
    u64::try_from(bytes).map_err(|_| corrupt(what, bytes))
}

/// Puts each row's content, read by one query into `fetched` by key, in place. The
/// content of a row listed a moment ago is never missing (deployment objects and
/// template versions are never updated or deleted), so a miss is corruption.
pub(crate) fn put_in_place<T, K: Eq + Hash, V>(
    rows: &mut [T],
    mut fetched: HashMap<K, V>,
    key: impl Fn(&T) -> K,
    mut put: impl FnMut(&mut T, V),
    what: &'static str,
) -> Result<()> {
    for row in rows {
        let content = fetched
            .remove(&key(row))
            .ok_or_else(|| corrupt(what, "listed row vanished"))?;
        put(row, content);
    }
    Ok(())
}
