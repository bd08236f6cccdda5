//! The `mfaToken`: what a right password hands out when the login still
//! needs its second factor.

use domain::TokenHash;

use crate::RefreshSecret;
use crate::ports::RandomSource;

/// An `mfaToken` in plaintext: 256 random bits, base64url, handed to the
/// client once and stored only as a hash bound to the client.
///
/// It has the refresh token's form but is its own type, so that one can
/// never be passed where the other is meant. `Debug` is redacted.
pub struct MfaToken(RefreshSecret);

impl std::fmt::Debug for MfaToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaToken([redacted])")
    }
}

impl MfaToken {
    /// A new token from the CSPRNG.
    pub fn generate(random: &dyn RandomSource) -> Self {
        Self(RefreshSecret::generate(random))
    }

    /// Reads a token a client presented; `None` unless it is exactly the
    /// base64url form of 32 bytes.
    pub fn parse(presented: &str) -> Option<Self> {
        RefreshSecret::parse(presented).map(Self)
    }

    /// The plaintext, for the `403 mfa_required` body.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// SHA-256 of the token (the stored form also binds the client).
    pub fn hash(&self) -> TokenHash {
        self.0.hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl RandomSource for Fixed {
        fn fill(&self, buf: &mut [u8]) {
            buf.fill(7);
        }
    }

    #[test]
    fn round_trips_and_is_redacted() {
        let t = MfaToken::generate(&Fixed);
        let back = MfaToken::parse(t.expose()).expect("parses");
        assert_eq!(back.hash(), t.hash());
        assert!(MfaToken::parse("short").is_none());
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
