//! SSRF guard for webhook URLs, applied at send time after DNS resolution: the addresses checked
//! are the addresses connected to (the guard is the HTTP client's resolver), so a name that
//! resolves somewhere harmless at registration and to 127.0.0.1 later is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether webhooks may reach internal addresses (`SAMGATE_WEBHOOKS_ALLOW_PRIVATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPolicy {
    /// Only public unicast addresses (the default).
    PublicOnly,
    /// Anything (development, tests, receivers on the same private network by choice).
    AllowPrivate,
}

/// A refused address.
#[derive(Debug, thiserror::Error)]
#[error(
    "webhook URL resolves to an internal address ({0}); set SAMGATE_WEBHOOKS_ALLOW_PRIVATE=true to allow it"
)]
pub struct Refused(pub IpAddr);

/// Whether `ip` is loopback, link-local, private, unique-local, shared (CGNAT), unspecified,
/// broadcast, multicast or documentation space, looking through IPv4-mapped IPv6 addresses.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_internal(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_internal(v4),
            None => v6_internal(v6),
        },
    }
}

fn v4_internal(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT (cloud metadata services live in such ranges too).
        || (a == 100 && (64..128).contains(&b))
        // 198.18.0.0/15, benchmarking.
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn v6_internal(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, fec0::/10 site-local (deprecated).
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // 2001:db8::/32 documentation.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // 64:ff9b::/96 NAT64 can embed an internal IPv4 address.
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)
}

/// Checks an address against the policy.
pub fn check(ip: IpAddr, policy: AddressPolicy) -> Result<(), Refused> {
    if policy == AddressPolicy::PublicOnly && is_internal(ip) {
        Err(Refused(ip))
    } else {
        Ok(())
    }
}

/// The webhook client's DNS resolver: resolves, then refuses the name if any address is internal.
#[derive(Debug)]
pub struct GuardedResolver {
    /// The policy.
    pub policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            for addr in &addrs {
                check(addr.ip(), policy)?;
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The guard's refusal inside an error chain, if that is why a request failed.
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = internal.parse().expect("ip");
            assert!(is_internal(ip), "{internal}");
            assert!(check(ip, AddressPolicy::PublicOnly).is_err(), "{internal}");
            assert!(check(ip, AddressPolicy::AllowPrivate).is_ok(), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = public.parse().expect("ip");
            assert!(!is_internal(ip), "{public}");
        }
    }
}
