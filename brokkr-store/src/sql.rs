//! Hand-written SQL for the few statements the query builder does not express well
//! (joins read into two entities, `RETURNING` on a counter, `pg_notify`), and matching
//! a column against a list with a statement text that does not vary with the list's
//! length.

use sea_orm::sea_query::extension::postgres::PgFunc;
use sea_orm::sea_query::{ArrayType, Expr, ExprTrait};
use sea_orm::{ColumnTrait, DbBackend, Statement, Value};
use uuid::Uuid;

use crate::Backend;

/// When a row was soft-deleted (`deleted_at`), as reads of live rows by id select it.
pub(crate) type DeletedAt = Option<chrono::DateTime<chrono::Utc>>;

/// The ids of the rows that are not deleted.
///
/// Reads of live stacks, agents, generators and templates by id match on the primary
/// key alone and drop deleted rows in code, here or with a filter on the row. With
/// `deleted_at IS NULL` in the filter, PostgreSQL may serve the read from the table's
/// partial live-name index: a plan it cached while the table was small then walks
/// every live row on each call, until the next `ANALYZE` (never, with autovacuum off).
/// One such read of a stack cost 1.5 ms with 10,000 stacks instead of 0.016 ms.
pub(crate) fn live_ids(rows: Vec<(Uuid, DeletedAt)>) -> impl Iterator<Item = Uuid> {
    rows.into_iter()
        .filter(|(_, deleted_at)| deleted_at.is_none())
        .map(|(id, _)| id)
}

/// A statement written with `?` bind parameters, rewritten to `$1, $2, ...` for
/// PostgreSQL. The SQL given here never contains a literal `?`.
pub(crate) fn stmt(
    backend: Backend,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Statement {
    match backend {
        Backend::Sqlite => Statement::from_sql_and_values(DbBackend::Sqlite, sql, values),
        Backend::Postgres => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for ch in sql.chars() {
                if ch == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(ch);
                }
            }
            Statement::from_sql_and_values(DbBackend::Postgres, out, values)
        }
    }
}

/// `?, ?, ?` for `n` bind parameters, for an `IN (...)` list.
pub(crate) fn bind_params(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// A list to match a column against, as a statement of `backend` takes it: `sql` goes
/// after the column, `values` are its bind parameters.
///
/// On PostgreSQL `= ANY(?)` with one array parameter, so that a statement's text, and
/// with it its prepared statement and plan, is the same whatever the list's length: the
/// append path's batches vary in size, and planning a new text each time cost
/// PostgreSQL more than running it. On SQLite, which prepares in-process, `IN (?, ...)`.
/// [`AnyOf::matched_by`] gives the same condition to the query builder.
pub(crate) struct AnyOf {
    pub(crate) sql: String,
    pub(crate) values: Vec<Value>,
}

/// `column` is one of `ids`, as a query builder's condition: one statement text for
/// every list length on PostgreSQL (see [`AnyOf`]).
pub(crate) fn uuid_in(
    backend: Backend,
    column: impl ColumnTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Expr {
    AnyOf::uuids(backend, ids).matched_by(column)
}

impl AnyOf {
    pub(crate) fn uuids(backend: Backend, ids: impl IntoIterator<Item = Uuid>) -> Self {
        Self::of(backend, ArrayType::Uuid, ids.into_iter().map(Value::from))
    }

    pub(crate) fn strings<'a>(backend: Backend, texts: impl IntoIterator<Item = &'a str>) -> Self {
        Self::of(
            backend,
            ArrayType::String,
            texts.into_iter().map(Value::from),
        )
    }

    /// The list as a condition on `column` for the query builder.
    pub(crate) fn matched_by(self, column: impl ColumnTrait) -> Expr {
        let column = column.into_expr();
        // PostgreSQL's form is exactly one array value.
        match <[Value; 1]>::try_from(self.values) {
            Ok([array @ Value::Array(..)]) => column.eq(PgFunc::any(Expr::val(array))),
            Ok([one]) => column.is_in([one]),
            Err(values) => column.is_in(values),
        }
    }

    fn of(backend: Backend, ty: ArrayType, values: impl Iterator<Item = Value>) -> Self {
        let values: Vec<Value> = values.collect();
        match backend {
            Backend::Postgres => Self {
                sql: "= ANY(?)".into(),
                values: vec![Value::Array(ty, Some(Box::new(values)))],
            },
            Backend::Sqlite => Self {
                sql: format!("IN ({})", bind_params(values.len())),
                values,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_parameters_are_numbered_for_postgres() {
        let s = stmt(
            Backend::Postgres,
            "SELECT ? + ?",
            [1i32.into(), 2i32.into()],
        );
        assert_eq!(s.sql, "SELECT $1 + $2");
        let s = stmt(Backend::Sqlite, "SELECT ? + ?", [1i32.into(), 2i32.into()]);
        assert_eq!(s.sql, "SELECT ? + ?");
    }
}
