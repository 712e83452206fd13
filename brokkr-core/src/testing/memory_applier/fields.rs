//! A small model of server-side apply's field ownership, enough for the [`Applier`]
//! contract's drift rules: what a forced apply by Brokkr's field manager does to an
//! object others may have changed too.
//!
//! As the API server does (kubernetes.io, "Server-Side Apply", Field management):
//! every field of the applied configuration is set, taking it over from any other
//! manager (the apply is forced); a field Brokkr applied last time and no longer
//! applies is removed; fields only others set are left alone. Simplified: lists are
//! atomic (replaced whole, where the server merges `listType=map` lists such as
//! `containers` by key), and a field Brokkr stops applying is removed even when
//! another manager set it to the same value.
//!
//! [`Applier`]: crate::applier::Applier

use serde_json::{Map, Value};

/// The object after Brokkr applies `applied` to `live` (`None`: it does not exist),
/// having applied `previous` last time (`None`: never, or let go of since).
pub(super) fn apply(live: Option<&Value>, previous: Option<&Value>, applied: &Value) -> Value {
    let mut object = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    if let Some(previous) = previous {
        remove_dropped(&mut object, previous, applied);
    }
    set_fields(&mut object, applied);
    object
}

/// Removes from `object` the fields `previous` set and `applied` no longer sets.
fn remove_dropped(object: &mut Value, previous: &Value, applied: &Value) {
    let (Value::Object(object), Value::Object(previous)) = (object, previous) else {
        return;
    };
    for (key, before) in previous {
        match applied.get(key) {
            None => {
                object.remove(key);
            }
            Some(now) => {
                if let Some(field) = object.get_mut(key) {
                    remove_dropped(field, before, now);
                }
            }
        }
    }
}

/// Sets every field of `applied` in `object`: maps merge key by key, anything else
/// (scalars, lists) replaces.
fn set_fields(object: &mut Value, applied: &Value) {
    match (object, applied) {
        (Value::Object(object), Value::Object(applied)) => {
            for (key, value) in applied {
                match object.get_mut(key) {
                    Some(field) => set_fields(field, value),
                    None => {
                        object.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (object, applied) => *object = applied.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Asserts what applying `applied` over `live`, after `previous`, gives.
    fn check(live: Option<Value>, previous: Option<Value>, applied: Value, expected: Value) {
        assert_eq!(
            apply(live.as_ref(), previous.as_ref(), &applied),
            expected,
            "live {live:?}, previous {previous:?}, applied {applied}"
        );
    }

    #[test]
    fn creating_sets_what_is_applied() {
        let applied = json!({"metadata": {"name": "c"}, "data": {"k": "v"}});
        check(None, None, applied.clone(), applied);
    }

    #[test]
    fn fields_of_others_stay_and_brokkrs_are_put_back() {
        let applied = json!({"metadata": {"name": "c"}, "data": {"k": "v"}});
        check(
            Some(
                json!({"metadata": {"name": "c", "labels": {"team": "blue"}}, "data": {"k": "edited", "extra": "x"}}),
            ),
            Some(applied.clone()),
            applied,
            json!({"metadata": {"name": "c", "labels": {"team": "blue"}}, "data": {"k": "v", "extra": "x"}}),
        );
    }

    #[test]
    fn a_field_no_longer_applied_is_removed() {
        check(
            Some(json!({"data": {"old": "1", "k": "v"}, "spec": {"a": 1}})),
            Some(json!({"data": {"old": "1", "k": "v"}, "spec": {"a": 1}})),
            json!({"data": {"k": "v"}}),
            json!({"data": {"k": "v"}}),
        );
    }

    #[test]
    fn adopting_keeps_everything_else() {
        check(
            Some(json!({"data": {"theirs": "1"}, "immutable": false})),
            None,
            json!({"data": {"k": "v"}}),
            json!({"data": {"theirs": "1", "k": "v"}, "immutable": false}),
        );
    }

    #[test]
    fn lists_and_scalars_replace() {
        check(
            Some(json!({"spec": {"ports": [1, 2], "type": {"nested": true}}})),
            None,
            json!({"spec": {"ports": [3], "type": "ClusterIP"}}),
            json!({"spec": {"ports": [3], "type": "ClusterIP"}}),
        );
    }
}
