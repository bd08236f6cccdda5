//! TOTP codes (RFC 6238: HOTP of RFC 4226 over HMAC-SHA-1 and the 30-second
//! step counter, 6 digits), base32 secrets (RFC 4648) and the `otpauth://`
//! URI authenticator apps scan (Google's Key Uri Format). Which steps a code
//! may match is decided in `domain::totp`.
//!
//! Written here rather than taken from a TOTP crate: the algorithm is some
//! thirty lines on the RustCrypto `hmac` already in use, and the RFC's own
//! test vectors pin it down (below).

use application::SealKey;
use application::ports::{NewTotpSecret, TotpCodes};
use domain::UserId;
use hmac::{Hmac, KeyInit as _, Mac as _};
use secrecy::SecretString;
use sha1::Sha1;

use super::key_seal::SecretSeal;

const WRAP_LABEL: &[u8] = b"authd/totp-secret-wrap/v1\0";
const AAD_LABEL: &[u8] = b"authd/totp-secret/v1\0";
/// Bytes of a new secret: 160 bits, HMAC-SHA-1's block of key (RFC 4226 section 4).
const SECRET_BYTES: usize = 20;

/// The [`TotpCodes`] port: secrets made from the OS random number
/// generator and sealed (XChaCha20-Poly1305, see [`super::key_seal`]) under a
/// key derived from the server secret with a label of their own, the user
/// id authenticated with them; codes by [`code`]. A copy of the database
/// alone reads no secret, and a sealed secret moved to another user's row
/// does not open.
#[derive(Debug, Clone)]
pub struct TotpSecrets {
    seal: SecretSeal,
}

impl TotpSecrets {
    /// The secrets sealed under the deployment's server secret.
    pub fn new(secret: &SealKey) -> Self {
        Self {
            seal: SecretSeal::new(secret, WRAP_LABEL, AAD_LABEL),
        }
    }
}

impl TotpCodes for TotpSecrets {
    fn generate(&self, user: UserId, issuer: &str, account: &str) -> anyhow::Result<NewTotpSecret> {
        let mut secret = zeroize::Zeroizing::new([0u8; SECRET_BYTES]);
        getrandom::fill(&mut *secret).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(NewTotpSecret {
            sealed: self.seal.seal(user.as_uuid().as_bytes(), &*secret)?,
            base32: SecretString::from(base32_encode(&*secret)),
            uri: SecretString::from(otpauth_uri(issuer, account, &*secret)),
        })
    }

    fn matching_step(
        &self,
        user: UserId,
        sealed: &[u8],
        steps: &[u64],
        typed: &str,
    ) -> anyhow::Result<Option<u64>> {
        let secret = self
            .seal
            .open(user.as_uuid().as_bytes(), sealed)
            .ok_or_else(|| anyhow::anyhow!("the TOTP secret of user {user} does not open"))?;
        // Every candidate is computed, matched or not: the time taken does
        // not say which step matched.
        Ok(steps.iter().fold(None, |found, step| {
            let hit = matches(&secret, *step, typed);
            found.or(hit.then_some(*step))
        }))
    }
}

/// The code of `secret` for TOTP step `step`, as the 6 digits a user types.
pub fn code(secret: &[u8], step: u64) -> String {
    let digits = domain::totp::DIGITS;
    format!(
        "{:0width$}",
        hotp(secret, step) % 10u32.pow(digits),
        width = digits as usize
    )
}

/// Whether `typed` is the code of `secret` at `step`, compared in constant
/// time (a typed code is exactly 6 ASCII digits, or it matches nothing).
pub fn matches(secret: &[u8], step: u64, typed: &str) -> bool {
    let expected = code(secret, step);
    typed.len() == expected.len()
        && typed.bytes().all(|b| b.is_ascii_digit())
        && typed
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// RFC 4226 section 5.3: HMAC-SHA-1 of the counter, dynamic truncation to 31 bits.
fn hotp(secret: &[u8], counter: u64) -> u32 {
    #[expect(clippy::expect_used, reason = "HMAC takes a key of any length")]
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let word = [
        digest[offset],
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ];
    u32::from_be_bytes(word) & 0x7fff_ffff
}

/// RFC 4648 base32, upper case, without padding (as authenticator apps take it).
pub fn base32_encode(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes)
}

/// `otpauth://totp/<issuer>:<account>?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={}&period={}",
        percent(issuer),
        percent(account),
        base32_encode(secret),
        percent(issuer),
        domain::totp::DIGITS,
        domain::totp::STEP_SECONDS
    )
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encoding of everything but RFC 3986's unreserved characters.
fn percent(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_for_its_user_only_and_its_codes_match() {
        let secrets = TotpSecrets::new(&SealKey::from_bytes([7; SealKey::LEN]));
        let kim = UserId::from_uuid(uuid::Uuid::from_u128(1));
        let lee = UserId::from_uuid(uuid::Uuid::from_u128(2));
        let new = secrets.generate(kim, "auth", "kim").unwrap();
        use secrecy::ExposeSecret as _;
        let base32 = new.base32.expose_secret();
        assert_eq!(base32.len(), 32, "160 bits");
        assert!(new.uri.expose_secret().contains(base32));
        assert!(
            !new.sealed
                .windows(4)
                .any(|w| base32.as_bytes().windows(4).any(|b| b == w))
        );
        // Recover the raw secret from its base32 to compute the expected codes.
        let raw = data_encoding::BASE32_NOPAD
            .decode(base32.as_bytes())
            .unwrap();
        let steps = [100, 101, 102];
        let typed = code(&raw, 101);
        assert_eq!(
            secrets
                .matching_step(kim, &new.sealed, &steps, &typed)
                .unwrap(),
            Some(101)
        );
        assert_eq!(
            secrets
                .matching_step(kim, &new.sealed, &[100, 102], &typed)
                .unwrap(),
            None
        );
        assert!(
            secrets
                .matching_step(lee, &new.sealed, &steps, &typed)
                .is_err(),
            "another user's row"
        );
        let other = TotpSecrets::new(&SealKey::from_bytes([8; SealKey::LEN]));
        assert!(
            other
                .matching_step(kim, &new.sealed, &steps, &typed)
                .is_err(),
            "another server secret"
        );
    }

    /// The seed of RFC 4226 Appendix D and RFC 6238 Appendix B (SHA-1).
    const SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(SEED, counter as u64) % 1_000_000,
                want,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha1() {
        // The RFC lists 8 digits; 6-digit codes are their last 6.
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, eight) in vectors {
            let step = domain::totp::step_of(domain::Timestamp::from_unix_seconds(time));
            assert_eq!(
                format!("{:08}", hotp(SEED, step) % 100_000_000),
                eight,
                "T = {time}"
            );
            assert_eq!(code(SEED, step), eight[2..], "T = {time}");
            assert!(matches(SEED, step, &eight[2..]));
        }
    }

    #[test]
    fn only_the_exact_six_digits_match() {
        let step = 37_037_036; // 1111111109: 081804
        assert!(matches(SEED, step, "081804"));
        for typed in [
            "81804", "0818040", "081805", " 081804", "08180４", "", "abcdef",
        ] {
            assert!(!matches(SEED, step, typed), "{typed:?}");
        }
        assert!(!matches(SEED, step + 1, "081804"), "another step");
    }

    #[test]
    fn base32_is_rfc4648_without_padding() {
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base32_encode(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base32_encode(SEED), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn the_otpauth_uri_names_the_issuer_and_the_account() {
        let uri = otpauth_uri("authd demo", "alice@example", SEED);
        assert_eq!(
            uri,
            "otpauth://totp/authd%20demo:alice%40example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=authd%20demo&algorithm=SHA1&digits=6&period=30"
        );
    }
}
