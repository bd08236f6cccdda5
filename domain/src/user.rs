//! Users and usernames.

use uuid::Uuid;

use crate::time::Timestamp;

/// A user's stable identifier (a UUID, shown on the wire as a string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Uuid);

impl UserId {
    /// Wraps an id that was generated elsewhere (randomness comes in as a value).
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID behind this id.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a string is not a username.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Fewer than [`Username::MIN_LEN`] or more than [`Username::MAX_LEN`] characters.
    #[error(
        "a username has {} to {} characters",
        Username::MIN_LEN,
        Username::MAX_LEN
    )]
    Length,
    /// A character outside `A-Z a-z 0-9 _ . -`.
    #[error("a username may only contain letters A-Z, digits and _ . -")]
    Character,
}

/// A username as the user typed it, checked: 3 to 64 of `A-Za-z0-9_.-`.
///
/// Two usernames are the same user when their [`Username::canonical`] forms are
/// equal (case-insensitive), while the display form keeps the user's casing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Shortest accepted username, in characters.
    pub const MIN_LEN: usize = 3;
    /// Longest accepted username, in characters.
    pub const MAX_LEN: usize = 64;
    /// The policy as a regular expression, for the OpenAPI document.
    pub const PATTERN: &'static str = "^[A-Za-z0-9_.-]{3,64}$";

    /// Parses a username.
    ///
    /// # Errors
    /// [`UsernameError`] when the length or a character is out of policy.
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        // Only ASCII is allowed, so bytes and characters coincide once that holds.
        if !raw.chars().all(is_username_char) {
            return Err(UsernameError::Character);
        }
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&raw.len()) {
            return Err(UsernameError::Length);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The username as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and lookups use ([`fold_name`]).
    pub fn canonical(&self) -> String {
        fold_name(&self.0)
    }
}

/// The one case-fold of usernames: ASCII letters to lower case, everything
/// else kept. Usernames are ASCII, so this is what makes `Alice` and `alice`
/// one user; a typed name that is not a username (kept as a pseudonym, or
/// in an audit event) is folded the same way, so that its attempts group
/// with those of the same name in other cases.
pub fn fold_name(typed: &str) -> String {
    typed.to_ascii_lowercase()
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// A stored password hash as a PHC (or bcrypt modular-crypt) string.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a hash string produced by a hasher or read from storage.
    pub fn new(encoded: impl Into<String>) -> Self {
        Self(encoded.into())
    }

    /// The encoded hash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The algorithm prefix is useful in logs; the hash itself is not for them.
        let scheme = self.0.split('$').nth(1).unwrap_or("?");
        write!(f, "PasswordHash(${scheme}$[redacted])")
    }
}

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub id: UserId,
    /// Username as registered.
    pub username: Username,
    /// Current password hash.
    pub password_hash: PasswordHash,
    /// When the account was created.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in ["abc", "A_b.c-9", &"x".repeat(64)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_lengths_and_characters() {
        assert_eq!(Username::parse("ab"), Err(UsernameError::Length));
        assert_eq!(Username::parse(&"x".repeat(65)), Err(UsernameError::Length));
        assert_eq!(Username::parse(""), Err(UsernameError::Length));
        for bad in ["ab c", "ab@c", "abc\u{e9}", "abc\0", "abc/"] {
            assert_eq!(
                Username::parse(bad),
                Err(UsernameError::Character),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_pattern_states_the_policy() {
        let bounds = format!("{{{},{}}}$", Username::MIN_LEN, Username::MAX_LEN);
        assert!(
            Username::PATTERN.ends_with(&bounds),
            "{}",
            Username::PATTERN
        );
        for c in ['A', 'z', '0', '_', '.', '-'] {
            assert!(is_username_char(c));
        }
    }

    #[test]
    fn canonical_form_is_case_insensitive() {
        let a = Username::parse("Alice").unwrap();
        let b = Username::parse("aLICE").unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.as_str(), "Alice");
    }

    #[test]
    fn password_hash_debug_is_redacted() {
        let h = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
        let shown = format!("{h:?}");
        assert!(shown.contains("argon2id"));
        assert!(!shown.contains("aGFzaA"));
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_policy(s in "\\PC{0,80}") {
            let expected = (3..=64).contains(&s.len()) && s.chars().all(is_username_char);
            prop_assert_eq!(Username::parse(&s).is_ok(), expected);
        }
    }
}
