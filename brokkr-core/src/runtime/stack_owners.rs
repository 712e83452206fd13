//! Which generator owns each stack, remembered so that an append does not read its
//! stack first.
//!
//! A stack's owner is set when it is created and never changes, so a remembered owner
//! never goes stale; a stack deleted since is refused by the store's append itself.
//! The map is bounded: when full it starts over, and the next appends read again.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::id::{GeneratorId, StackId};
use crate::sync::lock;

/// Stack owners by stack; `None` is a stack without a generator (made by an admin).
#[derive(Debug)]
pub(crate) struct StackOwners {
    owners: Mutex<HashMap<StackId, Option<GeneratorId>>>,
    capacity: usize,
}

impl StackOwners {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            owners: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The remembered owner of `stack`, if any: `Some(None)` for an admin's stack.
    pub(crate) fn get(&self, stack: StackId) -> Option<Option<GeneratorId>> {
        lock(&self.owners).get(&stack).copied()
    }

    pub(crate) fn remember(&self, stack: StackId, owner: Option<GeneratorId>) {
        let mut owners = lock(&self.owners);
        if owners.len() >= self.capacity && !owners.contains_key(&stack) {
            owners.clear();
        }
        owners.insert(stack, owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_owners_within_its_bound() {
        let owners = StackOwners::new(2);
        let (a, b, c) = (StackId::new(), StackId::new(), StackId::new());
        let generator = GeneratorId::new();
        owners.remember(a, Some(generator));
        owners.remember(b, None);
        assert_eq!(owners.get(a), Some(Some(generator)));
        assert_eq!(owners.get(b), Some(None));
        assert_eq!(owners.get(c), None);
        owners.remember(c, None);
        assert_eq!(owners.get(a), None, "full: it started over");
        assert_eq!(owners.get(c), Some(None));
    }
}
