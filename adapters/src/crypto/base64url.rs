//! Base64url without padding (RFC 7515 section 2), strict on decode.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes `bytes` as unpadded base64url.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url; `None` for padding, other alphabets, or
/// non-canonical trailing bits (so one token has exactly one spelling).
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        assert_eq!(encode([0xfb, 0xff]), "-_8");
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert!(decode("-_8=").is_none(), "padding");
        assert!(decode("+/8").is_none(), "standard alphabet");
        assert!(decode("-_9").is_none(), "non-zero trailing bits");
        assert!(decode("a").is_none(), "impossible length");
    }
}
