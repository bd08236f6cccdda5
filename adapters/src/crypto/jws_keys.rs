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
use super::keys::{PrivateKey, PublicKey};
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

#[cfg(test)]
mod tests;
