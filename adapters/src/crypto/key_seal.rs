//! Private signing keys at rest: sealed before they reach the database.
//!
//! The key set lives in a table every process reads, so a private key there
//! is encrypted: XChaCha20-Poly1305 under a wrapping key derived (HMAC-SHA-256
//! with its own label) from the deployment's server secret, the key file
//! `REFRESH_SEAL_KEY_PATH` that never enters the database. The kid and the
//! algorithm are authenticated with it, so a sealed key cannot be moved to
//! another row. A copy of the database alone opens no key.

use anyhow::{Context as _, bail};
use application::SealKey;
use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305, XNonce};
use domain::Algorithm;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

const WRAP_LABEL: &[u8] = b"authd/signing-key-wrap/v1\0";
const AAD_LABEL: &[u8] = b"authd/signing-key/v1\0";
const NONCE_LEN: usize = 24;

/// Seals and opens private signing keys; `Debug` is redacted.
#[derive(Clone)]
pub struct KeySeal {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for KeySeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySeal([redacted])")
    }
}

impl KeySeal {
    /// The seal keyed from the server secret.
    pub fn new(secret: &SealKey) -> Self {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(secret.expose())
            .expect("HMAC takes a key of any length");
        mac.update(WRAP_LABEL);
        let wrap = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        Self {
            cipher: XChaCha20Poly1305::new((&*wrap).into()),
        }
    }

    /// `der` (the private key's PKCS#8 DER) sealed for the key `kid` of `alg`:
    /// a random nonce, then the ciphertext and its tag.
    ///
    /// # Errors
    /// The OS random number generator failed.
    pub fn seal(&self, kid: &str, alg: Algorithm, der: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let aad = aad(kid, alg);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: der,
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing the signing key failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The PKCS#8 DER sealed by [`Self::seal`] for the same kid and algorithm.
    ///
    /// # Errors
    /// Too short, or the tag does not verify: another server secret, another
    /// row's key, or altered bytes.
    pub fn open(
        &self,
        kid: &str,
        alg: Algorithm,
        sealed: &[u8],
    ) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN + 16 {
            bail!("the sealed signing key {kid} is truncated");
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at its length");
        let aad = aad(kid, alg);
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| anyhow::anyhow!("the signing key {kid} does not open"))
            .context("is REFRESH_SEAL_KEY_PATH the deployment's server secret?")
    }
}

fn aad(kid: &str, alg: Algorithm) -> Vec<u8> {
    let mut aad = AAD_LABEL.to_vec();
    aad.extend_from_slice(alg.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(kid.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(byte: u8) -> KeySeal {
        KeySeal::new(&SealKey::from_bytes([byte; SealKey::LEN]))
    }

    #[test]
    fn opens_only_with_the_same_secret_kid_and_algorithm() {
        let der = b"not really DER, but bytes all the same";
        let sealed = seal(1).seal("kid-a", Algorithm::Rs256, der).unwrap();
        assert!(!sealed.windows(8).any(|w| der.windows(8).any(|d| d == w)));
        assert_eq!(
            &**seal(1).open("kid-a", Algorithm::Rs256, &sealed).unwrap(),
            der
        );
        assert!(
            seal(2).open("kid-a", Algorithm::Rs256, &sealed).is_err(),
            "other secret"
        );
        assert!(
            seal(1).open("kid-b", Algorithm::Rs256, &sealed).is_err(),
            "other row"
        );
        assert!(
            seal(1).open("kid-a", Algorithm::Ps256, &sealed).is_err(),
            "other alg"
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(
            seal(1).open("kid-a", Algorithm::Rs256, &altered).is_err(),
            "altered"
        );
        assert!(
            seal(1)
                .open("kid-a", Algorithm::Rs256, &sealed[..30])
                .is_err(),
            "short"
        );
        // A fresh nonce each time.
        assert_ne!(
            sealed,
            seal(1).seal("kid-a", Algorithm::Rs256, der).unwrap()
        );
    }
}
