//! Hand-written SQL for the few statements the query builder does not express well
//! (joins read into two entities, `RETURNING` on a counter, `pg_notify`).

use sea_orm::{DbBackend, Statement, Value};

use crate::Backend;

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
