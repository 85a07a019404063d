//! The client's address: the TCP peer, or — when the peer is one of the configured trusted
//! reverse proxies (`SAMGATE_TRUSTED_PROXIES`) — the right-most untrusted hop of
//! `X-Forwarded-For`. Addresses a client writes itself are never believed.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The address to attribute a request to.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    // Walk from the proxy nearest to us outwards; the first hop we do not trust is the client.
    hops.iter()
        .rev()
        .find(|hop| !is_trusted(hop))
        .copied()
        .or_else(|| hops.first().copied())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", xff.parse().expect("header"));
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let peer: IpAddr = "203.0.113.7".parse().expect("ip");
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        assert_eq!(client_ip(peer, &headers("198.51.100.1"), &trusted), peer);
        assert_eq!(client_ip(peer, &headers("198.51.100.1"), &[]), peer);
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let proxy: IpAddr = "10.0.0.5".parse().expect("ip");
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        // The client forged a first hop; the proxy appended the real one.
        let forwarded = headers("1.2.3.4, 198.51.100.9, 10.0.0.9");
        assert_eq!(
            client_ip(proxy, &forwarded, &trusted),
            "198.51.100.9".parse::<IpAddr>().expect("ip")
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }
}
