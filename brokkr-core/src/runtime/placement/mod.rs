//! Placement at run time: the in-memory index of agents and placed stacks, the
//! operations on a stack's placement, and the controller that keeps every stored
//! decision in step with its policy and the agents.

pub mod controller;
mod eviction;
pub mod index;
mod ops;
mod state;

pub use crate::placement::{RejectionPage, Rejections};

pub use controller::{PlacementController, PlacementSignals, Trigger};
pub use ops::{PlacementPreview, PlacementView};
pub use state::{PlacementState, Recorded};
