//! Opaque refresh tokens: 256 random bits, base64url, stored only as SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::TokenHash;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::ports::RandomSource;

const TOKEN_BYTES: usize = 32;
const SEAL_LABEL: &[u8] = b"authd/refresh-grace-seal/v2\0";
const PSEUDONYM_LABEL: &[u8] = b"authd/unknown-username/v1\0";

/// The server secret that every grace seal is also keyed with
/// (`REFRESH_SEAL_KEY_PATH`): 256 bits kept outside the database, so that a
/// copy of the database and a stale token open no seal.
///
/// Every API process of one deployment must hold the same key; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey([u8; 32]);

impl SealKey {
    /// The length of the key in bytes.
    pub const LEN: usize = 32;

    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A new key from the CSPRNG.
    pub fn generate(random: &dyn RandomSource) -> Self {
        let mut bytes = [0u8; 32];
        random.fill(&mut bytes);
        Self(bytes)
    }

    /// The key's bytes, to write it to its file.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl SealKey {
    /// How the audit trail and the logs name a login's username that matches
    /// no user: `#` and 16 hex digits of HMAC-SHA-256 under a key derived
    /// from this one (`#` is not allowed in usernames, so it never looks like
    /// one). Attempts on one name still group together, but a password typed
    /// into the username field cannot be read back from the database or the
    /// logs, which do not hold the key.
    pub fn pseudonym(&self, typed: &str) -> String {
        #[expect(clippy::expect_used, reason = "HMAC takes a key of any length")]
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        mac.update(PSEUDONYM_LABEL);
        mac.update(domain::fold_name(typed).as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("#{}", data_encoding::HEXLOWER.encode(&digest[..8]))
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey([redacted])")
    }
}

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

    /// Seals `successor` under a key derived from this token's plaintext
    /// *and* the server's [`SealKey`]: HMAC-SHA-256(key, label || token).
    ///
    /// Stored on this token's row when it is rotated, the seal lets a grace
    /// replay of this token return the *same* successor although only hashes
    /// are stored. Each derived key seals exactly one value (a token is
    /// rotated once), so the XOR is a one-time pad: neither the database with
    /// a stale token nor the key file alone reveals the successor. The store
    /// erases the seal when the successor rotates or the grace passes.
    pub fn seal_successor(&self, key: &SealKey, successor: &RefreshSecret) -> [u8; 32] {
        xor(&self.seal_pad(key), &successor.raw)
    }

    /// Opens a seal made by [`Self::seal_successor`] and checks it against the
    /// stored hash of the current token; `None` when it does not match (another
    /// key, or another parent).
    pub fn open_successor(
        &self,
        key: &SealKey,
        seal: &[u8; 32],
        expected: &TokenHash,
    ) -> Option<RefreshSecret> {
        let successor = Self::from_raw(xor(&self.seal_pad(key), seal));
        (successor.hash() == *expected).then_some(successor)
    }

    fn seal_pad(&self, key: &SealKey) -> [u8; 32] {
        #[expect(clippy::expect_used, reason = "HMAC takes a key of any length")]
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0)
            .expect("HMAC takes a key of any length");
        mac.update(SEAL_LABEL);
        mac.update(&self.raw);
        mac.finalize().into_bytes().into()
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
        let key = SealKey::generate(&r);
        let seal = parent.seal_successor(&key, &child);
        assert_ne!(&seal, &child.raw);
        let opened = parent
            .open_successor(&key, &seal, &child.hash())
            .expect("opens");
        assert_eq!(opened.expose(), child.expose());
        assert!(other.open_successor(&key, &seal, &child.hash()).is_none());
    }

    #[test]
    fn seal_opens_only_with_the_server_key() {
        let r = Counter(0.into());
        let parent = RefreshSecret::generate(&r);
        let child = RefreshSecret::generate(&r);
        let seal = parent.seal_successor(&SealKey::generate(&r), &child);
        // The parent's plaintext and the database (seal, hashes) are not enough.
        let guessed = SealKey::from_bytes([0; 32]);
        assert!(
            parent
                .open_successor(&guessed, &seal, &child.hash())
                .is_none()
        );
        // Nor is the v1 derivation, SHA-256(label || parent), which needed no key.
        let mut v1 = Sha256::new();
        v1.update(b"authd/refresh-grace-seal/v1\0");
        v1.update(parent.raw);
        let pad: [u8; 32] = v1.finalize().into();
        assert_ne!(xor(&pad, &seal), child.raw);
    }

    #[test]
    fn pseudonyms_group_attempts_and_hide_the_name() {
        let key = SealKey::from_bytes([7; 32]);
        let p = key.pseudonym("Hunter2Hunter2");
        assert_eq!(p.len(), 17);
        assert!(p.starts_with('#') && !p.to_lowercase().contains("hunter"));
        assert_eq!(p, key.pseudonym("hunter2hunter2"), "case-folded");
        assert_ne!(p, key.pseudonym("hunter2hunter3"));
        assert_ne!(p, SealKey::from_bytes([8; 32]).pseudonym("hunter2hunter2"));
    }

    #[test]
    fn seal_key_debug_is_redacted() {
        let key = SealKey::from_bytes([7; 32]);
        assert_eq!(format!("{key:?}"), "SealKey([redacted])");
    }

    #[test]
    fn debug_is_redacted() {
        let t = RefreshSecret::generate(&Counter(0.into()));
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
