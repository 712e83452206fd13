//! What the agent reports about its cluster with every heartbeat: the Kubernetes
//! version, the number of nodes and their allocatable CPU and memory.
//!
//! Each fact is best effort. An agent without RBAC to list nodes (the namespace-scoped
//! setup) still reports the version; a fact it cannot read is left out, never guessed.

use brokkr_core::Capabilities;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

/// Nodes read per list request.
const PAGE_SIZE: u32 = 500;

/// The agent's [`CapabilitySource`](crate::agent::CapabilitySource) for a real
/// cluster: [`probe`] at every heartbeat.
#[derive(Clone)]
pub struct KubeCapabilities(pub kube::Client);

#[async_trait::async_trait]
impl crate::agent::CapabilitySource for KubeCapabilities {
    async fn capabilities(&self) -> Capabilities {
        probe(&self.0).await
    }
}

/// Reads the cluster's capabilities. Never fails: what cannot be read is `None`.
pub async fn probe(client: &kube::Client) -> Capabilities {
    let mut capabilities = Capabilities::default();
    match client.apiserver_version().await {
        Ok(info) => capabilities.kubernetes_version = Some(info.git_version),
        Err(e) => tracing::debug!(error = %e, "cannot read the API server's version"),
    }
    match list_nodes(client).await {
        Ok(nodes) => {
            let totals = NodeTotals::of(&nodes);
            capabilities.node_count = Some(u32::try_from(nodes.len()).unwrap_or(u32::MAX));
            capabilities.allocatable_cpu_millis = Some(totals.cpu_millis);
            capabilities.allocatable_memory_bytes = Some(totals.memory_bytes);
        }
        Err(e) => tracing::debug!(error = %e, "cannot list nodes; node capabilities left out"),
    }
    capabilities
}

async fn list_nodes(client: &kube::Client) -> Result<Vec<Node>, kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let mut nodes = Vec::new();
    let mut params = ListParams::default().limit(PAGE_SIZE);
    loop {
        let page = api.list(&params).await?;
        nodes.extend(page.items);
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(nodes),
        }
    }
}

/// Allocatable resources summed over nodes.
#[derive(Debug, Default, PartialEq, Eq)]
struct NodeTotals {
    cpu_millis: u64,
    memory_bytes: u64,
}

impl NodeTotals {
    fn of(nodes: &[Node]) -> Self {
        let mut totals = Self::default();
        for node in nodes {
            let name = node.metadata.name.as_deref().unwrap_or_default();
            let Some(allocatable) = node.status.as_ref().and_then(|s| s.allocatable.as_ref())
            else {
                tracing::debug!(node = name, "node reports no allocatable resources");
                continue;
            };
            let add = |resource: &str, scale: i32, total: &mut u64| {
                let Some(quantity) = allocatable.get(resource) else {
                    return;
                };
                match parse_quantity(&quantity.0, scale) {
                    Some(value) => *total = total.saturating_add(value),
                    None => tracing::warn!(
                        node = name,
                        resource,
                        quantity = quantity.0,
                        "cannot parse allocatable quantity"
                    ),
                }
            };
            add("cpu", 3, &mut totals.cpu_millis);
            add("memory", 0, &mut totals.memory_bytes);
        }
        totals
    }
}

/// A Kubernetes quantity (`4`, `3500m`, `16Gi`, `129M`, `1e3`, `.5`) times `10^scale`,
/// rounded up, as Kubernetes rounds (`MilliValue` is scale 3, `Value` scale 0).
/// `None` for a malformed, negative or too large quantity.
pub(crate) fn parse_quantity(quantity: &str, scale: i32) -> Option<u64> {
    let quantity = quantity.trim();
    let (number, suffix) = quantity.split_at(
        quantity
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(quantity.len()),
    );
    let number = number.strip_prefix('+').unwrap_or(number);
    if number.starts_with('-') {
        return None;
    }
    // The number as integer digits times 10^exponent.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole
        .chars()
        .chain(fraction.chars())
        .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut digits: u128 = 0;
    for c in whole.chars().chain(fraction.chars()) {
        digits = digits
            .checked_mul(10)?
            .checked_add(u128::from(c.to_digit(10)?))?;
    }
    let mut exponent = scale.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    let mut binary: u128 = 1;
    match suffix {
        "" => {}
        "Ki" => binary = 1 << 10,
        "Mi" => binary = 1 << 20,
        "Gi" => binary = 1 << 30,
        "Ti" => binary = 1 << 40,
        "Pi" => binary = 1 << 50,
        "Ei" => binary = 1 << 60,
        "n" => exponent -= 9,
        "u" => exponent -= 6,
        "m" => exponent -= 3,
        "k" => exponent += 3,
        "M" => exponent += 6,
        "G" => exponent += 9,
        "T" => exponent += 12,
        "P" => exponent += 15,
        "E" => exponent += 18,
        _ => {
            // A decimal exponent: `e3`, `E-2`, `e+6`.
            let power = suffix.strip_prefix(['e', 'E'])?;
            let digits_only = power.strip_prefix(['+', '-']).unwrap_or(power);
            if digits_only.is_empty() || !digits_only.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            exponent = exponent.checked_add(power.parse::<i32>().ok()?)?;
        }
    }
    let value = digits.checked_mul(binary)?;
    let scaled = if exponent >= 0 {
        value.checked_mul(10u128.checked_pow(exponent.unsigned_abs())?)?
    } else {
        match 10u128.checked_pow(exponent.unsigned_abs()) {
            Some(divisor) => value.div_ceil(divisor),
            // Smaller than any representable unit, but not zero: rounds up to one.
            None => u128::from(value > 0),
        }
    };
    u64::try_from(scaled).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::NodeStatus;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    fn check(quantity: &str, scale: i32, expected: Option<u64>) {
        assert_eq!(
            parse_quantity(quantity, scale),
            expected,
            "{quantity} at scale {scale}"
        );
    }

    #[test]
    fn cpu_in_millicores() {
        check("4", 3, Some(4000));
        check("3500m", 3, Some(3500));
        check("0.5", 3, Some(500));
        check(".5", 3, Some(500));
        check("1.", 3, Some(1000));
        check("250000u", 3, Some(250));
        check("1n", 3, Some(1)); // rounded up, like Kubernetes' MilliValue
        check("1e3", 3, Some(1_000_000));
        check("+2", 3, Some(2000));
    }

    #[test]
    fn memory_in_bytes() {
        check("16Gi", 0, Some(17_179_869_184));
        check("1000Mi", 0, Some(1_048_576_000));
        check("128974848", 0, Some(128_974_848));
        check("1e3", 0, Some(1000));
        check("1E3", 0, Some(1000));
        check("2e-1", 0, Some(1));
        check("129M", 0, Some(129_000_000));
        check("1k", 0, Some(1000));
        check("1Ki", 0, Some(1024));
        check("1.5Gi", 0, Some(1_610_612_736));
        check("1E", 0, Some(1_000_000_000_000_000_000));
        check("0", 0, Some(0));
    }

    #[test]
    fn malformed_negative_or_huge_quantities_are_none() {
        for bad in [
            "", "Gi", "1GB", "1.2.3", "-1", "1e", "1e+", "abc", "1 Gi", "e3",
        ] {
            check(bad, 0, None);
        }
        check("100Ei", 0, None);
        check("1e40", 0, None);
    }

    #[test]
    fn nodes_are_summed() {
        let node = |cpu: &str, memory: &str| Node {
            status: Some(NodeStatus {
                allocatable: Some(BTreeMap::from([
                    ("cpu".to_owned(), Quantity(cpu.to_owned())),
                    ("memory".to_owned(), Quantity(memory.to_owned())),
                ])),
                ..NodeStatus::default()
            }),
            ..Node::default()
        };
        let nodes = [node("4", "16Gi"), node("3500m", "1000Mi"), Node::default()];
        assert_eq!(
            NodeTotals::of(&nodes),
            NodeTotals {
                cpu_millis: 7500,
                memory_bytes: 17_179_869_184 + 1_048_576_000,
            }
        );
    }
}
