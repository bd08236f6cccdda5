//! DPoP proofs (RFC 9449 section 4): the JWS of a `DPoP` header, its JOSE
//! header and its key, checked by hand like access tokens (`crypto::jwt`).
//!
//! Only the cryptography and the shape are decided here: the key is always
//! the header's `jwk` (a `kid` is never looked up), the algorithm must suit
//! that key, and the signature must be that key's. The claims come out
//! unjudged, with the key's RFC 7638 thumbprint, for `domain::dpop` to hold
//! against the request, the clock, the access token and the replay cache.

use domain::Algorithm;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::error::Category;

use super::base64url;
use super::jws_keys::{JwkRefused, PublicJwk};

/// The longest proof read (bytes of the header value).
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// The `typ` of a proof (RFC 9449 section 4.2), compared exactly.
const TYP: &str = "dpop+jwt";

/// The longest `jti` accepted, in characters: enough for any random id,
/// short enough that the replay cache holds little per entry.
const MAX_JTI_CHARS: usize = 256;

/// A proof whose header, key and signature are good, with its claims as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The RFC 7638 thumbprint (base64url SHA-256) of the header's `jwk`.
    pub jkt: String,
    /// The proof's unique id, 1 to 256 characters.
    pub jti: String,
    /// The HTTP method it claims to be for.
    pub htm: String,
    /// The URL it claims to be for.
    pub htu: String,
    /// When it claims to have been made, Unix seconds.
    pub iat: i64,
    /// The base64url SHA-256 of the access token it claims to come with.
    pub ath: Option<String>,
}

/// Why a proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofRefused {
    /// Not three base64url parts, a header or claims that are not a JSON
    /// object, or a header with `crit` (no extension is understood).
    #[error("the proof is not a compact JWS with a JSON header and claims")]
    Malformed,
    /// Longer than [`MAX_PROOF_BYTES`].
    #[error("the proof is longer than {MAX_PROOF_BYTES} bytes")]
    TooLarge,
    /// `typ` is missing or not exactly `dpop+jwt`.
    #[error("the proof's typ is not dpop+jwt")]
    Type,
    /// `alg` is missing or not one of ES256, EdDSA, PS256, RS256.
    #[error("the proof's alg is not ES256, EdDSA, PS256 or RS256")]
    Algorithm,
    /// No `jwk`, or one that is not a valid public key of `alg`'s type.
    #[error("the proof's jwk is not a valid public key for its alg")]
    Key,
    /// The `jwk` holds private key members.
    #[error("the proof's jwk holds private key members")]
    PrivateKeyMembers,
    /// The `jwk` is an RSA key under 2048 bits or a small-order Ed25519 key.
    #[error("the proof's key is too weak")]
    WeakKey,
    /// The signature is not the `jwk`'s.
    #[error("the proof's signature is not its key's")]
    Signature,
    /// `jti`, `htm`, `htu` or `iat` missing or of the wrong type, `ath` not
    /// a string, or a `jti` empty or over 256 characters.
    #[error("the proof's claims are missing or of the wrong type")]
    Claims,
}

impl ProofRefused {
    /// A short stable snake_case reason, for the audit trail and metrics.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::Type => "bad_typ",
            Self::Algorithm => "bad_alg",
            Self::Key => "bad_key",
            Self::PrivateKeyMembers => "private_key",
            Self::WeakKey => "weak_key",
            Self::Signature => "bad_signature",
            Self::Claims => "bad_claims",
        }
    }
}

impl From<JwkRefused> for ProofRefused {
    fn from(refused: JwkRefused) -> Self {
        match refused {
            JwkRefused::PrivateMembers => Self::PrivateKeyMembers,
            JwkRefused::Weak => Self::WeakKey,
            JwkRefused::Malformed | JwkRefused::KeyType | JwkRefused::Invalid => Self::Key,
        }
    }
}

/// The JOSE header members looked at, each read as any JSON so that a wrong
/// type is refused as that member's fault. Other members (`kid` among them)
/// are ignored; a known one given twice is malformed.
#[derive(Deserialize)]
struct Header {
    typ: Option<Value>,
    alg: Option<Value>,
    jwk: Option<Value>,
    crit: Option<IgnoredAny>,
}

/// The claims, all required but `ath`; others are ignored.
#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default, deserialize_with = "present_string")]
    ath: Option<String>,
}

/// `ath`, when present, is a string: `null` is not an absent hash.
fn present_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// Reads a JSON object into `T`, or says why not: `Data` for JSON of the
/// wrong shape, another category for text that is not JSON. serde would
/// also fill a struct from an array, which no header or claims set is.
fn parse_object<T: DeserializeOwned>(json: &[u8]) -> Result<T, Category> {
    let first = json.iter().find(|b| !b" \t\n\r".contains(b));
    if first != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(json) {
            Ok(_) => Category::Data,
            Err(e) => e.classify(),
        });
    }
    serde_json::from_slice(json).map_err(|e| e.classify())
}

/// Verifies a compact JWS DPoP proof (RFC 9449 section 4.3, steps on the
/// JWS itself): three base64url parts; a header with `typ` `dpop+jwt`, an
/// `alg` of ES256, EdDSA, PS256 or RS256, and a public `jwk` of that
/// algorithm's key type (RSA of at least 2048 bits); the signature by that
/// `jwk`; claims with a string `jti` (1 to 256 characters), `htm` and
/// `htu`, an integer `iat` and an optional string `ath`.
///
/// The claims are returned as sent: whether they fit the request, the
/// clock and the token is `domain::dpop`'s decision.
///
/// # Errors
/// See [`ProofRefused`].
pub fn verify_proof(compact: &str) -> Result<VerifiedProof, ProofRefused> {
    // Before anything else: nothing decodes or hashes an attacker's megabytes.
    if compact.len() > MAX_PROOF_BYTES {
        return Err(ProofRefused::TooLarge);
    }
    let mut parts = compact.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofRefused::Malformed);
    };
    let header = base64url::decode(header_b64).ok_or(ProofRefused::Malformed)?;
    let payload = base64url::decode(payload_b64).ok_or(ProofRefused::Malformed)?;
    let signature = base64url::decode(signature_b64).ok_or(ProofRefused::Malformed)?;

    let header: Header = parse_object(&header).map_err(|_| ProofRefused::Malformed)?;
    if header.crit.is_some() {
        return Err(ProofRefused::Malformed);
    }
    if header.typ.as_ref().and_then(Value::as_str) != Some(TYP) {
        return Err(ProofRefused::Type);
    }
    // `none`, `HS256` and every other name stop here.
    let alg = header
        .alg
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|name| Algorithm::parse(name).ok())
        .ok_or(ProofRefused::Algorithm)?;
    // The key is the one the proof carries, read as a key of `alg` only.
    let key = PublicJwk::from_jwk(alg, header.jwk.as_ref().ok_or(ProofRefused::Key)?)?;
    // The signing input is the two parts exactly as received.
    let signing_input = &compact[..header_b64.len() + 1 + payload_b64.len()];
    if !key.verifies(signing_input.as_bytes(), &signature) {
        return Err(ProofRefused::Signature);
    }

    // Signed by its key: the claims can be read now.
    let claims: Claims = parse_object(&payload).map_err(|category| match category {
        Category::Data => ProofRefused::Claims,
        Category::Io | Category::Syntax | Category::Eof => ProofRefused::Malformed,
    })?;
    if !(1..=MAX_JTI_CHARS).contains(&claims.jti.chars().count()) {
        return Err(ProofRefused::Claims);
    }
    Ok(VerifiedProof {
        jkt: key.kid().to_owned(),
        jti: claims.jti,
        htm: claims.htm,
        htu: claims.htu,
        iat: claims.iat,
        ath: claims.ath,
    })
}

#[cfg(test)]
mod tests;
