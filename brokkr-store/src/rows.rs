//! Multi-row inserts whose statement text does not depend on how many rows they hold.
//!
//! A batch's `INSERT ... VALUES (...), (...)` had a new text for every batch size. On
//! PostgreSQL every new text is prepared (a round trip of its own) and planned afresh,
//! and the many texts pushed even the fixed ones out of each connection's statement
//! cache, so that they were prepared again too. Here, on PostgreSQL, the rows travel
//! as one JSON array parameter, taken apart by the statement in row order:
//!
//! ```sql
//! INSERT INTO t (a, b) SELECT (r.doc->>0)::uuid, NULLIF(r.doc->1, 'null')->0
//!   FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS r(doc, n) ORDER BY r.n
//! ```
//!
//! On SQLite, which prepares in-process, the rows stay bind parameters of a `VALUES`
//! list.

use std::fmt::Write as _;

use brokkr_core::store::{Error, Result};
use chrono::SecondsFormat;
use sea_orm::sea_query::ColumnType;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IdenStatic, IntoActiveModel, Iterable, Statement,
    Value,
};

use crate::Backend;
use crate::sql::{self, bind_params};

/// What a column holds, as the JSON form of a row carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Uuid,
    Text,
    BigInt,
    Int,
    Bool,
    /// `timestamptz`, carried as RFC 3339 text with microseconds (what PostgreSQL keeps).
    Timestamp,
    /// `jsonb`, carried wrapped in an array of one (`[value]`), so that SQL `NULL` (a
    /// JSON `null` in the row) stays apart from a JSON `null` value.
    Json,
}

impl Kind {
    fn postgres_type(self) -> &'static str {
        match self {
            Kind::Uuid => "uuid",
            Kind::Text => "text",
            Kind::BigInt => "bigint",
            Kind::Int => "integer",
            Kind::Bool => "boolean",
            Kind::Timestamp => "timestamptz",
            Kind::Json => "jsonb",
        }
    }

    fn of(column: &ColumnType) -> Option<Self> {
        Some(match column {
            ColumnType::Uuid => Kind::Uuid,
            ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_) => Kind::Text,
            ColumnType::BigInteger => Kind::BigInt,
            ColumnType::Integer => Kind::Int,
            ColumnType::Boolean => Kind::Bool,
            ColumnType::TimestampWithTimeZone => Kind::Timestamp,
            ColumnType::Json | ColumnType::JsonBinary => Kind::Json,
            _ => return None,
        })
    }
}

/// Rows for one table, to insert with one statement.
pub(crate) struct Rows {
    table: String,
    columns: Vec<(String, Kind)>,
    /// Row after row, `columns.len()` values each.
    values: Vec<Value>,
}

impl Rows {
    /// No rows yet, for these columns of `table`.
    pub(crate) fn new(table: &str, columns: &[(&str, Kind)]) -> Self {
        Self {
            table: table.to_owned(),
            columns: columns
                .iter()
                .map(|(name, kind)| ((*name).to_owned(), *kind))
                .collect(),
            values: Vec::new(),
        }
    }

    /// Every column of entity `E`, with the models' values.
    pub(crate) fn of_models<E>(models: impl IntoIterator<Item = E::Model>) -> Result<Self>
    where
        E: EntityTrait,
        E::Model: IntoActiveModel<E::ActiveModel>,
    {
        let columns = E::Column::iter()
            .map(|column| {
                let name = column.as_str().to_owned();
                let kind = Kind::of(column.def().get_column_type()).ok_or_else(|| {
                    Error::Backend(format!("column {name} has no JSON row form").into())
                })?;
                Ok((name, kind))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut rows = Self {
            table: E::default().table_name().to_owned(),
            columns,
            values: Vec::new(),
        };
        for model in models {
            let active = model.into_active_model();
            // A model's active model sets every column.
            let row = E::Column::iter().map(|column| {
                active
                    .get(column)
                    .into_value()
                    .unwrap_or(Value::String(None))
            });
            rows.push(row);
        }
        Ok(rows)
    }

    /// Adds a row, one value per column, in the columns' order.
    pub(crate) fn push(&mut self, row: impl IntoIterator<Item = Value>) {
        let before = self.values.len();
        self.values.extend(row);
        debug_assert_eq!(self.values.len() - before, self.columns.len());
    }

    /// The insert, followed by `tail` (an `ON CONFLICT` or `RETURNING` clause, or "").
    pub(crate) fn insert(self, backend: Backend, tail: &str) -> Result<Statement> {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| name.as_str()).collect();
        let head = format!("INSERT INTO {} ({})", self.table, names.join(", "));
        match backend {
            Backend::Sqlite => {
                let row = format!("({})", bind_params(self.columns.len()));
                let count = self.values.len() / self.columns.len().max(1);
                let list = vec![row.as_str(); count].join(", ");
                let text = format!("{head} VALUES {list} {tail}");
                Ok(sql::stmt(backend, &text, self.values))
            }
            Backend::Postgres => {
                let mut select = String::new();
                for (i, (_, kind)) in self.columns.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    match kind {
                        Kind::Json => write!(select, "{sep}NULLIF(r.doc->{i}, 'null')->0"),
                        other => write!(select, "{sep}(r.doc->>{i})::{}", other.postgres_type()),
                    }
                    .expect("writing to a String cannot fail");
                }
                let text = format!(
                    "{head} SELECT {select} FROM jsonb_array_elements(?::jsonb) \
                     WITH ORDINALITY AS r(doc, n) ORDER BY r.n {tail}"
                );
                let rows = self.json_rows()?;
                Ok(sql::stmt(backend, &text, [Value::from(rows)]))
            }
        }
    }

    fn json_rows(self) -> Result<serde_json::Value> {
        let width = self.columns.len().max(1);
        let mut rows = Vec::with_capacity(self.values.len() / width);
        let mut values = self.values.into_iter();
        loop {
            let row: Vec<serde_json::Value> = values
                .by_ref()
                .take(width)
                .map(json_of)
                .collect::<Result<_>>()?;
            if row.is_empty() {
                break;
            }
            rows.push(serde_json::Value::Array(row));
        }
        Ok(serde_json::Value::Array(rows))
    }
}

/// A bind value as its JSON row form; `None` of any type is `null`.
fn json_of(value: Value) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    Ok(match value {
        Value::Uuid(Some(id)) => J::String(id.to_string()),
        Value::String(Some(text)) => J::String(text),
        Value::BigInt(Some(n)) => J::from(n),
        Value::Int(Some(n)) => J::from(n),
        Value::Bool(Some(b)) => J::Bool(b),
        Value::ChronoDateTimeUtc(Some(at)) => {
            J::String(at.to_rfc3339_opts(SecondsFormat::Micros, true))
        }
        Value::Json(Some(json)) => J::Array(vec![*json]),
        Value::Uuid(None)
        | Value::String(None)
        | Value::BigInt(None)
        | Value::Int(None)
        | Value::Bool(None)
        | Value::ChronoDateTimeUtc(None)
        | Value::Json(None) => J::Null,
        other => {
            return Err(Error::Backend(
                format!("{other:?} has no JSON row form").into(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(rows: usize) -> Rows {
        let mut insert = Rows::new(
            "agent_targets",
            &[("agent_id", Kind::Uuid), ("data", Kind::Json)],
        );
        for n in 0..rows {
            let data = (n % 2 == 0).then(|| serde_json::json!({"n": n}));
            insert.push([uuid::Uuid::nil().into(), data.into()]);
        }
        insert
    }

    #[test]
    fn postgres_text_does_not_depend_on_the_row_count() {
        let one = targets(1).insert(Backend::Postgres, "").unwrap();
        let three = targets(3).insert(Backend::Postgres, "").unwrap();
        assert_eq!(one.sql, three.sql);
        assert!(
            one.sql.contains("jsonb_array_elements($1::jsonb)"),
            "{}",
            one.sql
        );
    }

    #[test]
    fn json_rows_keep_sql_null_apart_from_values() {
        let rows = targets(2).json_rows().unwrap();
        let nil = uuid::Uuid::nil().to_string();
        assert_eq!(rows, serde_json::json!([[nil, [{"n": 0}]], [nil, null]]),);
    }

    #[test]
    fn sqlite_binds_every_value() {
        let insert = targets(3)
            .insert(Backend::Sqlite, "ON CONFLICT DO NOTHING")
            .unwrap();
        assert_eq!(insert.sql.matches('?').count(), 6);
        assert!(insert.sql.ends_with("ON CONFLICT DO NOTHING"));
    }
}
