//! The keys of the key set in the four JWS algorithms (`JWT_ALG`): making
//! them, PKCS#8 and SPKI in and out, their JWK members and RFC 7638 key ids,
//! and the signature each makes (RFC 7518 section 3, RFC 8037 section 3.1).
//!
//! - RS256: RSASSA-PKCS1-v1_5 with SHA-256, on `rsa`.
//! - PS256: RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt
//!   (RFC 7518 section 3.5), on `rsa`.
//! - ES256: ECDSA on P-256 with SHA-256, deterministic nonces (RFC 6979),
//!   the signature as `r || s` in 64 bytes (RFC 7518 section 3.4), on `p256`.
//! - EdDSA: Ed25519 (RFC 8037), verified strictly (no small-order keys, no
//!   non-canonical signatures), on `ed25519-dalek`.
//!
//! A key knows its algorithm: a key pair signs only with it and a public key
//! verifies only its signatures, so a token can never be checked with the
//! algorithm its header asks for rather than the one its key was made for.

use std::fmt;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use application::ports::{KeyParams, PublishedKey};
use domain::Algorithm;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
};
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Verifier as _};
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::base64url;
use super::keys::{MIN_KEY_BITS, PrivateKey, PublicKey};
use super::os_rng::OsRng;

/// A private key of the key set and the algorithm it signs with.
///
/// Cheap to clone (the key is shared); `Debug` shows only the algorithm and kid.
#[derive(Clone)]
pub struct KeyPair {
    secret: Arc<Secret>,
    public: PublicJwk,
}

enum Secret {
    Rs256(PrivateKey, rsa::pkcs1v15::SigningKey<Sha256>),
    Ps256(PrivateKey, rsa::pss::SigningKey<Sha256>),
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

impl KeyPair {
    /// An RSA key for RS256 or PS256.
    ///
    /// # Errors
    /// `alg` is not an RSA algorithm.
    pub fn rsa(alg: Algorithm, key: PrivateKey) -> anyhow::Result<Self> {
        let secret = match alg {
            Algorithm::Rs256 => return Ok(Self::from(key)),
            // The salt is as long as the hash, as RFC 7518 section 3.5 asks.
            Algorithm::Ps256 => {
                Secret::Ps256(key.clone(), rsa::pss::SigningKey::new(key.rsa().clone()))
            }
            Algorithm::Es256 | Algorithm::EdDsa => bail!("{alg} keys are not RSA keys"),
        };
        Ok(Self::from_secret(secret))
    }

    /// A new key for `alg`; RSA keys have `rsa_bits` bits. Slow for RSA
    /// (seconds for 4096 bits): call it from a blocking context.
    ///
    /// # Errors
    /// `rsa_bits` too small, or the OS RNG failed.
    pub fn generate(alg: Algorithm, rsa_bits: usize) -> anyhow::Result<Self> {
        let secret = match alg {
            Algorithm::Rs256 | Algorithm::Ps256 => {
                return Self::rsa(alg, PrivateKey::generate(rsa_bits)?);
            }
            Algorithm::Es256 => loop {
                // A uniformly random scalar: 32 random bytes, redrawn in the
                // (about 2^-32) case that they are zero or not below the order.
                let bytes = random_32()?;
                if let Ok(key) = p256::ecdsa::SigningKey::from_slice(bytes.as_slice()) {
                    break Secret::Es256(key);
                }
            },
            Algorithm::EdDsa => {
                Secret::EdDsa(ed25519_dalek::SigningKey::from_bytes(&*random_32()?))
            }
        };
        Ok(Self::from_secret(secret))
    }

    /// Reads PKCS#8 DER (as [`Self::to_pkcs8_der`] wrote it) of a key for `alg`.
    ///
    /// # Errors
    /// Not PKCS#8, or not a valid key of `alg`'s type.
    pub fn from_pkcs8_der(alg: Algorithm, der: &[u8]) -> anyhow::Result<Self> {
        let secret = match alg {
            Algorithm::Rs256 | Algorithm::Ps256 => {
                return Self::rsa(alg, PrivateKey::from_pkcs8_der(der)?);
            }
            Algorithm::Es256 => Secret::Es256(
                p256::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map_err(|e| anyhow::anyhow!("invalid PKCS#8 P-256 private key: {e}"))?,
            ),
            Algorithm::EdDsa => Secret::EdDsa(
                ed25519_dalek::SigningKey::from_pkcs8_der(der)
                    .map_err(|e| anyhow::anyhow!("invalid PKCS#8 Ed25519 private key: {e}"))?,
            ),
        };
        Ok(Self::from_secret(secret))
    }

    fn from_secret(secret: Secret) -> Self {
        let public = match &secret {
            Secret::Rs256(key, _) => PublicJwk::rsa(false, key.public_key()),
            Secret::Ps256(key, _) => PublicJwk::rsa(true, key.public_key()),
            Secret::Es256(key) => PublicJwk::es256(*key.verifying_key()),
            Secret::EdDsa(key) => PublicJwk::ed25519(key.verifying_key()),
        };
        Self {
            secret: Arc::new(secret),
            public,
        }
    }

    /// The key as PKCS#8 DER, for sealing (`crypto::key_seal`).
    ///
    /// # Errors
    /// The encoder failed.
    pub fn to_pkcs8_der(&self) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let der = match &*self.secret {
            Secret::Rs256(key, _) | Secret::Ps256(key, _) => return key.to_pkcs8_der(),
            Secret::Es256(key) => key.to_pkcs8_der(),
            Secret::EdDsa(key) => key.to_pkcs8_der(),
        }
        .map_err(|e| anyhow::anyhow!("PKCS#8 encoding failed: {e}"))?;
        Ok(Zeroizing::new(der.as_bytes().to_vec()))
    }

    /// The algorithm it signs with.
    pub fn alg(&self) -> Algorithm {
        self.public.alg
    }

    /// The key id of the public half.
    pub fn kid(&self) -> &str {
        self.public.kid()
    }

    /// The public half.
    pub fn public(&self) -> &PublicJwk {
        &self.public
    }

    /// Whether a signature takes milliseconds (RSA) rather than microseconds,
    /// so that it belongs off the async threads.
    pub fn is_slow(&self) -> bool {
        matches!(self.alg(), Algorithm::Rs256 | Algorithm::Ps256)
    }

    /// The JWS signature of `signing_input` in this key's algorithm.
    ///
    /// # Errors
    /// The OS RNG failed (RSA blinding and the PSS salt draw from it).
    pub fn sign(&self, signing_input: &[u8]) -> anyhow::Result<Vec<u8>> {
        Ok(match &*self.secret {
            // The RNG blinds the private-key operation against timing side channels.
            Secret::Rs256(_, key) => key
                .try_sign_with_rng(&mut OsRng, signing_input)
                .map_err(|e| anyhow::anyhow!("RS256 signing failed: {e}"))?
                .to_vec(),
            Secret::Ps256(_, key) => key
                .try_sign_with_rng(&mut OsRng, signing_input)
                .map_err(|e| anyhow::anyhow!("PS256 signing failed: {e}"))?
                .to_vec(),
            Secret::Es256(key) => {
                let signature: p256::ecdsa::Signature =
                    p256::ecdsa::signature::Signer::try_sign(key, signing_input)
                        .map_err(|e| anyhow::anyhow!("ES256 signing failed: {e}"))?;
                signature.to_bytes().to_vec()
            }
            Secret::EdDsa(key) => ed25519_dalek::Signer::sign(key, signing_input)
                .to_bytes()
                .to_vec(),
        })
    }
}

impl From<PrivateKey> for KeyPair {
    /// An RS256 key: the service's algorithm before `JWT_ALG`.
    fn from(key: PrivateKey) -> Self {
        Self::from_secret(Secret::Rs256(
            key.clone(),
            rsa::pkcs1v15::SigningKey::new(key.rsa().clone()),
        ))
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("alg", &self.alg())
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

/// 32 bytes from the OS CSPRNG, wiped when dropped.
fn random_32() -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut_slice()).context("the OS random number generator failed")?;
    Ok(bytes)
}

/// A public key of the key set, for one algorithm, with its key id and
/// its JWK members.
#[derive(Clone)]
pub struct PublicJwk {
    alg: Algorithm,
    verifying: Verifying,
    published: PublishedKey,
}

#[derive(Clone)]
enum Verifying {
    Rs256(PublicKey, rsa::pkcs1v15::VerifyingKey<Sha256>),
    Ps256(PublicKey, rsa::pss::VerifyingKey<Sha256>),
    Es256(p256::ecdsa::VerifyingKey),
    EdDsa(ed25519_dalek::VerifyingKey),
}

impl PublicJwk {
    /// An RSA key for PKCS#1 v1.5 (RS256) or, with `pss`, for PSS (PS256).
    fn rsa(pss: bool, key: PublicKey) -> Self {
        let (alg, verifying) = if pss {
            // Exactly the 32-byte salt we sign with (RFC 7518 section 3.5).
            let verifying = rsa::pss::VerifyingKey::new(key.rsa().clone());
            (Algorithm::Ps256, Verifying::Ps256(key.clone(), verifying))
        } else {
            let verifying = rsa::pkcs1v15::VerifyingKey::new(key.rsa().clone());
            (Algorithm::Rs256, Verifying::Rs256(key.clone(), verifying))
        };
        let params = KeyParams::Rsa {
            n: key.modulus().to_owned(),
            e: key.exponent().to_owned(),
        };
        Self::new(alg, verifying, params)
    }

    fn es256(key: p256::ecdsa::VerifyingKey) -> Self {
        let point = key.to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| {
            #[expect(
                clippy::expect_used,
                reason = "to_encoded_point(false) is the uncompressed form"
            )]
            base64url::encode(c.expect("an uncompressed point has both coordinates"))
        };
        let params = KeyParams::Ec {
            crv: "P-256",
            x: coordinate(point.x()),
            y: coordinate(point.y()),
        };
        Self::new(Algorithm::Es256, Verifying::Es256(key), params)
    }

    fn ed25519(key: ed25519_dalek::VerifyingKey) -> Self {
        let params = KeyParams::Okp {
            crv: "Ed25519",
            x: base64url::encode(key.as_bytes()),
        };
        Self::new(Algorithm::EdDsa, Verifying::EdDsa(key), params)
    }

    fn new(alg: Algorithm, verifying: Verifying, params: KeyParams) -> Self {
        let kid = thumbprint(&params);
        Self {
            alg,
            verifying,
            published: PublishedKey {
                kid,
                alg: alg.as_str(),
                params,
            },
        }
    }

    /// Reads an SPKI PEM public key (`BEGIN PUBLIC KEY`; PKCS#1 too for RSA)
    /// of a key for `alg`.
    ///
    /// # Errors
    /// Not PEM, or not a valid key of `alg`'s type.
    pub fn from_pem(alg: Algorithm, pem: &str) -> anyhow::Result<Self> {
        let pem = pem.trim();
        Ok(match alg {
            Algorithm::Rs256 | Algorithm::Ps256 => {
                Self::rsa(alg == Algorithm::Ps256, PublicKey::from_pem(pem)?)
            }
            Algorithm::Es256 => Self::es256(
                p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
                    .map_err(|e| anyhow::anyhow!("invalid SPKI P-256 public key: {e}"))?,
            ),
            Algorithm::EdDsa => Self::ed25519(
                ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                    .map_err(|e| anyhow::anyhow!("invalid SPKI Ed25519 public key: {e}"))?,
            ),
        })
    }

    /// Reads a public JWK (RFC 7517; members of RFC 7518 section 6 and
    /// RFC 8037 section 2) as a key for `alg`: `kty` `RSA` for RS256 and
    /// PS256, `EC` on `P-256` for ES256, `OKP` on `Ed25519` for EdDSA. Other
    /// members are ignored, but an `alg` member must name `alg`.
    ///
    /// Strict: every value is unpadded base64url in its one canonical
    /// spelling (full-length EC coordinates, RSA integers without leading
    /// zero octets, a reduced Ed25519 point), so the thumbprint ([`Self::kid`])
    /// is the one the key's holder computes over the members it sent, and no
    /// second spelling of a key has another.
    ///
    /// # Errors
    /// See [`JwkRefused`].
    pub fn from_jwk(alg: Algorithm, jwk: &serde_json::Value) -> Result<Self, JwkRefused> {
        let members = jwk.as_object().ok_or(JwkRefused::Malformed)?;
        if PRIVATE_JWK_MEMBERS.iter().any(|m| members.contains_key(*m)) {
            return Err(JwkRefused::PrivateMembers);
        }
        let text = |name: &str| {
            members
                .get(name)
                .and_then(serde_json::Value::as_str)
                .ok_or(JwkRefused::Malformed)
        };
        // RFC 7517 section 4.4: a key meant for one algorithm is not used with another.
        if members
            .get("alg")
            .is_some_and(|intended| intended.as_str() != Some(alg.as_str()))
        {
            return Err(JwkRefused::KeyType);
        }
        let (kty, crv) = match alg {
            Algorithm::Rs256 | Algorithm::Ps256 => ("RSA", None),
            Algorithm::Es256 => ("EC", Some("P-256")),
            Algorithm::EdDsa => ("OKP", Some("Ed25519")),
        };
        if text("kty")? != kty || crv.is_some_and(|crv| text("crv") != Ok(crv)) {
            return Err(JwkRefused::KeyType);
        }
        let key = match alg {
            Algorithm::Rs256 | Algorithm::Ps256 => Self::rsa(
                alg == Algorithm::Ps256,
                rsa_from_jwk(text("n")?, text("e")?)?,
            ),
            Algorithm::Es256 => Self::es256(es256_from_jwk(text("x")?, text("y")?)?),
            Algorithm::EdDsa => Self::ed25519(ed25519_from_jwk(text("x")?)?),
        };
        // The members as we would publish the key are the members as sent:
        // the thumbprint is over exactly what the holder hashes.
        let as_sent = match &key.published.params {
            KeyParams::Rsa { n, e } => text("n")? == n && text("e")? == e,
            KeyParams::Ec { x, y, .. } => text("x")? == x && text("y")? == y,
            KeyParams::Okp { x, .. } => text("x")? == x,
        };
        if !as_sent {
            return Err(JwkRefused::Invalid);
        }
        Ok(key)
    }

    /// The key as SPKI PEM (`BEGIN PUBLIC KEY`), LF line endings.
    ///
    /// # Errors
    /// The encoder failed.
    pub fn to_spki_pem(&self) -> anyhow::Result<String> {
        let lf = ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF;
        match &self.verifying {
            Verifying::Rs256(key, _) | Verifying::Ps256(key, _) => key.to_spki_pem(),
            Verifying::Es256(key) => key
                .to_public_key_pem(lf)
                .map_err(|e| anyhow::anyhow!("SPKI encoding failed: {e}")),
            Verifying::EdDsa(key) => key
                .to_public_key_pem(lf)
                .map_err(|e| anyhow::anyhow!("SPKI encoding failed: {e}")),
        }
    }

    /// The algorithm whose signatures it verifies.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key id: the RFC 7638 JWK SHA-256 thumbprint, base64url.
    pub fn kid(&self) -> &str {
        &self.published.kid
    }

    /// The key as the JWKS shows it.
    pub fn published(&self) -> &PublishedKey {
        &self.published
    }

    /// Whether `signature` is this key's signature of `signing_input` in
    /// its algorithm. Each check compares the whole signature, so where a
    /// forgery differs leaks no timing.
    pub fn verifies(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match &self.verifying {
            // An RSA signature is exactly as long as the modulus.
            Verifying::Rs256(key, verifying) => {
                signature.len() == key.rsa().size()
                    && rsa::pkcs1v15::Signature::try_from(signature)
                        .is_ok_and(|sig| verifying.verify(signing_input, &sig).is_ok())
            }
            Verifying::Ps256(key, verifying) => {
                signature.len() == key.rsa().size()
                    && rsa::pss::Signature::try_from(signature)
                        .is_ok_and(|sig| verifying.verify(signing_input, &sig).is_ok())
            }
            // `from_slice` takes exactly 64 bytes and refuses r or s of zero
            // or not below the group order.
            Verifying::Es256(key) => {
                p256::ecdsa::Signature::from_slice(signature).is_ok_and(|sig| {
                    p256::ecdsa::signature::Verifier::verify(key, signing_input, &sig).is_ok()
                })
            }
            Verifying::EdDsa(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify_strict(signing_input, &sig).is_ok()),
        }
    }
}

/// Why [`PublicJwk::from_jwk`] refused a JWK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwkRefused {
    /// Not a JSON object, or a member its key type needs is missing or not
    /// a string.
    #[error("the JWK is not an object with the string members of its key type")]
    Malformed,
    /// It holds private or symmetric key members ([`PRIVATE_JWK_MEMBERS`]).
    #[error("the JWK holds private key members")]
    PrivateMembers,
    /// Its `kty`, `crv` or `alg` is not the algorithm's.
    #[error("the JWK's key type is not the algorithm's")]
    KeyType,
    /// A member is not canonical unpadded base64url of the right length, or
    /// the members are not a valid public key (a point off the curve, an
    /// even modulus, an RSA modulus over [`MAX_JWK_RSA_BITS`], ...).
    #[error("the JWK's members are not a valid public key")]
    Invalid,
    /// An RSA modulus under [`MIN_KEY_BITS`] bits, or an Ed25519 key of
    /// small order (one that "verifies" signatures of almost any message).
    #[error("the JWK is a weak key")]
    Weak,
}

/// The JWK members only a private or symmetric key has (RFC 7518 sections
/// 6.2.2, 6.3.2 and 6.4.1; RFC 8037 section 2): a public JWK has none of them.
pub const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The largest RSA modulus read from a JWK, in bits. A client (a DPoP
/// proof's) chooses its key, and the cost of each verification grows with
/// it; 4096 bits is the largest size we make ourselves.
pub const MAX_JWK_RSA_BITS: usize = 4096;

/// An RSA public key from the JWK's `n` and `e` (RFC 7518 section 6.3.1).
fn rsa_from_jwk(n: &str, e: &str) -> Result<PublicKey, JwkRefused> {
    let (n, e) = (
        base64url::decode(n).ok_or(JwkRefused::Invalid)?,
        base64url::decode(e).ok_or(JwkRefused::Invalid)?,
    );
    // Base64urlUInt (RFC 7518 section 2): the fewest octets, so no leading zero.
    let (Some(&n_first), Some(&e_first)) = (n.first(), e.first()) else {
        return Err(JwkRefused::Invalid);
    };
    if n_first == 0 || e_first == 0 {
        return Err(JwkRefused::Invalid);
    }
    let bits = n.len() * 8 - n_first.leading_zeros() as usize;
    if bits < MIN_KEY_BITS {
        return Err(JwkRefused::Weak);
    }
    if bits > MAX_JWK_RSA_BITS {
        return Err(JwkRefused::Invalid);
    }
    let key = rsa::PublicKey::new_with_size_limits(
        rsa::BoxedUint::from_be_slice_vartime(&n),
        rsa::BoxedUint::from_be_slice_vartime(&e),
        MIN_KEY_BITS..=MAX_JWK_RSA_BITS,
    )
    .map_err(|_| JwkRefused::Invalid)?;
    PublicKey::from_rsa(key).map_err(|_| JwkRefused::Invalid)
}

/// A P-256 point from the JWK's `x` and `y` (RFC 7518 section 6.2.1).
fn es256_from_jwk(x: &str, y: &str) -> Result<p256::ecdsa::VerifyingKey, JwkRefused> {
    // Each coordinate at the full size of the field, leading zeros kept
    // (RFC 7518 section 6.2.1.2).
    let coordinate = |c: &str| {
        let bytes: [u8; 32] = base64url::decode(c)
            .and_then(|b| b.try_into().ok())
            .ok_or(JwkRefused::Invalid)?;
        Ok::<_, JwkRefused>(p256::FieldBytes::from(bytes))
    };
    let point =
        p256::EncodedPoint::from_affine_coordinates(&coordinate(x)?, &coordinate(y)?, false);
    // Refuses coordinates not below the field's prime and points off the curve.
    p256::ecdsa::VerifyingKey::from_encoded_point(&point).map_err(|_| JwkRefused::Invalid)
}

/// An Ed25519 key from the JWK's `x` (RFC 8037 section 2).
fn ed25519_from_jwk(x: &str) -> Result<ed25519_dalek::VerifyingKey, JwkRefused> {
    let bytes: [u8; 32] = base64url::decode(x)
        .and_then(|b| b.try_into().ok())
        .ok_or(JwkRefused::Invalid)?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| JwkRefused::Invalid)?;
    if key.is_weak() {
        return Err(JwkRefused::Weak);
    }
    // Decompression reduces y modulo the prime; only the reduced spelling
    // is the key's (RFC 8032 section 5.1.3 refuses the others).
    if key.to_edwards().compress().as_bytes() != &bytes {
        return Err(JwkRefused::Invalid);
    }
    Ok(key)
}

impl From<PublicKey> for PublicJwk {
    /// An RS256 key: the service's algorithm before `JWT_ALG`.
    fn from(key: PublicKey) -> Self {
        Self::rsa(false, key)
    }
}

impl fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicJwk")
            .field("alg", &self.alg)
            .field("kid", &self.kid())
            .finish()
    }
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, no
/// whitespace. Every member is base64url or a fixed name, so none needs
/// JSON escaping.
fn thumbprint(params: &KeyParams) -> String {
    let canonical = match params {
        KeyParams::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        KeyParams::Ec { crv, x, y } => {
            format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#)
        }
        KeyParams::Okp { crv, x } => format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{x}"}}"#),
    };
    base64url::encode(Sha256::digest(canonical.as_bytes()))
}

/// One key pair per algorithm per test binary (RSA keys of 2048 bits:
/// generation takes seconds).
#[cfg(test)]
pub(crate) fn test_pair(alg: Algorithm) -> &'static KeyPair {
    use std::sync::OnceLock;
    static PAIRS: [OnceLock<KeyPair>; 4] = [const { OnceLock::new() }; 4];
    let slot = Algorithm::ALL
        .iter()
        .position(|a| *a == alg)
        .expect("one of ALL");
    PAIRS[slot].get_or_init(|| match alg {
        Algorithm::Rs256 => KeyPair::from(super::keys::test_key().clone()),
        Algorithm::Ps256 | Algorithm::Es256 | Algorithm::EdDsa => {
            KeyPair::generate(alg, 2048).unwrap()
        }
    })
}

/// The JWK of a key, as a client would send it (tests).
#[cfg(test)]
pub(crate) fn jwk_of(pair: &KeyPair) -> serde_json::Value {
    use serde_json::json;
    match &pair.public().published().params {
        KeyParams::Rsa { n, e } => json!({"kty": "RSA", "n": n, "e": e}),
        KeyParams::Ec { crv, x, y } => json!({"kty": "EC", "crv": crv, "x": x, "y": y}),
        KeyParams::Okp { crv, x } => json!({"kty": "OKP", "crv": crv, "x": x}),
    }
}

#[cfg(test)]
mod from_jwk_tests;
#[cfg(test)]
mod tests;
