//! The password policy (NIST SP 800-63B): length only, every character counts.

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    /// More than [`MAX_PASSWORD_CHARS`] characters.
    #[error("a password may have at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
}

/// Shortest accepted password, in Unicode scalar values.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in Unicode scalar values.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Checks a new password against the policy ([`MIN_PASSWORD_CHARS`] to
/// [`MAX_PASSWORD_CHARS`] Unicode scalar values).
///
/// # Errors
/// [`PasswordPolicyError`] naming the violated bound.
pub fn check_password_policy(password: &str) -> Result<(), PasswordPolicyError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Err(PasswordPolicyError::TooShort)
    } else if chars > MAX_PASSWORD_CHARS {
        Err(PasswordPolicyError::TooLong)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_characters_not_bytes() {
        assert_eq!(
            check_password_policy("ééééééé"),
            Err(PasswordPolicyError::TooShort)
        );
        assert!(check_password_policy("éééééééé").is_ok());
        assert!(check_password_policy(&"ü".repeat(1024)).is_ok());
        assert_eq!(
            check_password_policy(&"a".repeat(1025)),
            Err(PasswordPolicyError::TooLong)
        );
    }
}
