//! Network vocabulary shared by the REST and WebSocket edges: address
//! blocks (`TRUSTED_PROXIES`), the request id and the bearer credential.

use std::net::IpAddr;
use std::str::FromStr;

pub(crate) mod address_cap;

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

/// The token of an `Authorization: Bearer <token>` value (scheme in any
/// case, surrounding spaces ignored), if there is one. Both edges read the
/// header through it.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// An address or a CIDR block (`10.0.0.0/8`, `::1`, `192.168.1.7`): an
/// [`ipnet::IpNet`], a bare address being a one-address block, and an
/// IPv4-mapped IPv6 block stored as the IPv4 block it means (so that
/// `::ffff:10.0.0.0/104` and `10.0.0.0/8` are the same block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet(ipnet::IpNet);

/// Why a `TRUSTED_PROXIES` entry is not an address or CIDR (without the
/// entry: a configuration error never repeats the value it refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR block (like 10.0.0.0/8)")]
pub struct IpNetError;

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let net = if s.contains('/') {
            s.parse::<ipnet::IpNet>().map_err(|_| IpNetError)?
        } else {
            ipnet::IpNet::from(s.parse::<IpAddr>().map_err(|_| IpNetError)?)
        };
        match net {
            ipnet::IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
                Some(v4) => {
                    let prefix = v6.prefix_len().checked_sub(96).ok_or(IpNetError)?;
                    let v4 = ipnet::Ipv4Net::new(v4, prefix).map_err(|_| IpNetError)?;
                    Ok(Self(ipnet::IpNet::V4(v4)))
                }
                None => Ok(Self(net)),
            },
            ipnet::IpNet::V4(_) => Ok(Self(net)),
        }
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl IpNet {
    /// Whether `ip` lies in this block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}
