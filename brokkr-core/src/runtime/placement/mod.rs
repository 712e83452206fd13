//! Placement at run time: the controller that keeps every stack's stored decision in
//! step with its policy and the agent inventory.

pub mod controller;

pub use controller::{PlacementController, PlacementSignals, Trigger};
