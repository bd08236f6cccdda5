//! The forms of a second factor: typed codes, recovery codes and their
//! stored hashes, and the client-bound hash of an `mfaToken`. Shared by the
//! login (which checks them) and the account (whose enrolment makes them).

use domain::totp::candidate_steps;
use domain::{Timestamp, TokenHash, UserId};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest, Sha256};

use crate::ports::{MfaStore, RandomSource, TotpCodes};
use crate::{ClientInfo, MfaToken};

const RECOVERY_LABEL: &[u8] = b"authd/recovery-code/v1\0";
const CHALLENGE_LABEL: &[u8] = b"authd/mfa-token/v1\0";
/// Random bytes per recovery code: 80 bits, 20 hex digits.
const RECOVERY_BYTES: usize = 10;

/// The second factor of a login.
pub enum SecondFactor {
    /// A code from the authenticator app.
    Code(SecretString),
    /// One of the recovery codes shown at enrolment.
    RecoveryCode(SecretString),
}

impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Code(_) => "Code([redacted])",
            Self::RecoveryCode(_) => "RecoveryCode([redacted])",
        })
    }
}

/// Whether `proof` is a second factor of `user` now, and uses it if so (in
/// every process): a TOTP code's step is accepted once, a recovery code
/// once ever. `false` for a wrong, replayed or malformed one, or when the
/// user has no confirmed TOTP secret.
///
/// # Errors
/// Storage failures.
pub(crate) async fn use_second_factor(
    mfa: &dyn MfaStore,
    totp: &dyn TotpCodes,
    user: UserId,
    proof: &SecondFactor,
    now: Timestamp,
) -> anyhow::Result<bool> {
    match proof {
        SecondFactor::Code(code) => {
            let Some(typed) = code_digits(code) else {
                return Ok(false);
            };
            let Some(secret) = mfa.totp(user).await?.filter(|t| t.confirmed_at.is_some()) else {
                return Ok(false);
            };
            let steps = candidate_steps(now, secret.last_step);
            match totp.matching_step(user, &secret.sealed, &steps, typed)? {
                Some(step) => mfa.use_step(user, step).await,
                None => Ok(false),
            }
        }
        SecondFactor::RecoveryCode(code) => match normal_recovery_code(code) {
            Some(code) => {
                mfa.use_recovery_code(user, &recovery_hash(user, &code), now)
                    .await
            }
            None => Ok(false),
        },
    }
}

/// The six digits of a typed code (whitespace around them ignored); `None`
/// for anything else.
pub(crate) fn code_digits(code: &SecretString) -> Option<&str> {
    let typed = code.expose_secret().trim();
    let digits = usize::try_from(domain::totp::DIGITS).unwrap_or(6);
    (typed.len() == digits && typed.bytes().all(|b| b.is_ascii_digit())).then_some(typed)
}

/// A recovery code as stored: its 20 hex digits, lower case, without the
/// dashes or spaces it was typed with; `None` when it cannot be one.
pub(crate) fn normal_recovery_code(code: &SecretString) -> Option<String> {
    let typed = code.expose_secret();
    if typed.len() > 64 {
        return None;
    }
    let normal: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (normal.len() == RECOVERY_BYTES * 2 && normal.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(normal)
}

/// A new recovery code: 80 random bits as four groups of five hex digits.
pub(crate) fn new_recovery_code(random: &dyn RandomSource) -> SecretString {
    let mut bytes = [0u8; RECOVERY_BYTES];
    random.fill(&mut bytes);
    let hex = data_encoding::HEXLOWER.encode(&bytes);
    let groups: Vec<&str> = (0..4).map(|i| &hex[i * 5..i * 5 + 5]).collect();
    SecretString::from(groups.join("-"))
}

/// A recovery code's stored hash: SHA-256 over a label, the user and the
/// code. 80 random bits need no slow hash; the user makes equal codes of
/// two users differ.
pub(crate) fn recovery_hash(user: UserId, normal: &str) -> TokenHash {
    let mut h = Sha256::new();
    h.update(RECOVERY_LABEL);
    h.update(user.as_uuid().as_bytes());
    h.update(normal.as_bytes());
    TokenHash::from_bytes(h.finalize().into())
}

/// The stored hash of an `mfaToken` presented by `client`: the client's
/// address and user agent are hashed in, so that the token looked up from
/// another client is simply unknown (`mfa_token_invalid`).
pub(crate) fn challenge_hash(token: &MfaToken, client: &ClientInfo) -> TokenHash {
    let mut h = Sha256::new();
    h.update(CHALLENGE_LABEL);
    h.update(token.hash().as_bytes());
    for part in [&client.ip, &client.user_agent] {
        let part = part.as_deref().unwrap_or_default();
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    TokenHash::from_bytes(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_owned())
    }

    #[test]
    fn codes_are_six_digits_trimmed() {
        assert_eq!(code_digits(&s(" 123456 ")), Some("123456"));
        for bad in ["12345", "1234567", "12345a", "", "１２３４５６"] {
            assert_eq!(code_digits(&s(bad)), None, "{bad}");
        }
    }

    #[test]
    fn recovery_codes_are_read_without_dashes_spaces_or_case() {
        let want = Some("0123456789abcdef0123".to_owned());
        assert_eq!(normal_recovery_code(&s("01234-56789-abcde-f0123")), want);
        assert_eq!(normal_recovery_code(&s("01234 56789 ABCDE F0123")), want);
        assert_eq!(normal_recovery_code(&s("01234-56789-abcde-f012")), None);
        assert_eq!(normal_recovery_code(&s("01234-56789-abcde-f012g")), None);
        assert_eq!(normal_recovery_code(&s(&"-".repeat(100))), None);
    }

    #[test]
    fn a_challenge_is_bound_to_the_client() {
        let token = MfaToken::parse(&"A".repeat(43)).unwrap();
        let client = |ip: &str, ua: &str| ClientInfo {
            ip: Some(ip.into()),
            user_agent: Some(ua.into()),
            key: None,
        };
        let here = challenge_hash(&token, &client("10.0.0.1", "curl"));
        assert_eq!(here, challenge_hash(&token, &client("10.0.0.1", "curl")));
        assert_ne!(here, challenge_hash(&token, &client("10.0.0.2", "curl")));
        assert_ne!(here, challenge_hash(&token, &client("10.0.0.1", "wget")));
        // The parts are length-prefixed: moving a byte across does not collide.
        assert_ne!(challenge_hash(&token, &client("10.0.0.1c", "url")), here);
    }

    #[test]
    fn recovery_hashes_differ_per_user() {
        let a = UserId::from_uuid(uuid::Uuid::from_u128(1));
        let b = UserId::from_uuid(uuid::Uuid::from_u128(2));
        assert_ne!(recovery_hash(a, "00"), recovery_hash(b, "00"));
    }

    #[test]
    fn recovery_codes_are_four_groups_of_five_hex_digits() {
        struct Fixed;
        impl RandomSource for Fixed {
            fn fill(&self, buf: &mut [u8]) {
                buf.copy_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23]);
            }
        }
        assert_eq!(
            new_recovery_code(&Fixed).expose_secret(),
            "01234-56789-abcde-f0123"
        );
    }
}
