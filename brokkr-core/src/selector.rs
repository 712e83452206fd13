//! Label selectors and annotation matches, as pure functions over label maps.
//!
//! [`LabelSelector`] has exactly Kubernetes' shape and semantics (`matchLabels` plus
//! `matchExpressions` with `In`, `NotIn`, `Exists`, `DoesNotExist`), so a selector a
//! user already writes for Kubernetes means the same thing to Brokkr's placement.
//! [`AnnotationMatch`] requires annotations to carry exact values.
//!
//! Matching never validates: a caller validates a selector once, when it is stored
//! ([`LabelSelector::validate`]), and then matches it against many agents cheaply.
//! [`LabelSelector::first_mismatch`] explains a rejection for placement decisions.
//!
//! ```
//! use brokkr_core::metadata::Labels;
//! use brokkr_core::selector::LabelSelector;
//!
//! let selector: LabelSelector = serde_json::from_str(
//!     r#"{"matchLabels": {"tier": "prod"},
//!         "matchExpressions": [{"key": "region", "operator": "In", "values": ["us-east", "us-west"]}]}"#,
//! ).unwrap();
//! selector.validate().unwrap();
//!
//! let labels = Labels::from([("tier".into(), "prod".into()), ("region".into(), "eu-west".into())]);
//! assert!(!selector.matches(&labels));
//! assert_eq!(
//!     selector.first_mismatch(&labels).unwrap().to_string(),
//!     "label region=eu-west not matched (In [us-east, us-west])",
//! );
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::metadata::{self, Annotations, Labels};

/// Why a selector or an annotation match was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A `matchLabels` entry has an invalid key or value.
    #[error("invalid matchLabels entry {key:?}")]
    InvalidMatchLabel {
        /// The key of the entry.
        key: String,
        /// The syntax rule it breaks.
        #[source]
        source: metadata::Error,
    },
    /// A `matchExpressions` entry has an invalid key or value.
    #[error("invalid matchExpressions[{index}] (key {key:?})")]
    InvalidRequirement {
        /// Position of the requirement in `matchExpressions`.
        index: usize,
        /// The key of the requirement.
        key: String,
        /// The syntax rule it breaks.
        #[source]
        source: metadata::Error,
    },
    /// An `In` or `NotIn` requirement has no values.
    #[error(
        "matchExpressions[{index}] (key {key:?}): operator {operator} needs at least one value"
    )]
    MissingValues {
        /// Position of the requirement in `matchExpressions`.
        index: usize,
        /// The key of the requirement.
        key: String,
        /// The operator, `In` or `NotIn`.
        operator: SelectorOperator,
    },
    /// An `Exists` or `DoesNotExist` requirement has values.
    #[error(
        "matchExpressions[{index}] (key {key:?}): operator {operator} takes no values, got {count}"
    )]
    UnexpectedValues {
        /// Position of the requirement in `matchExpressions`.
        index: usize,
        /// The key of the requirement.
        key: String,
        /// The operator, `Exists` or `DoesNotExist`.
        operator: SelectorOperator,
        /// How many values were given.
        count: usize,
    },
    /// An annotation match has an invalid key or value.
    #[error("invalid annotation match entry {key:?}")]
    InvalidAnnotationMatch {
        /// The key of the entry.
        key: String,
        /// The syntax rule it breaks.
        #[source]
        source: metadata::Error,
    },
}

/// Result of selector validation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Kubernetes label selector: every `matchLabels` pair and every `matchExpressions`
/// requirement must hold (they are ANDed); an empty selector matches everything.
///
/// Serialised exactly as in Kubernetes:
/// `{"matchLabels": {...}, "matchExpressions": [{"key": "...", "operator": "In", "values": [...]}]}`,
/// with empty fields omitted. Unknown fields are rejected, so that a misspelt field
/// cannot silently turn into an empty selector that matches every agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One `matchExpressions` entry: a key, an operator and, for `In`/`NotIn`, values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorRequirement {
    /// The label key the requirement is about.
    pub key: String,
    /// How the label is tested.
    pub operator: SelectorOperator,
    /// The value set for `In` and `NotIn`; empty for `Exists` and `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// The operator of a [`SelectorRequirement`], serialised as in Kubernetes.
///
/// An unknown operator fails deserialisation with a message naming it and the
/// accepted ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// The label is present and its value is one of `values`.
    In,
    /// The label is absent, or its value is none of `values`.
    NotIn,
    /// The label is present, whatever its value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl SelectorOperator {
    /// The operator as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::Exists => "Exists",
            Self::DoesNotExist => "DoesNotExist",
        }
    }

    /// Whether the operator takes a value set (`In`, `NotIn`) rather than none.
    pub fn takes_values(self) -> bool {
        matches!(self, Self::In | Self::NotIn)
    }
}

impl fmt::Display for SelectorOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SelectorRequirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let found = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => found.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => found.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => found.is_some(),
            SelectorOperator::DoesNotExist => found.is_none(),
        }
    }

    fn validate(&self, index: usize) -> Result<()> {
        let invalid = |source| Error::InvalidRequirement {
            index,
            key: self.key.clone(),
            source,
        };
        metadata::validate_key(&self.key).map_err(invalid)?;
        if self.operator.takes_values() {
            if self.values.is_empty() {
                return Err(Error::MissingValues {
                    index,
                    key: self.key.clone(),
                    operator: self.operator,
                });
            }
        } else if !self.values.is_empty() {
            return Err(Error::UnexpectedValues {
                index,
                key: self.key.clone(),
                operator: self.operator,
                count: self.values.len(),
            });
        }
        self.values
            .iter()
            .try_for_each(|value| metadata::validate_label_value(&self.key, value))
            .map_err(invalid)
    }

    fn expected(&self) -> Expected {
        match self.operator {
            SelectorOperator::In => Expected::In(self.values.clone()),
            SelectorOperator::NotIn => Expected::NotIn(self.values.clone()),
            SelectorOperator::Exists => Expected::Exists,
            SelectorOperator::DoesNotExist => Expected::DoesNotExist,
        }
    }
}

impl LabelSelector {
    /// Whether `labels` satisfy every `matchLabels` pair and every requirement.
    ///
    /// Does not validate; a selector that [`validate`](Self::validate) rejects still
    /// matches by the literal rules (`In` with no values matches nothing).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
            && self.match_expressions.iter().all(|req| req.matches(labels))
    }

    /// The first requirement that `labels` fail, `matchLabels` (in key order) before
    /// `matchExpressions` (in order); `None` exactly when [`matches`](Self::matches).
    pub fn first_mismatch(&self, labels: &Labels) -> Option<Mismatch> {
        let mismatch = |key: &str, expected| Mismatch {
            subject: Subject::Label,
            key: key.to_owned(),
            found: labels.get(key).cloned(),
            expected,
        };
        if let Some((key, value)) = self
            .match_labels
            .iter()
            .find(|(key, value)| labels.get(*key) != Some(value))
        {
            return Some(mismatch(key, Expected::Equals(value.clone())));
        }
        self.match_expressions
            .iter()
            .find(|req| !req.matches(labels))
            .map(|req| mismatch(&req.key, req.expected()))
    }

    /// Checks Kubernetes' rules: keys and values have label syntax, `In`/`NotIn` have
    /// at least one value, `Exists`/`DoesNotExist` have none.
    pub fn validate(&self) -> Result<()> {
        self.match_labels.iter().try_for_each(|(key, value)| {
            metadata::validate_key(key)
                .and_then(|()| metadata::validate_label_value(key, value))
                .map_err(|source| Error::InvalidMatchLabel {
                    key: key.clone(),
                    source,
                })
        })?;
        self.match_expressions
            .iter()
            .enumerate()
            .try_for_each(|(index, req)| req.validate(index))
    }

    /// Whether the selector has no requirement at all (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

/// Annotations that must be present with exactly these values; empty matches
/// everything. Serialised as a plain JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AnnotationMatch(pub BTreeMap<String, String>);

impl AnnotationMatch {
    /// Whether every pair is present in `annotations` with exactly that value.
    pub fn matches(&self, annotations: &Annotations) -> bool {
        self.0
            .iter()
            .all(|(key, value)| annotations.get(key) == Some(value))
    }

    /// The first pair (in key order) that `annotations` fail; `None` exactly when
    /// [`matches`](Self::matches).
    pub fn first_mismatch(&self, annotations: &Annotations) -> Option<Mismatch> {
        self.0
            .iter()
            .find(|(key, value)| annotations.get(*key) != Some(value))
            .map(|(key, value)| Mismatch {
                subject: Subject::Annotation,
                key: key.clone(),
                found: annotations.get(key).cloned(),
                expected: Expected::Equals(value.clone()),
            })
    }

    /// Checks annotation syntax: label-style keys, values within the size cap.
    pub fn validate(&self) -> Result<()> {
        self.0.iter().try_for_each(|(key, value)| {
            metadata::validate_key(key)
                .and_then(|()| metadata::validate_annotation_value(key, value))
                .map_err(|source| Error::InvalidAnnotationMatch {
                    key: key.clone(),
                    source,
                })
        })
    }

    /// Whether there is no pair to match (and so everything matches).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a [`Mismatch`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A label, tested by a [`LabelSelector`].
    Label,
    /// An annotation, tested by an [`AnnotationMatch`].
    Annotation,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Label => "label",
            Self::Annotation => "annotation",
        })
    }
}

/// The requirement a [`Mismatch`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Present with exactly this value (`matchLabels`, annotation matches).
    Equals(String),
    /// Present with one of these values.
    In(Vec<String>),
    /// Absent, or with none of these values.
    NotIn(Vec<String>),
    /// Present.
    Exists,
    /// Absent.
    DoesNotExist,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Equals(value) => write!(f, "= {value}"),
            Self::In(values) => write!(f, "In [{}]", values.join(", ")),
            Self::NotIn(values) => write!(f, "NotIn [{}]", values.join(", ")),
            Self::Exists => f.write_str("Exists"),
            Self::DoesNotExist => f.write_str("DoesNotExist"),
        }
    }
}

/// Why a label or annotation map failed a selector: which key, what was found and
/// what was required. Its `Display` is a short sentence for placement explanations,
/// e.g. `label region=eu-west not matched (In [us-east, us-west])` or
/// `label gpu missing (Exists)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Whether a label or an annotation failed.
    pub subject: Subject,
    /// The key the failed requirement is about.
    pub key: String,
    /// The value found under `key`, `None` when the key is absent.
    pub found: Option<String>,
    /// The requirement that failed.
    pub expected: Expected,
}

/// Longest found value shown in a [`Mismatch`] message, in characters; annotation
/// values can be large and a placement explanation should stay one short line.
const MAX_SHOWN_VALUE_CHARS: usize = 64;

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            subject,
            key,
            found,
            expected,
        } = self;
        match found {
            None => write!(f, "{subject} {key} missing ({expected})"),
            Some(value) => {
                let verdict = match expected {
                    Expected::DoesNotExist => "present",
                    _ => "not matched",
                };
                write!(f, "{subject} {key}=")?;
                if value.chars().count() > MAX_SHOWN_VALUE_CHARS {
                    let shown: String = value.chars().take(MAX_SHOWN_VALUE_CHARS).collect();
                    write!(f, "{shown}...")?;
                } else {
                    f.write_str(value)?;
                }
                write!(f, " {verdict} ({expected})")
            }
        }
    }
}

#[cfg(test)]
mod tests;
