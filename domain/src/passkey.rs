//! Passkeys (contract v3, "Passkeys"): WebAuthn discoverable credentials as
//! a way to log in without a password or a code.
//!
//! The ceremony's cryptography (challenge, origin, rpIdHash, flags,
//! signature, attestation) is checked by the WebAuthn adapter; what this
//! module decides is everything the contract adds around it: how long a
//! ceremony lives and that it is used once, what a passkey is called, that
//! a signature counter must grow, whose credential an assertion may be,
//! and which `amr` a passkey login gets.

use std::time::Duration;

use crate::{AuthMethods, Timestamp, UserId};

/// How long a `registrationId` or a `loginId` can be finished (the
/// options' `timeout` says the same to the browser).
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);

/// The name of a passkey registered without one.
pub const DEFAULT_NAME: &str = "Passkey";

/// The longest name, in characters.
pub const NAME_MAX_CHARS: usize = 64;

/// Random bytes of a user handle (WebAuthn `user.id`): opaque, never the
/// username or the user id, at most 64 bytes by the specification.
pub const USER_HANDLE_BYTES: usize = 32;

/// Whether a ceremony that expires at `expires_at` can still be finished
/// at `now`. Single use is the store's: finishing takes the ceremony away
/// in the same write that reads it.
pub fn ceremony_open(expires_at: Timestamp, now: Timestamp) -> bool {
    now < expires_at
}

/// A passkey name that is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyNameError {
    /// Longer than [`NAME_MAX_CHARS`].
    #[error("a passkey name has at most {NAME_MAX_CHARS} characters")]
    TooLong,
    /// A control character (a line break, a NUL, an escape).
    #[error("a passkey name may not hold control characters")]
    ControlCharacter,
}

/// The name a passkey is stored under: `requested` without surrounding
/// whitespace, or [`DEFAULT_NAME`] when absent or blank.
///
/// # Errors
/// Longer than [`NAME_MAX_CHARS`], or a control character.
pub fn passkey_name(requested: Option<&str>) -> Result<String, PasskeyNameError> {
    let name = requested.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Ok(DEFAULT_NAME.to_owned());
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(PasskeyNameError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(PasskeyNameError::ControlCharacter);
    }
    Ok(name.to_owned())
}

/// A stored passkey, as far as the login rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPasskey {
    /// Its owner.
    pub user: UserId,
    /// The signature counter of its last use (0: the authenticator keeps none).
    pub counter: u32,
}

/// What an assertion that verified says about its authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assertion {
    /// Its signature counter.
    pub counter: u32,
    /// The BE flag: the credential may be synced to other devices.
    pub backup_eligible: bool,
    /// The user handle the authenticator returned: the owner of the
    /// credential it signed with, as the authenticator remembers it.
    pub user: Option<UserId>,
}

/// Why a verified assertion still does not log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyRefusal {
    /// The `userHandle` names another user than the credential's.
    #[error("the assertion's user handle is not the credential's user")]
    WrongUser,
    /// The counter did not grow: another authenticator holds a copy of the
    /// private key (a cloned authenticator), or this one was reset.
    #[error("the signature counter did not grow")]
    CounterDidNotGrow,
}

/// Whether a signature counter `presented` after `stored` shows a genuine
/// authenticator (WebAuthn §6.1.1): when either is non-zero, it must grow.
/// Authenticators that keep no counter (most synced passkeys) send 0
/// every time, which is allowed as long as nothing but 0 was ever seen.
pub fn counter_grew(stored: u32, presented: u32) -> bool {
    (stored == 0 && presented == 0) || presented > stored
}

/// Judges an assertion that verified against `stored`: the methods of
/// the session it starts, or why it does not.
///
/// # Errors
/// See [`PasskeyRefusal`].
pub fn judge_login(
    stored: StoredPasskey,
    assertion: Assertion,
) -> Result<AuthMethods, PasskeyRefusal> {
    if assertion.user != Some(stored.user) {
        return Err(PasskeyRefusal::WrongUser);
    }
    if !counter_grew(stored.counter, assertion.counter) {
        return Err(PasskeyRefusal::CounterDidNotGrow);
    }
    Ok(login_methods(assertion.backup_eligible))
}

/// The `amr` of a passkey login (contract v3): `["swk","mfa"]` for a
/// backup-eligible (synced) credential, `["hwk","mfa"]` for one bound to
/// its device.
pub const fn login_methods(backup_eligible: bool) -> AuthMethods {
    if backup_eligible {
        AuthMethods::SyncedKey
    } else {
        AuthMethods::HardwareKey
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u128) -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_ceremony_is_open_until_it_expires() {
        let start = Timestamp::from_unix_seconds(1_000);
        let expires = start.plus(CEREMONY_TTL);
        assert!(ceremony_open(expires, start));
        assert!(ceremony_open(
            expires,
            expires.minus(Duration::from_millis(1))
        ));
        assert!(!ceremony_open(expires, expires));
    }

    #[test]
    fn names_default_trim_and_are_bounded() {
        assert_eq!(passkey_name(None).unwrap(), "Passkey");
        assert_eq!(passkey_name(Some("   ")).unwrap(), "Passkey");
        assert_eq!(passkey_name(Some(" Laptop ")).unwrap(), "Laptop");
        let longest = "é".repeat(NAME_MAX_CHARS);
        assert_eq!(passkey_name(Some(&longest)).unwrap(), longest);
        assert_eq!(
            passkey_name(Some(&"a".repeat(NAME_MAX_CHARS + 1))),
            Err(PasskeyNameError::TooLong)
        );
        assert_eq!(
            passkey_name(Some("a\nb")),
            Err(PasskeyNameError::ControlCharacter)
        );
    }

    #[test]
    fn a_counter_must_grow_once_either_side_is_non_zero() {
        assert!(counter_grew(0, 0), "no counter kept");
        assert!(counter_grew(0, 1));
        assert!(counter_grew(7, 8));
        assert!(!counter_grew(7, 7), "a clone used the same value");
        assert!(!counter_grew(7, 3));
        assert!(!counter_grew(7, 0), "a counter cannot be switched off");
    }

    #[test]
    fn a_login_needs_the_credentials_user_and_a_growing_counter() {
        let stored = StoredPasskey {
            user: user(1),
            counter: 4,
        };
        let good = Assertion {
            counter: 5,
            backup_eligible: false,
            user: Some(user(1)),
        };
        assert_eq!(judge_login(stored, good), Ok(AuthMethods::HardwareKey));
        let synced = Assertion {
            backup_eligible: true,
            ..good
        };
        assert_eq!(judge_login(stored, synced), Ok(AuthMethods::SyncedKey));
        for user in [Some(user(2)), None] {
            assert_eq!(
                judge_login(stored, Assertion { user, ..good }),
                Err(PasskeyRefusal::WrongUser)
            );
        }
        assert_eq!(
            judge_login(stored, Assertion { counter: 4, ..good }),
            Err(PasskeyRefusal::CounterDidNotGrow)
        );
    }
}
