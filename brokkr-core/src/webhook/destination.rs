//! Where a webhook may be sent: URL rules and the host allowlist.
//!
//! A subscription's URL is `http` or `https` with a host, no user name or password
//! (a secret in a URL ends up in logs) and no fragment (never sent, so always a
//! mistake). Its host must match the [`HostAllowlist`] the operator configured, which
//! is empty by default: nothing is sent until an operator names where deliveries may
//! go. The list is checked when a subscription is written and again before every
//! send, so removing a host stops deliveries to it at once.
//!
//! URLs are parsed by the `url` crate, as the HTTP client parses them, so the host the
//! allowlist judges is the host the client connects to (`HTTP://Hooks.Example.COM.`,
//! `127.1` and `0x7f.0.0.1` are normalised the same way on both sides).

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// The longest URL a subscription may have.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL or an allowlist entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Longer than [`MAX_URL_LEN`].
    #[error("the URL is longer than {MAX_URL_LEN} bytes")]
    TooLong,
    /// Not a URL at all.
    #[error("not a URL: {0}")]
    Unparsable(String),
    /// Neither `http` nor `https`.
    #[error("the URL's scheme is {0:?}; only http and https are allowed")]
    Scheme(String),
    /// No host to send to.
    #[error("the URL has no host")]
    NoHost,
    /// A user name or password in the URL.
    #[error("the URL carries a user name or password; put credentials elsewhere")]
    UserInfo,
    /// A `#fragment`, which is never sent.
    #[error("the URL has a fragment (#...), which is never sent")]
    Fragment,
    /// The host (and port) is not in the allowlist.
    #[error("{0} is not in the webhook host allowlist")]
    NotAllowed(String),
    /// An allowlist entry is not `host`, `*.suffix`, either with `:port`.
    #[error("allowlist entry {entry:?}: {reason}")]
    BadPattern {
        /// The entry as configured.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parses `text` and checks it by the rules of the [module documentation](self),
/// except the allowlist ([`HostAllowlist::check`]).
pub fn validate_url(text: &str) -> Result<Url, UrlError> {
    if text.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    let url = Url::parse(text).map_err(|err| UrlError::Unparsable(err.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(url.scheme().to_owned()));
    }
    if url.host().is_none() {
        return Err(UrlError::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::UserInfo);
    }
    if url.fragment().is_some() {
        return Err(UrlError::Fragment);
    }
    Ok(url)
}

/// One allowlist entry: an exact host or every subdomain of a suffix, on any port or
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// The host as the `url` crate writes it (`[::1]` for IPv6), without a trailing dot.
    Exact(String),
    /// `.suffix`: the names that end with it; never the suffix itself, never an IP.
    Suffix(String),
}

impl HostPattern {
    /// Parses `host`, `host:port`, `*.suffix` or `*.suffix:port`; an IPv6 address in
    /// brackets (`[::1]:8080`). Names are case-insensitive.
    pub fn parse(entry: &str) -> Result<Self, UrlError> {
        let bad = |reason: &str| UrlError::BadPattern {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = entry.trim();
        let (host, port) = split_port(trimmed).ok_or_else(|| bad("the port is not 1-65535"))?;
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(suffix) => (true, suffix),
            None => (false, host),
        };
        if host.is_empty() || host.contains('*') {
            return Err(bad(
                "name a host, or *.suffix for every name under a domain",
            ));
        }
        let parsed = Host::parse(host).map_err(|err| bad(&err.to_string()))?;
        let canonical = canonical(&parsed);
        let host = if wildcard {
            if !matches!(parsed, Host::Domain(_)) {
                return Err(bad("*. takes a domain name, not an IP address"));
            }
            HostMatch::Suffix(format!(".{canonical}"))
        } else {
            HostMatch::Exact(canonical)
        };
        Ok(Self { host, port })
    }

    fn matches(&self, host: &Host<&str>, port: Option<u16>) -> bool {
        if self.port.is_some_and(|wanted| Some(wanted) != port) {
            return false;
        }
        let name = canonical(host);
        match &self.host {
            HostMatch::Exact(exact) => *exact == name,
            // A wildcard never reaches this machine: loopback only when named exactly.
            HostMatch::Suffix(suffix) => {
                matches!(host, Host::Domain(_))
                    && name.ends_with(suffix.as_str())
                    && !is_loopback_name(&name)
            }
        }
    }

    /// Names an internal address (loopback, unspecified, link-local) or `localhost`.
    fn is_internal(&self) -> bool {
        match &self.host {
            HostMatch::Exact(exact) => {
                is_loopback_name(exact)
                    || exact
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .is_ok_and(is_internal_address)
            }
            HostMatch::Suffix(_) => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostMatch::Exact(host) => f.write_str(host)?,
            HostMatch::Suffix(suffix) => write!(f, "*{suffix}")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// The hosts deliveries may go to; empty (nothing allowed) by default. See the
/// [module documentation](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAllowlist {
    patterns: Vec<HostPattern>,
}

impl HostAllowlist {
    /// An allowlist from configuration entries (see [`HostPattern::parse`]).
    pub fn parse<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Result<Self, UrlError> {
        let patterns = entries
            .into_iter()
            .map(|entry| HostPattern::parse(entry.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// Whether nothing at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The entries.
    pub fn patterns(&self) -> &[HostPattern] {
        &self.patterns
    }

    /// `Ok` when `url`'s host and port (the scheme's default when it names none) match
    /// an entry; otherwise [`UrlError::NotAllowed`] naming them.
    pub fn check(&self, url: &Url) -> Result<(), UrlError> {
        let port = url.port_or_known_default();
        match url.host() {
            Some(host) if self.patterns.iter().any(|p| p.matches(&host, port)) => Ok(()),
            Some(host) => Err(UrlError::NotAllowed(match port {
                Some(port) => format!("{}:{port}", canonical(&host)),
                None => canonical(&host),
            })),
            None => Err(UrlError::NoHost),
        }
    }

    /// Whether an address a name resolved to may be connected to. Loopback,
    /// unspecified and link-local addresses (where cloud metadata services answer) are
    /// reached only when an entry names such an address or `localhost` itself: an
    /// allowed name that resolves there (DNS rebinding) is refused otherwise.
    pub fn permits_address(&self, address: IpAddr) -> bool {
        !is_internal_address(address) || self.patterns.iter().any(HostPattern::is_internal)
    }
}

/// Splits `host[:port]`, bracketed IPv6 included; `None` for a port that is not 1-65535.
fn split_port(text: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if text.starts_with('[') {
        match text.find(']') {
            Some(end) if end + 1 < text.len() => {
                let port = text[end + 1..].strip_prefix(':')?;
                (&text[..=end], Some(port))
            }
            _ => (text, None),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    match port {
        None => Some((host, None)),
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .map(|port| (host, Some(port))),
    }
}

/// A host as the `url` crate writes it, without the trailing dot of a fully
/// qualified name.
fn canonical<S: AsRef<str>>(host: &Host<S>) -> String {
    match host {
        Host::Domain(name) => name.as_ref().trim_end_matches('.').to_ascii_lowercase(),
        Host::Ipv4(address) => address.to_string(),
        Host::Ipv6(address) => format!("[{address}]"),
    }
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// Loopback, unspecified or link-local, IPv4-mapped IPv6 included.
fn is_internal_address(address: IpAddr) -> bool {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    };
    match address {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified() || v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests;
