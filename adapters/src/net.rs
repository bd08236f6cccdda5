//! Network vocabulary shared by the REST and WebSocket edges: address
//! blocks (`TRUSTED_PROXIES`) and the request id.

use std::net::IpAddr;
use std::str::FromStr;

/// The request-id header.
pub const REQUEST_ID: &str = "x-request-id";

/// The `X-Request-Id` among `headers` when it is sane (1–128 characters of
/// `[A-Za-z0-9-_.:]`, the rule Nginx applies too), or a fresh UUID.
/// Both edges use it (the WebSocket handshake answers it too).
pub fn request_id_of(headers: &poem::http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// An address or a CIDR block (`10.0.0.0/8`, `::1`, `192.168.1.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a `TRUSTED_PROXIES` entry is not an address or CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR block: {0:?}")]
pub struct IpNetError(String);

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let err = || IpNetError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a.parse::<IpAddr>().map_err(|_| err())?,
                Some(p.parse::<u8>().map_err(|_| err())?),
            ),
            None => (s.parse::<IpAddr>().map_err(|_| err())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(err());
        }
        // An IPv4-mapped IPv6 block is stored as the IPv4 block it means, so
        // that `contains` compares like with like (a /128 of a mapped address
        // must not become a 32-bit shift by a negative amount).
        match addr {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                match (v6.to_ipv4_mapped(), prefix.checked_sub(96)) {
                    (Some(v4), Some(prefix)) => Ok(Self {
                        addr: IpAddr::V4(v4),
                        prefix,
                    }),
                    _ => Err(err()),
                }
            }
            _ => Ok(Self { addr, prefix }),
        }
    }
}

impl IpNet {
    /// Whether `ip` lies in this block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}
