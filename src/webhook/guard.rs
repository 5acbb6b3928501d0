//! Transport safety: the https/loopback rule and the optional SSRF guard that
//! refuses private, loopback, link-local and metadata addresses after DNS
//! resolution.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// An allow-list entry [`SsrfGuard::allow`] cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// Neither an IP address nor a CIDR range.
    #[error("{0:?} is not an IP address or CIDR range")]
    NotARange(String),
    /// A prefix length past the address's bits.
    #[error("{range:?} has a bad prefix length (0..={max})")]
    BadPrefix {
        /// The entry as given.
        range: String,
        /// The longest prefix for its address family.
        max: u8,
    },
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Whether an address is one a webhook should not reach unless allowed:
/// unspecified, loopback, private, link-local (cloud metadata lives at
/// 169.254.169.254), CGNAT, benchmarking, multicast, broadcast, reserved,
/// unique-local and site-local IPv6, NAT64, documentation ranges, and IPv6
/// addresses that carry an internal IPv4 address inside them (IPv4-mapped,
/// IPv4-compatible, 6to4 `2002::/16`, Teredo `2001::/32`).
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => is_internal_v4(a),
        IpAddr::V6(a) => {
            let s = a.segments();
            let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (s[0] & 0xFE00) == 0xFC00 // fc00::/7 ULA
                || (s[0] & 0xFFC0) == 0xFE80 // fe80::/10 link-local
                || (s[0] & 0xFFC0) == 0xFEC0 // fec0::/10 site-local
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 may reach internal v4
                || (s[0] == 0x2001 && s[1] == 0x0db8) // 2001:db8::/32 documentation
                // ::a.b.c.d (deprecated IPv4-compatible)
                || (s[..6].iter().all(|&x| x == 0) && is_internal_v4(embedded(s[6], s[7])))
                // ::ffff:0:a.b.c.d (IPv4-translated)
                || (s[..4].iter().all(|&x| x == 0)
                    && s[4] == 0xffff
                    && s[5] == 0
                    && is_internal_v4(embedded(s[6], s[7])))
                // 6to4: 2002:AABB:CCDD::/48 routes to a.b.c.d
                || (s[0] == 0x2002 && is_internal_v4(embedded(s[1], s[2])))
                // Teredo: the server's v4 in bits 32..64, the client's
                // (inverted) in the last 32 bits
                || (s[0] == 0x2001
                    && s[1] == 0
                    && (is_internal_v4(embedded(s[2], s[3]))
                        || is_internal_v4(embedded(!s[6], !s[7]))))
        }
    }
}

fn is_internal_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    a.is_unspecified()
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_broadcast()
        || a.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xC0) == 64) // 100.64.0.0/10 CGNAT
        || (o[0] == 198 && (o[1] & 0xFE) == 18) // 198.18.0.0/15
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24
        || o[0] >= 240
}

/// Whether the host of a URL is a loopback name or address.
pub(crate) fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        url::Host::Ipv4(a) => a.is_loopback(),
        url::Host::Ipv6(a) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v| v.is_loopback())
        }
    }
}

/// The SSRF guard: refuses internal addresses (see [`is_internal`]) unless an
/// allow-list range contains them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsrfGuard {
    allow: Vec<IpNet>,
}

/// A range (`10.0.0.0/8`, `fd00::/8`) or a single address.
fn parse_range(s: &str) -> Result<IpNet, GuardError> {
    let (ip, prefix) = s.split_once('/').map_or((s, None), |(ip, p)| (ip, Some(p)));
    let ip: IpAddr = (ip.trim().parse()).map_err(|_| GuardError::NotARange(s.to_owned()))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bad = || GuardError::BadPrefix {
        range: s.to_owned(),
        max,
    };
    let prefix = match prefix {
        Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
        None => max,
    };
    IpNet::new(ip, prefix).map_err(|_| bad())
}

impl SsrfGuard {
    /// A guard with an empty allow-list.
    pub fn new() -> SsrfGuard {
        SsrfGuard::default()
    }
    /// Allows a range (`10.1.0.0/16`) or address even though it is internal.
    pub fn allow(mut self, range: &str) -> Result<SsrfGuard, GuardError> {
        self.allow.push(parse_range(range)?);
        Ok(self)
    }
    /// Whether the guard lets `ip` through.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allow.iter().any(|r| r.contains(&canonical(ip)))
    }
}

/// A DNS resolver for reqwest that drops the addresses the guard refuses, so
/// the check happens after resolution, on the addresses actually connected to.
pub(crate) struct GuardedResolver {
    pub(crate) guard: Arc<SsrfGuard>,
    /// Hosts resolved without the check: the configured proxies (the
    /// operator's choice; the target is checked before each request).
    pub(crate) exempt: Vec<String>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        let exempt = self.exempt.iter().any(|h| h.eq_ignore_ascii_case(&host));
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if exempt {
                let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
                return Ok(it);
            }
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| guard.permits(a.ip()))
                .collect();
            if allowed.is_empty() {
                let msg = format!(
                    "SSRF guard: {host} resolves only to internal addresses ({}); add them to the allow-list to permit",
                    addrs
                        .iter()
                        .map(|a| a.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Err(msg.into());
            }
            let it: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(it)
        })
    }
}

/// The URL without path, query or user info: safe to log.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let path = if u.path().len() > 1 { "/…" } else { "" };
            format!("{}://{host}{port}{path}", u.scheme())
        }
        Err(_) => "<invalid url>".into(),
    }
}
