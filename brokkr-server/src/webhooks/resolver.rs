//! Name resolution that keeps the allowlist's promise: a listed name that resolves to
//! this machine or a link-local address (DNS rebinding, a cloud metadata service) is
//! not connected to unless the allowlist names such an address itself.

use std::net::SocketAddr;

use brokkr_core::webhook::HostAllowlist;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Resolves with the system's resolver, then drops the addresses the allowlist does
/// not permit ([`HostAllowlist::permits_address`]); no address left is an error.
pub(super) struct AllowlistResolver {
    pub(super) allowlist: HostAllowlist,
}

impl Resolve for AllowlistResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowlist = self.allowlist.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port on each address.
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|address| allowlist.permits_address(address.ip()))
                .collect();
            if resolved.is_empty() {
                return Err(format!("{host} resolves to no address").into());
            }
            if permitted.is_empty() {
                let shown: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
                return Err(format!(
                    "{host} resolves to {}, which webhooks may not reach unless the allowlist names such an address",
                    shown.join(", ")
                )
                .into());
            }
            let addrs: Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    async fn resolve(allowed: &[&str], name: &str) -> Result<Vec<SocketAddr>, String> {
        let resolver = AllowlistResolver {
            allowlist: HostAllowlist::parse(allowed).unwrap(),
        };
        match resolver.resolve(Name::from_str(name).unwrap()).await {
            Ok(addrs) => Ok(addrs.collect()),
            Err(err) => Err(err.to_string()),
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_unless_loopback_is_listed() {
        // As if `hooks.example.com` had been pointed at 127.0.0.1: `localhost` is the
        // one name sure to resolve there.
        let err = resolve(&["hooks.example.com"], "localhost")
            .await
            .unwrap_err();
        assert!(
            err.starts_with("localhost resolves to ") && err.contains("127.0.0.1"),
            "{err}"
        );
        let addrs = resolve(&["hooks.example.com", "localhost:9000"], "localhost")
            .await
            .unwrap();
        assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
