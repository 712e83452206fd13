//! Label selectors as the API server parses them from `?labelSelector=`.
//!
//! Supports the set-based grammar kube-rs and kubectl send: `k`, `!k`, `k=v`, `k==v`,
//! `k!=v`, `k in (a,b)`, `k notin (a,b)`, joined by commas (all must match). The
//! numeric `k>1` / `k<1` forms are rejected rather than guessed at.

use std::collections::BTreeMap;

/// A parsed selector: every requirement must hold.
#[derive(Debug, Default)]
pub struct Selector(Vec<Requirement>);

#[derive(Debug)]
enum Requirement {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Selector {
    /// Parses `?labelSelector=`; the error is the message of a 400 Status.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                // An empty selector (or a trailing comma) selects everything, as upstream.
                continue;
            }
            requirements.push(parse_requirement(part).map_err(|why| {
                format!("unable to parse requirement: {why} in label selector {text:?}")
            })?);
        }
        Ok(Selector(requirements))
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|requirement| match requirement {
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::NotExists(key) => !labels.contains_key(key),
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            // `!=` and `notin` also select objects without the key, like the real server.
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
        })
    }
}

/// Splits on commas that are not inside `( … )`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(valid_key(key.trim())?));
    }
    let key_end = part
        .find(|c: char| c.is_whitespace() || matches!(c, '=' | '!' | '(' | '<' | '>'))
        .unwrap_or(part.len());
    let key = valid_key(&part[..key_end])?;
    let rest = part[key_end..].trim_start();
    if rest.is_empty() {
        return Ok(Requirement::Exists(key));
    }
    if let Some(value) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        return Ok(Requirement::In(key, vec![valid_value(value.trim())?]));
    }
    if let Some(value) = rest.strip_prefix("!=") {
        return Ok(Requirement::NotIn(key, vec![valid_value(value.trim())?]));
    }
    if let Some(list) = rest.strip_prefix("notin") {
        return Ok(Requirement::NotIn(key, value_list(list)?));
    }
    if let Some(list) = rest.strip_prefix("in") {
        return Ok(Requirement::In(key, value_list(list)?));
    }
    Err(format!("unsupported operator in {part:?}"))
}

/// Parses ` (a, b)` after `in` / `notin`.
fn value_list(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised value list, found {text:?}"))?;
    if inner.trim().is_empty() {
        return Err("the value set of `in` and `notin` cannot be empty".to_owned());
    }
    inner.split(',').map(|v| valid_value(v.trim())).collect()
}

fn valid_key(key: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_owned())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

fn valid_value(value: &str) -> Result<String, String> {
    // An empty value is legal (`k=` selects objects whose label `k` is empty).
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(value.to_owned())
    } else {
        Err(format!("invalid label value {value:?}"))
    }
}
