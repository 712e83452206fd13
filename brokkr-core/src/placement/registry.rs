//! [`PlacementRegistry`]: the default placement plus placements registered by name.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::{DefaultPlacement, Placement, PlacementPolicy};

/// The placements a control plane knows: a default (for policies that name none) and
/// named ones (for policies whose [`placement`](PlacementPolicy::placement) names
/// them). Cheap to clone.
#[derive(Clone)]
pub struct PlacementRegistry {
    default: Arc<dyn Placement>,
    named: BTreeMap<String, Arc<dyn Placement>>,
}

impl Default for PlacementRegistry {
    /// [`DefaultPlacement`] as the default, nothing named.
    fn default() -> Self {
        Self::new(Arc::new(DefaultPlacement))
    }
}

impl fmt::Debug for PlacementRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlacementRegistry")
            .field("named", &self.named.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A policy names a placement that is not registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no placement is registered as {0:?}")]
pub struct UnknownPlacement(pub String);

/// Whether `name` can name a placement: 1-63 characters of `a-z`, `0-9`, `-`, `_`, `.`.
pub(super) fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

impl PlacementRegistry {
    /// A registry with `default` for policies that name no placement.
    pub fn new(default: Arc<dyn Placement>) -> Self {
        Self {
            default,
            named: BTreeMap::new(),
        }
    }

    /// Replaces the default placement.
    pub fn set_default(&mut self, placement: Arc<dyn Placement>) {
        self.default = placement;
    }

    /// Registers `placement` as `name` (replacing one of that name).
    ///
    /// # Panics
    /// When `name` is not 1-63 characters of `a-z`, `0-9`, `-`, `_`, `.`: a programming
    /// error in the embedder, caught at start-up.
    pub fn register(&mut self, name: impl Into<String>, placement: Arc<dyn Placement>) {
        let name = name.into();
        assert!(valid_name(&name), "invalid placement name {name:?}");
        self.named.insert(name, placement);
    }

    /// [`register`](Self::register), by value.
    pub fn with(mut self, name: impl Into<String>, placement: Arc<dyn Placement>) -> Self {
        self.register(name, placement);
        self
    }

    /// The default placement.
    pub fn default_placement(&self) -> &Arc<dyn Placement> {
        &self.default
    }

    /// The placement registered as `name`, or the default for `None`.
    pub fn get(&self, name: Option<&str>) -> Result<&Arc<dyn Placement>, UnknownPlacement> {
        match name {
            None => Ok(&self.default),
            Some(name) => self
                .named
                .get(name)
                .ok_or_else(|| UnknownPlacement(name.to_owned())),
        }
    }

    /// The placement deciding stacks with `policy`.
    pub fn for_policy(
        &self,
        policy: &PlacementPolicy,
    ) -> Result<&Arc<dyn Placement>, UnknownPlacement> {
        self.get(policy.placement.as_deref())
    }

    /// The registered names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.named.keys().map(String::as_str)
    }
}
