//! Access tokens: signing (costly: implementations run off the async threads)
//! and verification.

use async_trait::async_trait;
use domain::{AccessClaims, Timestamp};

/// Signs access tokens.
#[async_trait]
pub trait AccessTokenSigner: Send + Sync + 'static {
    /// Encodes and signs `claims` as a compact JWS.
    ///
    /// # Errors
    /// The signer failed.
    async fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String>;
}

/// Why an access token was refused. The edge shows only `invalid_token`;
/// the variant is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// Longer than the 8 KiB limit.
    #[error("token too large")]
    Oversized,
    /// `alg` not one of ours, or not the algorithm of the key its `kid` names.
    #[error("algorithm not accepted")]
    Algorithm,
    /// `typ` other than `at+jwt`.
    #[error("wrong token type")]
    Type,
    /// Missing `kid`, or not a known key.
    #[error("unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// A required claim is missing or of the wrong type.
    #[error("missing or malformed claim")]
    Claims,
    /// `iss` is not ours.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` is not ours.
    #[error("wrong audience")]
    Audience,
    /// Past `exp` (plus leeway).
    #[error("token expired")]
    Expired,
    /// Before `nbf` (minus leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// The token's session was revoked.
    #[error("session revoked")]
    Revoked,
    /// `exp - iat` is longer than `ACCESS_TOKEN_EXPIRY` plus the leeway
    /// ([`domain::claims::lifetime_allowed`]).
    #[error("token lifetime too long")]
    Lifetime,
    /// A DPoP-bound token (`cnf.jkt`) where its proof cannot be checked:
    /// WebSocket sockets take only unbound tokens until DPoP reaches them.
    #[error("a DPoP-bound token needs its proof")]
    ProofNeeded,
}

/// A verifying key as the JWKS publishes it (RFC 7517), public members only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    /// Key id: the `kid` of the tokens it verifies.
    pub kid: String,
    /// Algorithm: `RS256`, `PS256`, `ES256` or `EdDSA`.
    pub alg: &'static str,
    /// The key type's public members.
    pub params: KeyParams,
}

impl PublishedKey {
    /// The JWK `kty`: `RSA`, `EC` or `OKP`.
    pub fn kty(&self) -> &'static str {
        match self.params {
            KeyParams::Rsa { .. } => "RSA",
            KeyParams::Ec { .. } => "EC",
            KeyParams::Okp { .. } => "OKP",
        }
    }
}

/// The public members of a JWK by key type, every value base64url
/// (unpadded, big-endian).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyParams {
    /// RFC 7518 section 6.3: modulus `n` (no leading zeros) and exponent `e`.
    Rsa {
        /// Modulus.
        n: String,
        /// Public exponent.
        e: String,
    },
    /// RFC 7518 section 6.2: curve `P-256` and the point's coordinates.
    Ec {
        /// `P-256`.
        crv: &'static str,
        /// x coordinate, 32 bytes.
        x: String,
        /// y coordinate, 32 bytes.
        y: String,
    },
    /// RFC 8037 section 2: curve `Ed25519` and the public key.
    Okp {
        /// `Ed25519`.
        crv: &'static str,
        /// The public key, 32 bytes.
        x: String,
    },
}

impl From<domain::TimeRefusal> for InvalidToken {
    fn from(refusal: domain::TimeRefusal) -> Self {
        match refusal {
            domain::TimeRefusal::Expired => Self::Expired,
            domain::TimeRefusal::NotYetValid => Self::NotYetValid,
        }
    }
}

/// Verifies access tokens. Cheap enough (well under a millisecond) to run inline.
pub trait AccessTokenVerifier: Send + Sync + 'static {
    /// The keys it verifies with, for the JWKS.
    fn published_keys(&self) -> Vec<PublishedKey>;

    /// A number that changes whenever the keys it accepts change, so that
    /// claims verified under an earlier set are not trusted from a cache.
    fn key_set_version(&self) -> u64 {
        0
    }

    /// The `kid` in `token`'s header, read without any check (for a holder
    /// of verified claims that must later ask [`Self::accepts_key`]).
    fn kid_of(&self, token: &str) -> Option<String>;

    /// Whether tokens signed by key `kid` still verify.
    fn accepts_key(&self, kid: &str) -> bool;

    /// Checks format, algorithm, key, signature, `typ`, `iss`, `aud`, and
    /// `exp`/`nbf` against `now` with `leeway_secs` of clock leeway.
    ///
    /// # Errors
    /// [`InvalidToken`] naming the first check that failed.
    fn verify(
        &self,
        token: &str,
        now: Timestamp,
        leeway_secs: i64,
    ) -> Result<AccessClaims, InvalidToken>;
}
