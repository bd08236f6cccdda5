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

/// XChaCha20-Poly1305 under a key derived from the server secret for one
/// purpose (its wrap label), with that purpose's label before every
/// associated data: a value sealed for one purpose or one context (a row)
/// opens for no other. `Debug` is redacted.
#[derive(Clone)]
pub(crate) struct SecretSeal {
    cipher: XChaCha20Poly1305,
    aad_label: &'static [u8],
}

impl std::fmt::Debug for SecretSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSeal([redacted])")
    }
}

impl SecretSeal {
    /// The seal of one purpose: the wrapping key is HMAC-SHA-256(server
    /// secret, `wrap_label`).
    pub(crate) fn new(secret: &SealKey, wrap_label: &[u8], aad_label: &'static [u8]) -> Self {
        #[expect(clippy::expect_used, reason = "HMAC takes a key of any length")]
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(secret.expose())
            .expect("HMAC takes a key of any length");
        mac.update(wrap_label);
        let wrap = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        Self {
            cipher: XChaCha20Poly1305::new((&*wrap).into()),
            aad_label,
        }
    }

    /// `msg` sealed for `context`: a random nonce, then the ciphertext and its tag.
    pub(crate) fn seal(&self, context: &[u8], msg: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let aad = [self.aad_label, context].concat();
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg, aad: &aad })
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// What [`Self::seal`] sealed for the same context; `None` when it is
    /// too short or its tag does not verify (another server secret, another
    /// context, altered bytes).
    pub(crate) fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let aad = [self.aad_label, context].concat();
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// Seals and opens private signing keys; `Debug` is redacted.
#[derive(Clone, Debug)]
pub struct KeySeal(SecretSeal);

impl KeySeal {
    /// The seal keyed from the server secret.
    pub fn new(secret: &SealKey) -> Self {
        Self(SecretSeal::new(secret, WRAP_LABEL, AAD_LABEL))
    }

    /// `der` (the private key's PKCS#8 DER) sealed for the key `kid` of `alg`:
    /// a random nonce, then the ciphertext and its tag.
    ///
    /// # Errors
    /// The OS random number generator failed.
    pub fn seal(&self, kid: &str, alg: Algorithm, der: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.0
            .seal(&context(kid, alg), der)
            .context("sealing the signing key")
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
        self.0
            .open(&context(kid, alg), sealed)
            .ok_or_else(|| {
                anyhow::Error::new(KeyDoesNotOpen {
                    kid: kid.to_owned(),
                })
            })
            .context("is REFRESH_SEAL_KEY_PATH the deployment's server secret?")
    }
}

/// A sealed signing key that this server secret does not open: another
/// deployment's secret, or altered bytes. Waiting does not help, so a
/// server stops on it (security review 2, finding 7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the signing key {kid} does not open with this server secret")]
pub struct KeyDoesNotOpen {
    /// The key's id.
    pub kid: String,
}

impl KeyDoesNotOpen {
    /// The one in `error`'s chain, if any.
    pub fn in_chain(error: &anyhow::Error) -> Option<&Self> {
        error.chain().find_map(|cause| cause.downcast_ref::<Self>())
    }
}

fn context(kid: &str, alg: Algorithm) -> Vec<u8> {
    let mut context = alg.as_str().as_bytes().to_vec();
    context.push(0);
    context.extend_from_slice(kid.as_bytes());
    context
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
