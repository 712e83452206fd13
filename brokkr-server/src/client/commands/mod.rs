//! One module per command group: its arguments, its requests, its columns.

mod agents;
mod events;
mod objects;
mod placements;
mod plans;
mod render;
mod stacks;
mod tail;

pub use agents::{AgentsCommand, run as agents};
pub use events::{EventsCommand, run as events};
pub use objects::{DeployArgs, ObjectsCommand, deploy, run as objects};
pub use placements::{PlacementsCommand, run as placements};
pub use plans::{PlansCommand, run as plans};
pub use render::{RenderArgs, run as render};
pub use stacks::{StacksCommand, run as stacks};
