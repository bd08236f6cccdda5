//! The client's address: the peer, or the last `X-Forwarded-For` hop when the
//! peer is a trusted proxy.

use std::net::IpAddr;

use crate::net::IpNet;

/// The client address of a request from `peer` with these `X-Forwarded-For` values.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer.map(|ip| ip.to_canonical())?;
    if !trusted.iter().any(|net| net.contains(peer)) {
        return Some(peer);
    }
    // The last hop is the one our proxy saw; anything before it is the client's say-so.
    forwarded_for
        .and_then(|v| v.rsplit(',').next())
        .and_then(|hop| hop.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .or(Some(peer))
}

/// [`client_address`] of a poem request.
pub fn of_request(req: &poem::Request, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req
        .remote_addr()
        .as_socket_addr()
        .map(std::net::SocketAddr::ip);
    let xff = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .next_back();
    client_address(peer, xff, trusted)
}

/// Whether the peer of `req` is one of the trusted proxies (whose
/// forwarding headers are believed).
pub fn peer_is_trusted(req: &poem::Request, trusted: &[IpNet]) -> bool {
    req.remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_canonical())
        .is_some_and(|peer| trusted.iter().any(|net| net.contains(peer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_ipv6_entries_mean_their_ipv4_block() {
        let one: IpNet = "::ffff:10.0.0.1".parse().unwrap();
        assert!(one.contains(ip("10.0.0.1")));
        assert!(
            !one.contains(ip("10.0.0.2")),
            "a /128 is one address, not everything"
        );
        assert!(!one.contains(ip("192.168.0.1")));
        let block: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
        assert!(block.contains(ip("10.9.9.9")) && !block.contains(ip("11.0.0.1")));
        assert!("::ffff:10.0.0.0/64".parse::<IpNet>().is_err());
    }

    #[test]
    fn cidr_membership() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nope".parse::<IpNet>().is_err());
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
    }

    #[test]
    fn forwarded_only_from_trusted_peers() {
        let trusted = vec!["127.0.0.1".parse().unwrap()];
        assert_eq!(
            client_address(Some(ip("127.0.0.1")), Some("1.1.1.1, 2.2.2.2"), &trusted),
            Some(ip("2.2.2.2"))
        );
        assert_eq!(
            client_address(Some(ip("9.9.9.9")), Some("2.2.2.2"), &trusted),
            Some(ip("9.9.9.9"))
        );
        assert_eq!(
            client_address(Some(ip("127.0.0.1")), Some("garbage"), &trusted),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            client_address(Some(ip("127.0.0.1")), None, &[]),
            Some(ip("127.0.0.1"))
        );
    }
}
