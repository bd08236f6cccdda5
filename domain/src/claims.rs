//! The claims of an access token (contract: "Tokens").

use std::time::Duration;

use uuid::Uuid;

use crate::revocation::CLOCK_LEEWAY;
use crate::session::SessionId;
use crate::time::Timestamp;
use crate::user::UserId;

/// The `exp` (Unix seconds) of an access token issued at `iat` for a session
/// that ends at `session_end`: `ttl` later, but never after the session's
/// absolute end (contract v2), and never before `iat`.
pub fn access_token_exp(iat: Timestamp, ttl: Duration, session_end: Timestamp) -> i64 {
    let issued = iat.unix_seconds();
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    issued
        .saturating_add(ttl)
        .min(session_end.unix_seconds())
        .max(issued)
}

/// The largest access token accepted: 8 KiB. A longer one is refused before
/// anything decodes, hashes or caches it.
pub const MAX_ACCESS_TOKEN_BYTES: usize = 8 * 1024;

/// Why an access token's times refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRefusal {
    /// At or past `exp`, beyond the leeway.
    Expired,
    /// Before `nbf`, beyond the leeway.
    NotYetValid,
}

/// The access-token time rule: a token is good from `nbf` until just before
/// `exp` (Unix seconds), widened on both sides by `leeway_secs` of clock
/// leeway, itself bounded to 0..=[`CLOCK_LEEWAY`] (the WebSocket handshake
/// asks for none). Saturating: no `exp`, `nbf` or `now` overflows.
///
/// # Errors
/// [`TimeRefusal`] naming the failed bound, `exp` first.
pub fn check_token_times(
    exp: i64,
    nbf: i64,
    now: Timestamp,
    leeway_secs: i64,
) -> Result<(), TimeRefusal> {
    let max = i64::try_from(CLOCK_LEEWAY.as_secs()).unwrap_or(i64::MAX);
    let leeway = leeway_secs.clamp(0, max);
    let now = now.unix_seconds();
    if exp <= now.saturating_sub(leeway) {
        Err(TimeRefusal::Expired)
    } else if nbf > now.saturating_add(leeway) {
        Err(TimeRefusal::NotYetValid)
    } else {
        Ok(())
    }
}

/// Whether a token's lifetime, `exp - iat`, is one this service issues:
/// at most `access_ttl` plus [`CLOCK_LEEWAY`] (contract v3, Tokens). A
/// longer one was signed under a longer `ACCESS_TOKEN_EXPIRY` than the one
/// in force, and may belong to a session revoked before the revocation
/// list's shorter horizon: refused, so a restart with a shorter lifetime
/// cannot revive it.
pub fn lifetime_allowed(iat: i64, exp: i64, access_ttl: std::time::Duration) -> bool {
    let max = access_ttl.saturating_add(CLOCK_LEEWAY).as_secs();
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    exp.saturating_sub(iat) <= max
}

/// How a session began: the access token's `amr` (RFC 8176 method names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethods {
    /// A password alone: `["pwd"]`.
    #[default]
    Password,
    /// A password, then a TOTP or recovery code: `["pwd","otp"]`.
    PasswordAndOtp,
    /// A passkey that is not backup-eligible (BE flag 0), bound to one
    /// device: `["hwk","mfa"]`.
    HardwareKey,
    /// A synced passkey (BE flag 1): `["swk","mfa"]`.
    SyncedKey,
}

impl AuthMethods {
    /// The `amr` values, in order.
    pub const fn names(self) -> &'static [&'static str] {
        match self {
            Self::Password => &["pwd"],
            Self::PasswordAndOtp => &["pwd", "otp"],
            Self::HardwareKey => &["hwk", "mfa"],
            Self::SyncedKey => &["swk", "mfa"],
        }
    }

    /// Whether the session began with more than one factor: a password and
    /// a code, or a passkey (something held, unlocked by the user's
    /// verification).
    pub const fn two_factor(self) -> bool {
        !matches!(self, Self::Password)
    }

    /// The methods of a login that did (`true`) or did not use a second factor.
    pub const fn from_two_factor(two_factor: bool) -> Self {
        if two_factor {
            Self::PasswordAndOtp
        } else {
            Self::Password
        }
    }

    /// The methods `names` spell (exactly one of the lists above).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Option<Self> {
        [
            Self::Password,
            Self::PasswordAndOtp,
            Self::HardwareKey,
            Self::SyncedKey,
        ]
        .into_iter()
        .find(|m| {
            m.names().len() == names.len()
                && m.names().iter().zip(names).all(|(a, b)| *a == b.as_ref())
        })
    }
}

/// Claims of an access token. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// Issuer (`JWT_ISSUER`).
    pub iss: String,
    /// Audience (`JWT_AUDIENCE`).
    pub aud: String,
    /// The user.
    pub sub: UserId,
    /// The session (token family).
    pub sid: SessionId,
    /// Unique token id.
    pub jti: Uuid,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// The username, for display.
    pub username: String,
    /// How the session began (`amr`).
    pub amr: AuthMethods,
    /// `cnf.jkt`: the client key the session is bound to (DPoP).
    pub cnf: Option<crate::dpop::Jkt>,
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_lifetime_is_allowed_up_to_the_configured_one_plus_the_leeway() {
        let ttl = std::time::Duration::from_secs(900);
        assert!(lifetime_allowed(1_000, 1_900, ttl));
        assert!(lifetime_allowed(1_000, 1_930, ttl), "the leeway");
        assert!(!lifetime_allowed(1_000, 1_931, ttl));
        assert!(lifetime_allowed(i64::MIN, i64::MIN, ttl), "saturating");
        assert!(!lifetime_allowed(i64::MIN, i64::MAX, ttl));
    }
    use super::*;

    #[test]
    fn amr_names_round_trip_and_nothing_else_parses() {
        for m in [
            AuthMethods::Password,
            AuthMethods::PasswordAndOtp,
            AuthMethods::HardwareKey,
            AuthMethods::SyncedKey,
        ] {
            assert_eq!(AuthMethods::parse(m.names()), Some(m));
        }
        assert_eq!(AuthMethods::Password.names(), ["pwd"]);
        assert_eq!(AuthMethods::PasswordAndOtp.names(), ["pwd", "otp"]);
        assert_eq!(AuthMethods::HardwareKey.names(), ["hwk", "mfa"]);
        assert_eq!(AuthMethods::SyncedKey.names(), ["swk", "mfa"]);
        assert!(!AuthMethods::Password.two_factor());
        assert!(AuthMethods::HardwareKey.two_factor() && AuthMethods::SyncedKey.two_factor());
        for bad in [
            &[][..],
            &["otp"],
            &["otp", "pwd"],
            &["pwd", "pwd"],
            &["PWD"],
            &["pwd", "otp", "mfa"],
        ] {
            assert_eq!(AuthMethods::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn token_times_hold_from_nbf_to_exp_within_the_leeway() {
        let now = Timestamp::from_unix_seconds(1_000);
        let check = |exp, nbf, leeway| check_token_times(exp, nbf, now, leeway);
        assert_eq!(check(1_001, 1_000, 0), Ok(()));
        assert_eq!(check(1_000, 900, 0), Err(TimeRefusal::Expired));
        assert_eq!(check(1_001, 1_001, 0), Err(TimeRefusal::NotYetValid));
        // Leeway both ways, at most 30 s whatever is asked.
        assert_eq!(check(971, 1_030, 30), Ok(()));
        assert_eq!(check(970, 900, 30), Err(TimeRefusal::Expired));
        assert_eq!(check(1_001, 1_031, 30), Err(TimeRefusal::NotYetValid));
        assert_eq!(check(969, 900, 3_600), Err(TimeRefusal::Expired));
        assert_eq!(check(1_001, 900, -5), Ok(()));
        // No overflow at the ends of the range.
        let far = Timestamp::from_unix_seconds(i64::MAX);
        assert_eq!(check_token_times(i64::MAX, 0, far, 30), Ok(()));
        let early = Timestamp::from_unix_seconds(i64::MIN);
        assert_eq!(
            check_token_times(i64::MIN, i64::MIN, early, 30),
            Err(TimeRefusal::Expired)
        );
        assert_eq!(
            check_token_times(i64::MAX, i64::MAX, Timestamp::from_unix_seconds(0), 30),
            Err(TimeRefusal::NotYetValid)
        );
    }

    #[test]
    fn an_access_token_ends_with_its_session() {
        let iat = Timestamp::from_unix_seconds(1_000);
        let ttl = Duration::from_secs(900);
        // A long session: the token lifetime.
        assert_eq!(
            access_token_exp(iat, ttl, iat.plus(Duration::from_secs(86_400))),
            1_900
        );
        // SESSION_MAX_AGE=20s: 20 s, not 900.
        assert_eq!(
            access_token_exp(iat, ttl, iat.plus(Duration::from_secs(20))),
            1_020
        );
        // A session that has just ended: expired at once, never before issue.
        assert_eq!(
            access_token_exp(iat, ttl, iat.minus(Duration::from_secs(5))),
            1_000
        );
        assert_eq!(
            access_token_exp(iat, Duration::MAX, iat.plus(Duration::from_secs(1))),
            1_001
        );
    }
}
