//! A control plane with its own placement and generator, served by the reference server.
use brokkr_core::generator::{self, GenerateRequest, Generated, Generator, GeneratorRegistry};
use brokkr_core::placement::*;
use brokkr_core::{Agent, runtime::ControlPlane};
use serde_json::{Value, json};
use std::sync::Arc;

/// Chooses the agents whose name starts with its policy's prefix: `{"prefix": "edge-"}`.
struct NamePrefix;
fn prefix(policy: &PlacementPolicy) -> Option<&str> {
    policy.custom.as_ref()?.get("prefix")?.as_str()
}

impl Placement for NamePrefix {
    fn validate(&self, policy: &PlacementPolicy) -> Result<(), PolicyError> {
        prefix(policy)
            .map(drop)
            .ok_or(PolicyError::new("custom.prefix: a string is required"))
    }
    fn place(&self, input: &PlacementInput<'_>) -> PlacementDecision {
        let fits = |a: &&Agent| prefix(input.policy).is_some_and(|p| a.name.starts_with(p));
        let (yes, no): (Vec<&Agent>, Vec<_>) = input.agents.iter().partition(fits);
        let why = |a: &&Agent| (a.id, Rejection::custom("name_prefix", &a.name));
        let rejected = no.iter().map(why).collect();
        let chosen = yes.iter().map(|a| a.id).collect();
        PlacementDecision {
            chosen,
            rejected,
            leaving: Vec::new(),
        }
    }
}

/// Renders one ConfigMap from `{"message": "..."}`.
struct Hello;
impl Generator for Hello {
    fn name(&self) -> &str {
        "hello"
    }
    fn parameters_schema(&self) -> Value {
        json!({"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}})
    }
    fn generate(&self, req: &GenerateRequest<'_>) -> generator::Result<Generated> {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hello"}, "data": req.parameters});
        Generated::from_yaml(object.to_string(), req.parameters.clone(), req.limits)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(brokkr_store::SqlStore::connect("sqlite::memory:").await?);
    let mut generators = GeneratorRegistry::new();
    generators.register(Hello);
    let cp = ControlPlane::builder(store).register_placement("name-prefix", Arc::new(NamePrefix));
    let mut config = brokkr_server::config::Config::default();
    config.server.listen = std::env::args().nth(1).unwrap_or(config.server.listen);
    let cp = cp.generators(generators).build();
    let mut server = brokkr_server::serve::Server::bind_with_control_plane(cp, config).await?;
    let addr = server.local_addr();
    let key = server.take_admin_key().ok_or("no admin key")?;
    println!("listening on http://{addr} admin key {}", key.expose());
    let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or(()) };
    Ok(server.run(ctrl_c).await?)
}
