//! What a command prints: aligned tables for people, the API's JSON for scripts.
//!
//! A table's columns are fixed per resource, each a header and a JSON pointer into the
//! API object, so the table and `--output json` always show the same objects.

use std::fmt::Write as _;

use clap::ValueEnum;
use serde_json::Value;

/// How answers are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns (one object: one field per line).
    #[default]
    Table,
    /// The API's JSON objects: an array for a list, one object otherwise.
    Json,
}

/// One column: its header and where its value is in the API object.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The header (the field name in a one-object view).
    pub header: &'static str,
    /// A JSON pointer, e.g. `/decision/chosen`.
    pub pointer: &'static str,
}

/// A column.
pub const fn col(header: &'static str, pointer: &'static str) -> Column {
    Column { header, pointer }
}

/// Prints to stdout in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// The format.
    pub format: Format,
}

impl Printer {
    /// A list: a table with a header line, or a JSON array.
    pub fn list(&self, items: &[Value], columns: &[Column]) {
        match self.format {
            Format::Table => print!("{}", table(items, columns)),
            Format::Json => println!("{}", pretty(&Value::Array(items.to_vec()))),
        }
    }

    /// One object: `FIELD  value` lines, or the JSON object.
    pub fn one(&self, item: &Value, columns: &[Column]) {
        match self.format {
            Format::Table => print!("{}", fields(item, columns)),
            Format::Json => println!("{}", pretty(item)),
        }
    }
}

/// Pretty JSON (a `Value` always serializes).
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Rows under a header, each column as wide as its widest cell.
pub fn table(items: &[Value], columns: &[Column]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| cell(item.pointer(c.pointer)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([c.header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let header: Vec<String> = columns.iter().map(|c| c.header.to_owned()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, text) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(text);
            } else {
                let _ = write!(line, "{text:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One object as `FIELD  value` lines.
pub fn fields(item: &Value, columns: &[Column]) -> String {
    let width = columns.iter().map(|c| c.header.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in columns {
        let line = format!("{:<width$}  {}", c.header, cell(item.pointer(c.pointer)));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A value as one line of text: strings bare, maps as `k=v,k=v`, lists comma-joined,
/// absent as `-`; line breaks become spaces so a row stays one line.
pub fn cell(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(map)) if map.is_empty() => "-".to_owned(),
        // A nested object (a placement policy) reads better as compact JSON.
        Some(nested @ Value::Object(map)) if map.values().any(is_container) => nested.to_string(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(Some(v))))
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::Object(_) => v.to_string(),
                _ => cell(Some(v)),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    };
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn is_container(value: &Value) -> bool {
    matches!(value, Value::Object(_) | Value::Array(_))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const COLUMNS: &[Column] = &[col("ID", "/id"), col("LABELS", "/labels"), col("N", "/n")];

    #[test]
    fn tables_align_and_show_absent_values() {
        let items = [
            json!({"id": "a", "labels": {"team": "blue", "tier": "1"}, "n": 3}),
            json!({"id": "longer-id", "labels": {}}),
        ];
        assert_eq!(
            table(&items, COLUMNS),
            "ID         LABELS            N\n\
             a          team=blue,tier=1  3\n\
             longer-id  -                 -\n"
        );
    }

    #[test]
    fn one_object_is_one_field_per_line() {
        let item = json!({"id": "a", "labels": {"x": "y"}, "n": "two\nlines"});
        assert_eq!(
            fields(&item, COLUMNS),
            "ID      a\nLABELS  x=y\nN       two lines\n"
        );
        assert_eq!(cell(Some(&json!([1, "b"]))), "1,b");
        assert_eq!(cell(Some(&json!(true))), "true");
        let policy = json!({"agent_selector": {"matchLabels": {"tier": "web"}}});
        assert_eq!(
            cell(Some(&policy)),
            r#"{"agent_selector":{"matchLabels":{"tier":"web"}}}"#
        );
    }
}
