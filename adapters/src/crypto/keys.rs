//! RSA key pairs for RS256: PEM in and out, and the key id (`kid`).
//!
//! The `kid` is the RFC 7638 JWK SHA-256 thumbprint, so a verifier (or a
//! client reading the JWKS) can check that it names exactly this key.

use std::fmt;

use anyhow::{Context as _, bail};
use rsa::pkcs1::{DecodeRsaPrivateKey as _, DecodeRsaPublicKey as _};
use rsa::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
    LineEnding,
};
use rsa::traits::PublicKeyParts as _;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};

use super::base64url;
use super::os_rng::OsRng;

/// Smallest accepted modulus, in bits (NIST SP 800-57: 112-bit security).
pub const MIN_KEY_BITS: usize = 2048;

/// Key size of the RSA keys the service creates (the first key of an empty
/// set, `authd keys rotate`, `authd keys generate`).
pub const DEFAULT_KEY_BITS: usize = 4096;

/// An RSA private key (with its public half) that signs access tokens.
///
/// `Debug` shows only the key id and size.
#[derive(Clone)]
pub struct PrivateKey {
    inner: rsa::PrivateKey,
    public: PublicKey,
}

impl PrivateKey {
    /// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`).
    ///
    /// # Errors
    /// Not PEM, another label (encrypted keys are not supported), not an
    /// RSA key, an invalid key, or a modulus under [`MIN_KEY_BITS`].
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let pem = pem.trim();
        let inner = if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
            rsa::PrivateKey::from_pkcs1_pem(pem).context("invalid PKCS#1 RSA private key")?
        } else if pem.starts_with("-----BEGIN PRIVATE KEY-----") {
            rsa::PrivateKey::from_pkcs8_pem(pem).context("invalid PKCS#8 RSA private key")?
        } else {
            bail!("expected a PEM 'PRIVATE KEY' (PKCS#8) or 'RSA PRIVATE KEY' (PKCS#1)");
        };
        Self::from_rsa(inner)
    }

    /// Generates a new key with public exponent 65537. Slow: seconds for
    /// 4096 bits; call it from a blocking context.
    ///
    /// # Errors
    /// `bits` under [`MIN_KEY_BITS`], or the OS RNG failed.
    pub fn generate(bits: usize) -> anyhow::Result<Self> {
        if bits < MIN_KEY_BITS {
            bail!("RSA keys need at least {MIN_KEY_BITS} bits, {bits} requested");
        }
        let inner = rsa::PrivateKey::new(&mut OsRng, bits).context("RSA key generation failed")?;
        Self::from_rsa(inner)
    }

    /// Wraps a checked `rsa` key, refusing small ones.
    pub(crate) fn from_rsa(inner: rsa::PrivateKey) -> anyhow::Result<Self> {
        let public = PublicKey::from_rsa(inner.to_public_key())?;
        Ok(Self { inner, public })
    }

    /// The key as PKCS#8 PEM (`BEGIN PRIVATE KEY`), LF line endings.
    ///
    /// # Errors
    /// The encoder failed.
    pub fn to_pkcs8_pem(&self) -> anyhow::Result<SecretString> {
        let pem = self
            .inner
            .to_pkcs8_pem(LineEnding::LF)
            .context("PKCS#8 encoding failed")?;
        // `pem` is zeroized on drop; the copy lives on inside the SecretString.
        Ok(SecretString::from(pem.as_str()))
    }

    /// The key as PKCS#8 DER, for sealing (`crypto::key_seal`).
    ///
    /// # Errors
    /// The encoder failed.
    pub fn to_pkcs8_der(&self) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
        let der = self
            .inner
            .to_pkcs8_der()
            .context("PKCS#8 encoding failed")?;
        Ok(zeroize::Zeroizing::new(der.as_bytes().to_vec()))
    }

    /// Reads PKCS#8 DER (as [`Self::to_pkcs8_der`] wrote it).
    ///
    /// # Errors
    /// Not an RSA key, an invalid key, or a modulus under [`MIN_KEY_BITS`].
    pub fn from_pkcs8_der(der: &[u8]) -> anyhow::Result<Self> {
        let inner =
            rsa::PrivateKey::from_pkcs8_der(der).context("invalid PKCS#8 RSA private key")?;
        Self::from_rsa(inner)
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// The key id of the public half.
    pub fn kid(&self) -> &str {
        self.public.kid()
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.public.bits()
    }

    pub(crate) fn rsa(&self) -> &rsa::PrivateKey {
        &self.inner
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kid", &self.kid())
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

/// An RSA public key that verifies access tokens, with its key id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: rsa::PublicKey,
    kid: String,
    n: String,
    e: String,
}

impl PublicKey {
    /// Reads a PEM public key: SPKI (`BEGIN PUBLIC KEY`) or PKCS#1
    /// (`BEGIN RSA PUBLIC KEY`).
    ///
    /// # Errors
    /// Not PEM, another label, not an RSA key, or a modulus under [`MIN_KEY_BITS`].
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let pem = pem.trim();
        let inner = if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
            rsa::PublicKey::from_pkcs1_pem(pem).context("invalid PKCS#1 RSA public key")?
        } else if pem.starts_with("-----BEGIN PUBLIC KEY-----") {
            rsa::PublicKey::from_public_key_pem(pem).context("invalid SPKI RSA public key")?
        } else {
            bail!("expected a PEM 'PUBLIC KEY' (SPKI) or 'RSA PUBLIC KEY' (PKCS#1)");
        };
        Self::from_rsa(inner)
    }

    /// Wraps a checked `rsa` key, refusing small ones, and computes its `kid`.
    pub(crate) fn from_rsa(inner: rsa::PublicKey) -> anyhow::Result<Self> {
        let bits = inner.n().bit_width_vartime() as usize;
        if bits < MIN_KEY_BITS {
            bail!("RSA keys need at least {MIN_KEY_BITS} bits, this one has {bits}");
        }
        let n = base64url::encode(inner.n_bytes());
        let e = base64url::encode(inner.e_bytes());
        let kid = thumbprint(&n, &e);
        Ok(Self { inner, kid, n, e })
    }

    /// The key as SPKI PEM (`BEGIN PUBLIC KEY`), LF line endings.
    ///
    /// # Errors
    /// The encoder failed.
    pub fn to_spki_pem(&self) -> anyhow::Result<String> {
        self.inner
            .to_public_key_pem(LineEnding::LF)
            .context("SPKI encoding failed")
    }

    /// The key id: the RFC 7638 JWK SHA-256 thumbprint, base64url.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.inner.n().bit_width_vartime() as usize
    }

    /// The modulus, base64url (unpadded, big-endian, no leading zeros).
    pub fn modulus(&self) -> &str {
        &self.n
    }

    /// The public exponent, base64url (unpadded, big-endian).
    pub fn exponent(&self) -> &str {
        &self.e
    }

    pub(crate) fn rsa(&self) -> &rsa::PublicKey {
        &self.inner
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("bits", &self.bits())
            .finish()
    }
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, no
/// whitespace. `n` and `e` are base64url, so they need no JSON escaping.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    base64url::encode(Sha256::digest(canonical.as_bytes()))
}

/// One 2048-bit key per test binary: generation takes seconds.
#[cfg(test)]
pub(crate) fn test_key() -> &'static PrivateKey {
    static KEY: std::sync::OnceLock<PrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(2048).expect("test key"))
}

/// A second, unrelated key, for "signed by someone else" cases.
#[cfg(test)]
pub(crate) fn other_test_key() -> &'static PrivateKey {
    static KEY: std::sync::OnceLock<PrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(2048).expect("test key"))
}

/// A big-endian integer from base64url, for published test vectors.
#[cfg(test)]
pub(crate) fn uint(b64: &str) -> rsa::BoxedUint {
    let bytes = base64url::decode(b64).expect("base64url");
    rsa::BoxedUint::from_be_slice_vartime(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::{EncodeRsaPrivateKey as _, EncodeRsaPublicKey as _};
    use secrecy::ExposeSecret as _;

    /// RFC 7638 section 3.1.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const RFC7638_KID: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        let key = PublicKey::from_rsa(rsa::PublicKey::new(uint(RFC7638_N), uint("AQAB")).unwrap())
            .unwrap();
        assert_eq!(key.kid(), RFC7638_KID);
        assert_eq!(
            (key.modulus(), key.exponent(), key.kid()),
            (RFC7638_N, "AQAB", RFC7638_KID)
        );
    }

    #[test]
    fn pkcs8_round_trip() {
        let key = test_key();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(
            pem.expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        let back = PrivateKey::from_pem(pem.expose_secret()).unwrap();
        assert_eq!(back.rsa(), key.rsa());
        assert_eq!(back.kid(), key.kid());
        assert_eq!(back.bits(), 2048);
    }

    #[test]
    fn pkcs1_private_key_is_read() {
        let key = test_key();
        let pem = key.rsa().to_pkcs1_pem(LineEnding::CRLF).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let back = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(back.rsa(), key.rsa());
    }

    #[test]
    fn spki_and_pkcs1_public_round_trips() {
        let public = test_key().public_key();
        let spki = public.to_spki_pem().unwrap();
        assert!(spki.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(PublicKey::from_pem(&spki).unwrap(), public);
        let pkcs1 = public.rsa().to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(pkcs1.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
        let back = PublicKey::from_pem(&format!("\n  {pkcs1}\n")).unwrap();
        assert_eq!(back.kid(), public.kid());
    }

    #[test]
    fn wrong_labels_and_garbage_are_refused() {
        let spki = test_key().public_key().to_spki_pem().unwrap();
        assert!(
            PrivateKey::from_pem(&spki).is_err(),
            "a public key is not a private key"
        );
        let private = test_key().to_pkcs8_pem().unwrap();
        assert!(PublicKey::from_pem(private.expose_secret()).is_err());
        assert!(PrivateKey::from_pem("").is_err());
        assert!(
            PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
        assert!(
            PrivateKey::from_pem(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            )
            .is_err()
        );
    }

    #[test]
    fn small_keys_are_refused() {
        assert!(PrivateKey::generate(1024).is_err());
        // A real 1024-bit key read from PEM: a valid key, but too small.
        let small = rsa::PrivateKey::new(&mut OsRng, 1024).unwrap();
        let pem = small.to_pkcs8_pem(LineEnding::LF).unwrap();
        let err = PrivateKey::from_pem(&pem).unwrap_err();
        assert!(err.to_string().contains("2048"), "{err}");
        let public_pem = small
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        assert!(PublicKey::from_pem(&public_pem).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let key = test_key();
        let shown = format!("{key:?}");
        assert!(
            shown.contains(key.kid()) && shown.contains("2048"),
            "{shown}"
        );
        let pem = key.to_pkcs8_pem().unwrap();
        let body_line = pem.expose_secret().lines().nth(1).unwrap().to_owned();
        assert!(!shown.contains(&body_line));
        assert!(!format!("{pem:?}").contains(&body_line));
    }
}
