//! Server-side apply by field manager, and the `metadata.managedFields` it records.
//!
//! What upstream does, in the emulator's terms (see `k8s.io/apimachinery/pkg/util/
//! managedfields/internal/structuredmerge.go` and the "Server-Side Apply" page of the
//! Kubernetes documentation, sections "Conflicts" and "Merge strategy"):
//!
//! - an **Apply** by manager M sets every field in its body and then owns exactly
//!   those; a field M owned before and no longer sets is removed from the object,
//!   unless another manager owns it too;
//! - setting a field another manager owns, to a different value, is a **conflict**:
//!   409 without `force`; with `force` M takes the field from the others. Setting it to
//!   the value it already has makes the ownership shared, never a conflict;
//! - an **Update** (PUT, merge patch, `kubectl edit`, a controller) takes every field it
//!   changed from the other managers, and a field it removed leaves every set.
//!
//! Entries are keyed by (manager, operation, subresource), as upstream. Lists are
//! atomic (see [`fields`](super::fields)).

use serde_json::{Map, Value, json};

use super::fields::{self, FieldSet, Part, Path};

pub const APPLY: &str = "Apply";
pub const UPDATE: &str = "Update";

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// How upstream names a manager in a conflict (`printManager` in
    /// `k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go`).
    fn describe(&self) -> String {
        let mut name = format!("{:?}", self.manager);
        if let Some(subresource) = &self.subresource {
            name = format!("{name} with subresource {subresource:?}");
        }
        if self.operation == UPDATE {
            name = format!("{name} using {} at {}", self.api_version, self.time);
        }
        name
    }

    fn to_json(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if let Some(subresource) = &self.subresource {
            entry["subresource"] = json!(subresource);
        }
        entry
    }

    fn from_json(entry: &Value) -> Entry {
        let text = |field: &str| entry[field].as_str().unwrap_or_default().to_owned();
        Entry {
            manager: text("manager"),
            operation: text("operation"),
            api_version: text("apiVersion"),
            time: text("time"),
            subresource: entry["subresource"].as_str().map(str::to_owned),
            fields: FieldSet::from_fields_v1(&entry["fieldsV1"]),
        }
    }
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone)]
pub struct Conflict {
    /// As upstream prints it, e.g. `"kubectl-edit" using v1 at 2026-01-01T00:00:00Z`.
    pub manager: String,
    pub path: Path,
}

/// The entries recorded on a stored object.
pub fn entries(object: &Value) -> Vec<Entry> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Entry::from_json)
        .collect()
}

/// Records `entries` on `object`, dropping the ones that own nothing.
fn record(object: &mut Value, entries: Vec<Entry>) {
    let entries: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if !object["metadata"].is_object() {
        object["metadata"] = Value::Object(Map::new());
    }
    let metadata = object["metadata"]
        .as_object_mut()
        .expect("just made an object");
    if entries.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata.insert("managedFields".to_owned(), Value::Array(entries));
    }
}

/// Applies `applied` (already admitted: no status, no server metadata) by `manager`
/// onto `live` (absent when creating). Returns the merged object with its
/// `managedFields`, or the conflicts when `force` is off.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    api_version: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let applied_set = FieldSet::of(applied, Part::Main);
    let mut entries = live.map(entries).unwrap_or_default();
    let base = live.cloned().unwrap_or_else(|| json!({ "metadata": {} }));
    let mine = |e: &Entry| e.is(manager, APPLY, None);

    let mut conflicts = Vec::new();
    for entry in entries.iter_mut().filter(|e| !mine(e)) {
        let contested: Vec<&Path> = applied_set
            .0
            .iter()
            .filter(|p| entry.fields.overlaps(p))
            .filter(|p| !keeps_live_map(applied, &base, p))
            .filter(|p| fields::get(applied, p) != fields::get(&base, p))
            .collect();
        for path in contested {
            if force {
                entry.fields.remove_overlapping(path);
            } else {
                conflicts.push(Conflict {
                    manager: entry.describe(),
                    path: path.clone(),
                });
            }
        }
    }
    if !conflicts.is_empty() {
        conflicts.sort_by(|a, b| (&a.manager, &a.path).cmp(&(&b.manager, &b.path)));
        return Err(conflicts);
    }

    let mut object = base;
    let previous = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for path in &previous.0 {
        // An applied empty map (`labels: {}`) above the path does not keep it.
        let still_applied = applied_set.0.iter().any(|a| {
            fields::overlap(a, path)
                && !(a.len() < path.len()
                    && fields::get(applied, a)
                        .and_then(Value::as_object)
                        .is_some_and(Map::is_empty))
        });
        let still_owned = still_applied
            || entries
                .iter()
                .filter(|e| !mine(e))
                .any(|e| e.fields.overlaps(path));
        if !still_owned {
            fields::remove(&mut object, path);
        }
    }
    // Set after the removals, so an applied empty map survives the pruning of its
    // emptied parent.
    for path in &applied_set.0 {
        if keeps_live_map(applied, &object, path) {
            continue;
        }
        if let Some(value) = fields::get(applied, path) {
            fields::set(&mut object, path, value.clone());
        }
    }
    for field in ["apiVersion", "kind"] {
        object[field] = applied[field].clone();
    }
    for field in ["name", "namespace"] {
        match applied["metadata"].get(field) {
            Some(value) => object["metadata"][field] = value.clone(),
            None => {
                if let Some(metadata) = object["metadata"].as_object_mut() {
                    metadata.remove(field);
                }
            }
        }
    }

    let entry = Entry {
        manager: manager.to_owned(),
        operation: APPLY.to_owned(),
        api_version: api_version.to_owned(),
        time: now.to_owned(),
        subresource: None,
        fields: applied_set,
    };
    match entries.iter_mut().find(|e| mine(e)) {
        // An unchanged entry keeps its time, so a no-op apply changes nothing at all.
        Some(old) if old.fields == entry.fields && old.api_version == entry.api_version => {}
        Some(old) => *old = entry,
        None => entries.push(entry),
    }
    record(&mut object, entries);
    Ok(object)
}

/// An applied empty map (`labels: {}`) owns the map's presence, not its keys: where the
/// live object has a map, it is kept as it is and contests nobody's keys.
fn keeps_live_map(applied: &Value, live: &Value, path: &[String]) -> bool {
    let empty = fields::get(applied, path)
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty);
    empty && fields::get(live, path).is_some_and(Value::is_object)
}

/// Records an Update by `manager` that turned `old` into `new` (in `part`), and
/// returns `new` with the resulting `managedFields`.
pub fn update(
    old: &Value,
    mut new: Value,
    manager: &str,
    api_version: &str,
    part: Part,
    now: &str,
) -> Value {
    let (old_set, new_set) = (FieldSet::of(old, part), FieldSet::of(&new, part));
    let changed: Vec<&Path> = new_set
        .0
        .iter()
        .filter(|p| fields::get(old, p) != fields::get(&new, p))
        .collect();
    let removed: Vec<&Path> = old_set
        .0
        .iter()
        .filter(|p| fields::get(&new, p).is_none())
        .collect();
    // `new` started as a copy of `old`, so it carries the entries to update (and any
    // an earlier update of the other part already recorded).
    let mut entries = entries(&new);
    let subresource = (part == Part::Status).then_some("status");
    if !changed.is_empty() || !removed.is_empty() {
        for entry in &mut entries {
            for path in &removed {
                entry.fields.remove_overlapping(path);
            }
            if !entry.is(manager, UPDATE, subresource) {
                for path in &changed {
                    entry.fields.remove_overlapping(path);
                }
            }
        }
        if !changed.is_empty() {
            let position = entries
                .iter()
                .position(|e| e.is(manager, UPDATE, subresource));
            let entry = match position {
                Some(i) => &mut entries[i],
                None => {
                    entries.push(Entry {
                        manager: manager.to_owned(),
                        operation: UPDATE.to_owned(),
                        api_version: api_version.to_owned(),
                        time: now.to_owned(),
                        subresource: subresource.map(str::to_owned),
                        fields: FieldSet::default(),
                    });
                    entries.last_mut().expect("just pushed")
                }
            };
            entry.fields.0.extend(changed.into_iter().cloned());
            entry.time = now.to_owned();
        }
    }
    record(&mut new, entries);
    new
}

/// The 409 message, worded as `getConflictMessage` in
/// `k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go`.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager,
            fields::display(&only.path)
        );
    }
    let mut lines = Vec::new();
    let mut current: Option<&str> = None;
    for conflict in conflicts {
        if current != Some(conflict.manager.as_str()) {
            lines.push(format!("conflicts with {}:", conflict.manager));
            current = Some(&conflict.manager);
        }
        lines.push(format!("- {}", fields::display(&conflict.path)));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}
