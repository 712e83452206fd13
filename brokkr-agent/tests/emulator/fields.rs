//! Field sets: which fields of an object a manager set, as paths of map keys, and
//! their `FieldsV1` encoding (`{"f:data":{"f:key":{}}}`).
//!
//! Simplification, stated once: lists are atomic. A list is one leaf, owned and
//! replaced whole, as upstream treats `x-kubernetes-list-type: atomic` lists; upstream
//! merges associative lists (containers by `name`, ports by `containerPort`, …) item by
//! item with `k:{…}` keys, which the emulator does not. Maps are granular, as upstream.
//! Upstream: `sigs.k8s.io/structured-merge-diff/fieldpath` (the set and its
//! serialization) and `k8s.io/apimachinery/pkg/util/managedfields`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A path of map keys from the object's root, e.g. `["data", "key"]`.
pub type Path = Vec<String>;

/// The leaf paths one manager owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(pub BTreeSet<Path>);

/// Metadata fields no manager owns: upstream's `stripMeta` removes them from every
/// field set (`k8s.io/apimachinery/pkg/util/managedfields/internal/stripmeta.go`).
const STRIPPED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Which part of an object a write may own: the main resource (everything but
/// `status`) or the `status` subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

impl FieldSet {
    /// The leaves `object` sets in `part`: scalars, lists and empty maps; `null`s are
    /// not values. `apiVersion`, `kind` and server-owned metadata are never owned.
    pub fn of(object: &Value, part: Part) -> FieldSet {
        let mut set = BTreeSet::new();
        let Some(fields) = object.as_object() else {
            return FieldSet(set);
        };
        for (key, value) in fields {
            let owned = match part {
                Part::Status => key == "status",
                Part::Main => !matches!(key.as_str(), "apiVersion" | "kind" | "status"),
            };
            if !owned {
                continue;
            }
            if key == "metadata" {
                for (meta_key, meta_value) in value.as_object().into_iter().flatten() {
                    if !STRIPPED_METADATA.contains(&meta_key.as_str()) {
                        leaves(meta_value, vec![key.clone(), meta_key.clone()], &mut set);
                    }
                }
            } else {
                leaves(value, vec![key.clone()], &mut set);
            }
        }
        FieldSet(set)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some path here overlaps `path` (equal, or one a prefix of the other).
    pub fn overlaps(&self, path: &[String]) -> bool {
        self.0.iter().any(|p| overlap(p, path))
    }

    /// Drops every path overlapping `path`.
    pub fn remove_overlapping(&mut self, path: &[String]) {
        self.0.retain(|p| !overlap(p, path));
    }

    /// `{"f:a":{"f:b":{}}}` for the single leaf `a.b`.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for key in path {
                node = node
                    .entry(format!("f:{key}"))
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("field set nodes are objects");
            }
        }
        Value::Object(root)
    }

    /// The inverse of [`to_fields_v1`](FieldSet::to_fields_v1); keys other than `f:…`
    /// (which the emulator never writes) are ignored.
    pub fn from_fields_v1(value: &Value) -> FieldSet {
        fn walk(node: &Value, path: &mut Path, set: &mut BTreeSet<Path>) {
            let children: Vec<(&String, &Value)> = node
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.starts_with("f:"))
                .collect();
            if children.is_empty() {
                if !path.is_empty() {
                    set.insert(path.clone());
                }
                return;
            }
            for (key, child) in children {
                path.push(key["f:".len()..].to_owned());
                walk(child, path, set);
                path.pop();
            }
        }
        let mut set = BTreeSet::new();
        walk(value, &mut Vec::new(), &mut set);
        FieldSet(set)
    }
}

fn leaves(value: &Value, path: Path, set: &mut BTreeSet<Path>) {
    match value {
        Value::Null => {}
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let mut child_path = path.clone();
                child_path.push(key.clone());
                leaves(child, child_path, set);
            }
        }
        _ => {
            set.insert(path);
        }
    }
}

/// Equal, or one a prefix of the other.
pub fn overlap(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// The value at `path`, if any.
pub fn get<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(object, |node, key| node.as_object()?.get(key))
        .filter(|v| !v.is_null())
}

/// Sets the value at `path`, creating (or replacing non-map) parents with maps.
pub fn set(object: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = object;
    for key in parents {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        node = node
            .as_object_mut()
            .expect("just made an object")
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.insert(last.clone(), value);
    }
}

/// Removes the value at `path`, then every parent map the removal left empty (but
/// never `metadata` itself).
pub fn remove(object: &mut Value, path: &[String]) {
    fn go(node: &mut Value, path: &[String], depth: usize) {
        let Some(map) = node.as_object_mut() else {
            return;
        };
        match path {
            [] => {}
            [last] => {
                map.remove(last);
            }
            [first, rest @ ..] => {
                if let Some(child) = map.get_mut(first) {
                    go(child, rest, depth + 1);
                    let emptied = child.as_object().is_some_and(Map::is_empty);
                    if emptied && (depth > 0 || first != "metadata") {
                        map.remove(first);
                    }
                }
            }
        }
    }
    go(object, path, 0);
}

/// `.data.key`, as upstream prints a field path in conflict messages.
pub fn display(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}
