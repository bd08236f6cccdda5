//! TOTP codes as an authenticator app computes them, from the base32
//! secret an enrolment shows (RFC 6238 through the adapter's HOTP).

/// RFC 4648 base32 (upper or lower case, padding ignored) to bytes.
///
/// # Panics
/// On a character outside the alphabet.
pub fn decode_base32(text: &str) -> Vec<u8> {
    let upper = text.trim_end_matches('=').to_ascii_uppercase();
    data_encoding::BASE32_NOPAD
        .decode(upper.as_bytes())
        .unwrap_or_else(|e| panic!("not base32: {e}"))
}

/// The code of the base32 `secret` at Unix time `unix_seconds`.
pub fn code_at(secret: &str, unix_seconds: i64) -> String {
    let step = u64::try_from(unix_seconds / domain::totp::STEP_SECONDS).expect("after 1970");
    adapters::crypto::totp::code(&decode_base32(secret), step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_rfc_4648_vectors_and_the_rfc_6238_seed() {
        assert_eq!(decode_base32("MZXW6YTBOI======"), b"foobar");
        assert_eq!(decode_base32("mzxw6ytboi"), b"foobar");
        // RFC 6238 Appendix B, SHA-1, T = 59: 94287082 (8 digits); 6 digits: 287082.
        let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // "12345678901234567890"
        assert_eq!(code_at(seed, 59), "287082");
    }
}
