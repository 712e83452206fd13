//! Agent taints in the `kubectl taint` syntax, and whether tolerations cover them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Toleration, TolerationOperator};

/// What a taint does to stacks that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaintEffect {
    /// No new placement on the agent.
    NoSchedule,
    /// Avoid the agent when possible (Brokkr treats it like `NoSchedule`).
    PreferNoSchedule,
    /// No placement, and stacks already placed there lose their place.
    NoExecute,
}

impl fmt::Display for TaintEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoSchedule => "NoSchedule",
            Self::PreferNoSchedule => "PreferNoSchedule",
            Self::NoExecute => "NoExecute",
        })
    }
}

/// One taint: `key[=value]:Effect`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Taint {
    /// Its key.
    pub key: String,
    /// Its value, if any.
    pub value: Option<String>,
    /// Its effect.
    pub effect: TaintEffect,
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)?;
        if let Some(value) = &self.value {
            write!(f, "={value}")?;
        }
        write!(f, ":{}", self.effect)
    }
}

impl Taint {
    /// Whether `toleration` covers this taint.
    pub fn tolerated_by(&self, toleration: &Toleration) -> bool {
        let effect_ok = toleration.effect.is_none_or(|e| e == self.effect);
        let key_ok = match toleration.operator {
            TolerationOperator::Exists => toleration.key.is_empty() || toleration.key == self.key,
            TolerationOperator::Equal => {
                toleration.key == self.key && toleration.value == self.value
            }
        };
        effect_ok && key_ok
    }
}

/// Why a taint list does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid taint {taint:?}: {reason}")]
pub struct TaintError {
    /// The offending entry.
    pub taint: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Parses `key=value:NoSchedule,key2:NoExecute` (whitespace around entries ignored; an
/// empty string is no taints).
pub fn parse_taints(text: &str) -> Result<Vec<Taint>, TaintError> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let error = |reason| TaintError {
                taint: entry.to_owned(),
                reason,
            };
            let (head, effect) = entry
                .rsplit_once(':')
                .ok_or_else(|| error("expected key[=value]:Effect"))?;
            let effect = match effect {
                "NoSchedule" => TaintEffect::NoSchedule,
                "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
                "NoExecute" => TaintEffect::NoExecute,
                _ => {
                    return Err(error(
                        "effect must be NoSchedule, PreferNoSchedule or NoExecute",
                    ));
                }
            };
            let (key, value) = match head.split_once('=') {
                Some((key, value)) => (key, Some(value.to_owned())),
                None => (head, None),
            };
            crate::metadata::validate_key(key)
                .map_err(|_| error("the key is not a valid label key"))?;
            if let Some(value) = &value {
                crate::metadata::validate_label_value(key, value)
                    .map_err(|_| error("the value is not a valid label value"))?;
            }
            Ok(Taint {
                key: key.to_owned(),
                value,
                effect,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toleration(
        key: &str,
        operator: TolerationOperator,
        value: Option<&str>,
        effect: Option<TaintEffect>,
    ) -> Toleration {
        Toleration {
            key: key.into(),
            operator,
            value: value.map(Into::into),
            effect,
        }
    }

    #[test]
    fn taints_parse_and_print_in_kubectl_syntax() {
        let taints = parse_taints(" gpu=true:NoSchedule, maintenance:NoExecute ,").unwrap();
        assert_eq!(taints.len(), 2);
        assert_eq!(taints[0].to_string(), "gpu=true:NoSchedule");
        assert_eq!(taints[1].value, None);
        assert!(parse_taints("").unwrap().is_empty());
        for bad in [
            "gpu=true",
            "gpu:Sometimes",
            "=x:NoSchedule",
            "bad key:NoSchedule",
        ] {
            assert!(parse_taints(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tolerations_match_key_value_and_effect() {
        let taint = &parse_taints("gpu=true:NoSchedule").unwrap()[0];
        use TolerationOperator::{Equal, Exists};
        assert!(taint.tolerated_by(&toleration("gpu", Equal, Some("true"), None)));
        assert!(taint.tolerated_by(&toleration(
            "gpu",
            Exists,
            None,
            Some(TaintEffect::NoSchedule)
        )));
        assert!(taint.tolerated_by(&toleration("", Exists, None, None)));
        assert!(!taint.tolerated_by(&toleration("gpu", Equal, Some("false"), None)));
        assert!(!taint.tolerated_by(&toleration(
            "gpu",
            Exists,
            None,
            Some(TaintEffect::NoExecute)
        )));
        assert!(!taint.tolerated_by(&toleration("other", Exists, None, None)));
    }
}
