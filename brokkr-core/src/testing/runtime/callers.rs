//! Who calls: a small world of agents, generators and a stack, and an access-matrix
//! check that runs one operation as every kind of caller and names every cell that
//! answered otherwise.

use std::future::Future;

use crate::id::{AgentId, DeploymentObjectId, GeneratorId, StackId};
use crate::model::{Actor, NewStack};
use crate::runtime::{ControlPlane, Error, Result};
use crate::store;
use crate::testing::conformance::{mk_agent, mk_generator, mk_object, mk_target};

/// The callers of a matrix row, in column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// `Actor::Admin`.
    Admin,
    /// `Actor::System`.
    System,
    /// The agent the operation is about.
    Agent,
    /// Another agent.
    OtherAgent,
    /// The generator owning the stack the operation is about.
    Generator,
    /// Another generator.
    OtherGenerator,
}

impl Who {
    /// Every caller, in column order.
    pub const ALL: [Who; 6] = [
        Who::Admin,
        Who::System,
        Who::Agent,
        Who::OtherAgent,
        Who::Generator,
        Who::OtherGenerator,
    ];
}

/// What a cell expects, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Success.
    Ok,
    /// `Error::Forbidden`.
    Forbidden,
    /// `Error::Store(NotFound)`: the row does not exist for this caller.
    NotFound,
}

/// The kind of `result`, or the error itself when it is none of [`Answer`].
pub fn answer_of<T>(result: &Result<T>) -> std::result::Result<Answer, String> {
    match result {
        Ok(_) => Ok(Answer::Ok),
        Err(Error::Forbidden(_)) => Ok(Answer::Forbidden),
        Err(Error::Store(store::Error::NotFound { .. })) => Ok(Answer::NotFound),
        Err(other) => Err(format!("{other:?}")),
    }
}

/// Two agents, two generators and a stack of the first generator, with one deployment
/// object, assigned to the first agent.
#[derive(Debug, Clone, Copy)]
pub struct World {
    /// The agent operations are about.
    pub agent: AgentId,
    /// Another agent.
    pub other_agent: AgentId,
    /// The generator owning `stack`.
    pub generator: GeneratorId,
    /// Another generator.
    pub other_generator: GeneratorId,
    /// A stack of `generator`, assigned to `agent`.
    pub stack: StackId,
    /// The stack's deployment object.
    pub object: DeploymentObjectId,
}

impl World {
    /// Builds the world in the control plane's store.
    pub async fn new(cp: &ControlPlane) -> Self {
        let store = cp.store().as_ref();
        let agent = mk_agent(store, "agent").await.id;
        let other_agent = mk_agent(store, "other-agent").await.id;
        let generator = mk_generator(store, "generator").await.id;
        let other_generator = mk_generator(store, "other-generator").await.id;
        let stack = mk_owned_stack(cp, generator, "stack").await;
        let object = mk_object(store, stack, "1").await.id;
        mk_target(store, agent, stack).await;
        Self {
            agent,
            other_agent,
            generator,
            other_generator,
            stack,
            object,
        }
    }

    /// The actor of `who`, with `agent` as the agent the operation is about.
    pub fn actor(&self, who: Who, agent: AgentId) -> Actor {
        match who {
            Who::Admin => Actor::Admin,
            Who::System => Actor::System,
            Who::Agent => Actor::Agent(agent),
            Who::OtherAgent => Actor::Agent(self.other_agent),
            Who::Generator => Actor::Generator(self.generator),
            Who::OtherGenerator => Actor::Generator(self.other_generator),
        }
    }
}

/// A live stack created by `generator`.
pub async fn mk_owned_stack(cp: &ControlPlane, generator: GeneratorId, name: &str) -> StackId {
    let new = NewStack {
        name: name.into(),
        generator_id: Some(generator),
        ..Default::default()
    };
    cp.store()
        .create_stack(&Actor::Generator(generator), new)
        .await
        .expect("create fixture stack")
        .id
}

/// Runs `op` as every caller of [`Who::ALL`] and returns one line per cell whose answer
/// differs from `expected` (in the same order). Each call gets the caller; an operation
/// that changes something makes its own subject per call, so cells cannot affect each
/// other.
pub async fn matrix<T, F, Fut>(name: &str, expected: [Answer; 6], mut op: F) -> Vec<String>
where
    F: FnMut(Who) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut mismatches = Vec::new();
    for (who, want) in Who::ALL.into_iter().zip(expected) {
        let got = answer_of(&op(who).await);
        if got != Ok(want) {
            mismatches.push(format!("{name} as {who:?}: expected {want:?}, got {got:?}"));
        }
    }
    mismatches
}

/// Panics listing every mismatch.
pub fn assert_no_mismatches(mismatches: Vec<String>) {
    assert!(
        mismatches.is_empty(),
        "{} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
