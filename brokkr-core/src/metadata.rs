//! Labels and annotations, with Kubernetes' syntax rules.
//!
//! Labels are for selection (placement, filters) and so follow the strict label syntax;
//! annotations carry free-form values but their keys follow the same key rules.

use std::collections::BTreeMap;

/// Key/value labels. A `BTreeMap` so that serialisation and hashing are deterministic.
pub type Labels = BTreeMap<String, String>;

/// Key/value annotations.
pub type Annotations = BTreeMap<String, String>;

/// Largest annotation value accepted, in bytes.
pub const MAX_ANNOTATION_VALUE_BYTES: usize = 256 * 1024;

/// Largest total of one object's annotations, keys and values together, in bytes: as
/// Kubernetes caps an object's annotations. Without it an object could carry any number
/// of 256 KiB values, and a listing of 1,000 objects any number of bytes.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Why a label or annotation was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The key is not `[prefix/]name` with a DNS-subdomain prefix and a 1-63 character name.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// The label value is longer than 63 characters or uses characters outside `[A-Za-z0-9._-]`.
    #[error("invalid value {value:?} for key {key:?}: {reason}")]
    InvalidValue {
        /// The key the value belongs to.
        key: String,
        /// The rejected value.
        value: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// An object's annotations together are larger than [`MAX_ANNOTATIONS_BYTES`].
    #[error(
        "annotations total {total} bytes (keys and values), more than the {} bytes (256 KiB) one object may hold",
        MAX_ANNOTATIONS_BYTES
    )]
    AnnotationsTooLarge {
        /// The total the write would have stored.
        total: usize,
    },
}

/// Result of metadata validation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks a label or annotation key: an optional DNS-subdomain prefix and `/`, then a
/// name of 1-63 alphanumerics, `-`, `_` or `.`, beginning and ending with an alphanumeric.
pub fn validate_key(key: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() || prefix.len() > 253 {
            return Err(invalid("prefix must be 1-253 characters"));
        }
        let labels_ok = prefix.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
        if !labels_ok {
            return Err(invalid("prefix must be a lowercase DNS subdomain"));
        }
    }
    if name.is_empty() || name.len() > 63 {
        return Err(invalid("name must be 1-63 characters"));
    }
    if !is_name_like(name) {
        return Err(invalid(
            "name must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric",
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or up to 63 alphanumerics, `-`, `_` or `.`, beginning
/// and ending with an alphanumeric.
pub fn validate_label_value(key: &str, value: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    if value.len() > 63 {
        return Err(invalid("must be at most 63 characters"));
    }
    if !value.is_empty() && !is_name_like(value) {
        return Err(invalid(
            "must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric",
        ));
    }
    Ok(())
}

/// Checks an annotation value: any text up to [`MAX_ANNOTATION_VALUE_BYTES`].
pub fn validate_annotation_value(key: &str, value: &str) -> Result<()> {
    if value.len() > MAX_ANNOTATION_VALUE_BYTES {
        return Err(Error::InvalidValue {
            key: key.to_owned(),
            value: format!("{}...", value.chars().take(32).collect::<String>()),
            reason: "annotation value is larger than 256 KiB",
        });
    }
    // Taints steer placement, so a malformed list must not be stored and ignored.
    if key == crate::placement::TAINTS_ANNOTATION && crate::placement::parse_taints(value).is_err()
    {
        return Err(Error::InvalidValue {
            key: key.to_owned(),
            value: value.chars().take(64).collect(),
            reason: "not a taint list: key[=value]:NoSchedule|PreferNoSchedule|NoExecute, comma-separated",
        });
    }
    Ok(())
}

/// Checks every key and value of a label map.
pub fn validate_labels(labels: &Labels) -> Result<()> {
    labels.iter().try_for_each(|(key, value)| {
        validate_key(key)?;
        validate_label_value(key, value)
    })
}

/// Checks every key and value of an annotation map, and their total size.
pub fn validate_annotations(annotations: &Annotations) -> Result<()> {
    annotations.iter().try_for_each(|(key, value)| {
        validate_key(key)?;
        validate_annotation_value(key, value)
    })?;
    validate_annotations_size(annotations)
}

/// Checks that an object's annotations, keys and values together, stay within
/// [`MAX_ANNOTATIONS_BYTES`]. A store calls it on the map a write would store, inside
/// the write's transaction, so that concurrent writes of single keys cannot pass it.
pub fn validate_annotations_size(annotations: &Annotations) -> Result<()> {
    let total = annotations
        .iter()
        .map(|(key, value)| key.len() + value.len())
        .sum();
    if total > MAX_ANNOTATIONS_BYTES {
        return Err(Error::AnnotationsTooLarge { total });
    }
    Ok(())
}

fn is_name_like(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge_ok = |b: &u8| b.is_ascii_alphanumeric();
    bytes.first().is_some_and(edge_ok)
        && bytes.last().is_some_and(edge_ok)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for ok in [
            "app",
            "app.kubernetes.io/name",
            "a",
            "x_y-z.1",
            "example.com/A1",
        ] {
            assert_eq!(validate_key(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-app",
            "app-",
            "a/b/c",
            "/name",
            "Example.com/x",
            &"n".repeat(64),
        ] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_values() {
        for ok in ["", "v1", "eu-west-1", "a.b_c"] {
            assert_eq!(validate_label_value("k", ok), Ok(()), "{ok}");
        }
        for bad in ["-x", "x y", "é", &"v".repeat(64)] {
            assert!(validate_label_value("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn annotation_values_are_free_text_up_to_the_cap() {
        assert_eq!(
            validate_annotation_value("k", "any text: with spaces/é"),
            Ok(())
        );
        let huge = "x".repeat(MAX_ANNOTATION_VALUE_BYTES + 1);
        assert!(validate_annotation_value("k", &huge).is_err());
    }

    #[test]
    fn annotations_together_stay_within_256_kib() {
        let value = "x".repeat(100 * 1024);
        let mut annotations: Annotations = ["a", "b"]
            .into_iter()
            .map(|k| (k.to_owned(), value.clone()))
            .collect();
        assert_eq!(validate_annotations(&annotations), Ok(()));
        // Keys count too: exactly at the cap passes, one byte more does not.
        let rest = MAX_ANNOTATIONS_BYTES - 2 * (1 + value.len()) - 1;
        annotations.insert("c".into(), "y".repeat(rest));
        assert_eq!(validate_annotations_size(&annotations), Ok(()));
        annotations.insert("c".into(), "y".repeat(rest + 1));
        let err = validate_annotations(&annotations).unwrap_err();
        assert_eq!(
            err,
            Error::AnnotationsTooLarge {
                total: MAX_ANNOTATIONS_BYTES + 1
            }
        );
        assert!(err.to_string().contains("256 KiB"), "{err}");
    }
}
