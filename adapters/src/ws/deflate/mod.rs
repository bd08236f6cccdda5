//! permessage-deflate (RFC 7692), as the contract's "Compression (v2)" asks:
//! negotiated only when the client offers it, always without context
//! takeover in both directions, the message limit applied after inflation.
//!
//! - `negotiate`: the handshake's offer and our answer;
//! - `stream`: the layer under tungstenite that inflates and compresses;
//! - `frames`: its frame-following state, once the extension is on;
//! - `header`: frame headers cut anywhere, and where frames end without it;
//! - `codec`: DEFLATE itself (flate2 on miniz_oxide), one compressor and
//!   one decompressor per thread.
//!
//! tungstenite has no extension support (its upstream pull requests have
//! been open for years, and the forks that carry one are not on crates.io),
//! so the layer works on the bytes: see [`stream`].

pub mod codec;
mod frames;
mod header;
pub(crate) mod stream;

use tungstenite::http::HeaderMap;

pub use self::stream::COMPRESS_FROM;
pub(crate) use self::stream::Deflating;

/// Our answer to an acceptable offer.
pub(crate) const ANSWER: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Why a compressed message ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    /// It inflates (or would, from its compressed size) past the limit: 1009.
    #[error("a compressed message inflates past the size limit")]
    TooBig,
    /// Its DEFLATE data is invalid: 1007.
    #[error("a compressed message is not valid DEFLATE data")]
    Invalid,
    /// Its frames break RFC 7692 §6.1 (RSV1 on a continuation, a new message
    /// inside it): 1002.
    #[error("a compressed message's frames break the protocol")]
    Protocol,
}

impl From<Failure> for std::io::Error {
    fn from(failure: Failure) -> Self {
        Self::new(std::io::ErrorKind::InvalidData, failure)
    }
}

impl Failure {
    /// The failure behind a read error of the stream, if it is one.
    pub(crate) fn of(error: &tungstenite::Error) -> Option<Self> {
        match error {
            tungstenite::Error::Io(e) => e.get_ref()?.downcast_ref::<Self>().copied(),
            _ => None,
        }
    }
}

/// Whether the request's `Sec-WebSocket-Extensions` offers permessage-deflate
/// in a form we accept (then the answer is [`ANSWER`]).
///
/// An offer is accepted when every parameter is one we can honour:
/// `server_no_context_takeover`, `client_no_context_takeover` (we answer
/// both anyway) and `client_max_window_bits` with no value or 8-15 (we
/// inflate with the largest window, which reads any smaller one). An offer
/// with `server_max_window_bits` is declined: our compressor's window is
/// fixed at 15 bits, and accepting it would oblige us to echo the parameter,
/// which the contract's answer does not carry. So is one with an unknown or
/// repeated parameter, or a value where none belongs (RFC 7692 §5.1). The
/// first acceptable offer wins; none means no compression.
pub(crate) fn negotiate(headers: &HeaderMap) -> bool {
    headers
        .get_all("sec-websocket-extensions")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(acceptable)
}

fn acceptable(offer: &str) -> bool {
    let mut parts = offer.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|name| name.eq_ignore_ascii_case("permessage-deflate"))
    {
        return false;
    }
    let mut seen: [bool; 3] = [false; 3];
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim()))),
            None => (param, None),
        };
        let slot = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => 0,
            "client_no_context_takeover" if value.is_none() => 1,
            "client_max_window_bits" if value.is_none_or(window_bits) => 2,
            _ => return false,
        };
        if std::mem::replace(&mut seen[slot], true) {
            return false;
        }
    }
    true
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// RFC 7692 §7.1.2.1: 8 to 15, one or two digits, no leading zero.
fn window_bits(value: &str) -> bool {
    !value.starts_with('0')
        && value.len() <= 2
        && value.parse::<u8>().is_ok_and(|b| (8..=15).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("sec-websocket-extensions", v.parse().unwrap());
        }
        negotiate(&headers)
    }

    #[test]
    fn accepts_what_browsers_and_libraries_offer() {
        // Chromium and Firefox.
        assert!(offers(&["permessage-deflate; client_max_window_bits"]));
        // Python websockets, Node ws.
        assert!(offers(&["permessage-deflate; client_max_window_bits=15"]));
        assert!(offers(&["permessage-deflate"]));
        assert!(offers(&[
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        ]));
        assert!(offers(&[
            "Permessage-Deflate; CLIENT_MAX_WINDOW_BITS=\"10\""
        ]));
    }

    #[test]
    fn declines_what_it_cannot_honour() {
        assert!(!offers(&[]));
        assert!(!offers(&["x-webkit-deflate-frame"]));
        assert!(!offers(&["permessage-deflate; server_max_window_bits=10"]));
        assert!(!offers(&["permessage-deflate; server_max_window_bits=15"]));
        assert!(!offers(&["permessage-deflate; mystery"]));
        assert!(!offers(&["permessage-deflate; client_max_window_bits=7"]));
        assert!(!offers(&["permessage-deflate; client_max_window_bits=16"]));
        assert!(!offers(&["permessage-deflate; client_max_window_bits=09"]));
        assert!(!offers(&[
            "permessage-deflate; server_no_context_takeover=1"
        ]));
        assert!(!offers(&[
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover"
        ]));
    }

    #[test]
    fn takes_the_first_acceptable_of_several_offers() {
        assert!(offers(&[
            "permessage-deflate; server_max_window_bits=10, permessage-deflate"
        ]));
        assert!(offers(&[
            "foo",
            "permessage-deflate; client_max_window_bits"
        ]));
    }
}
