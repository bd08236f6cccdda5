//! Opaque refresh tokens: 256 random bits, base64url, stored only as SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::TokenHash;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::ports::RandomSource;

const TOKEN_BYTES: usize = 32;
const SEAL_LABEL: &[u8] = b"authd/refresh-grace-seal/v1\0";

/// A refresh token in plaintext: handed to the client once, never stored.
///
/// `Debug` is redacted; the plaintext leaves only through [`RefreshSecret::expose`].
pub struct RefreshSecret {
    raw: [u8; TOKEN_BYTES],
    encoded: SecretString,
}

impl std::fmt::Debug for RefreshSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshSecret([redacted])")
    }
}

impl RefreshSecret {
    /// A new token from the CSPRNG.
    pub fn generate(random: &dyn RandomSource) -> Self {
        let mut raw = [0u8; TOKEN_BYTES];
        random.fill(&mut raw);
        Self::from_raw(raw)
    }

    fn from_raw(raw: [u8; TOKEN_BYTES]) -> Self {
        let encoded = SecretString::from(URL_SAFE_NO_PAD.encode(raw));
        Self { raw, encoded }
    }

    /// Reads a token a client presented; `None` unless it is exactly the
    /// base64url form of 32 bytes (so junk never reaches the store).
    pub fn parse(presented: &str) -> Option<Self> {
        if presented.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(presented).ok()?;
        let raw: [u8; TOKEN_BYTES] = bytes.try_into().ok()?;
        // Reject non-canonical encodings so that one token has one spelling.
        (URL_SAFE_NO_PAD.encode(raw) == presented).then(|| Self::from_raw(raw))
    }

    /// The plaintext, for the cookie.
    pub fn expose(&self) -> &str {
        self.encoded.expose_secret()
    }

    /// The stored form.
    pub fn hash(&self) -> TokenHash {
        TokenHash::from_bytes(Sha256::digest(self.raw).into())
    }

    /// Seals `successor` under a key only this token's plaintext can derive.
    ///
    /// Stored on this token's row when it is rotated, the seal lets a grace
    /// replay of this token return the *same* successor although only hashes
    /// are stored. Each key seals exactly one value (a token is rotated once),
    /// so the XOR with a 256-bit derived key is a one-time pad: the database
    /// alone reveals nothing about the successor.
    pub fn seal_successor(&self, successor: &RefreshSecret) -> [u8; 32] {
        xor(&self.seal_key(), &successor.raw)
    }

    /// Opens a seal made by [`Self::seal_successor`] and checks it against the
    /// stored hash of the current token; `None` when it does not match.
    pub fn open_successor(&self, seal: &[u8; 32], expected: &TokenHash) -> Option<RefreshSecret> {
        let successor = Self::from_raw(xor(&self.seal_key(), seal));
        (successor.hash() == *expected).then_some(successor)
    }

    fn seal_key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(SEAL_LABEL);
        h.update(self.raw);
        h.finalize().into()
    }
}

fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(std::sync::atomic::AtomicU8);
    impl RandomSource for Counter {
        fn fill(&self, buf: &mut [u8]) {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            buf.iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = n.wrapping_mul(31).wrapping_add(i as u8));
        }
    }

    #[test]
    fn round_trips_and_rejects_junk() {
        let r = Counter(0.into());
        let t = RefreshSecret::generate(&r);
        assert_eq!(t.expose().len(), 43);
        let back = RefreshSecret::parse(t.expose()).expect("parses");
        assert_eq!(back.hash(), t.hash());
        for junk in [
            "",
            "abc",
            &"A".repeat(44),
            &format!("{}=", t.expose()),
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert!(RefreshSecret::parse(junk).is_none(), "{junk}");
        }
    }

    #[test]
    fn seal_opens_only_with_the_parent() {
        let r = Counter(0.into());
        let parent = RefreshSecret::generate(&r);
        let child = RefreshSecret::generate(&r);
        let other = RefreshSecret::generate(&r);
        let seal = parent.seal_successor(&child);
        assert_ne!(&seal, &child.raw);
        let opened = parent.open_successor(&seal, &child.hash()).expect("opens");
        assert_eq!(opened.expose(), child.expose());
        assert!(other.open_successor(&seal, &child.hash()).is_none());
    }

    #[test]
    fn debug_is_redacted() {
        let t = RefreshSecret::generate(&Counter(0.into()));
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
