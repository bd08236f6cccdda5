//! TOTP secrets and codes (RFC 6238), for two-factor login. The adapter
//! makes the secret, seals it before it leaves (the store only ever holds
//! the sealed form, keyed by a server secret that is not in the database),
//! and computes codes; which steps a code may match is `domain::totp`'s.

use domain::UserId;
use secrecy::SecretString;

/// A new TOTP secret: sealed for the store, readable for the user's
/// authenticator app (shown once, at enrolment).
pub struct NewTotpSecret {
    /// The secret sealed for `user` (what the store keeps).
    pub sealed: Vec<u8>,
    /// The secret in base32, as authenticator apps take it typed in.
    pub base32: SecretString,
    /// The `otpauth://totp/...` URI (the QR code's content).
    pub uri: SecretString,
}

impl std::fmt::Debug for NewTotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewTotpSecret([redacted])")
    }
}

/// Makes TOTP secrets and checks codes against sealed ones.
pub trait TotpCodes: Send + Sync + 'static {
    /// A new random secret for `user`, whose authenticator app shows it as
    /// `account` (the username) under `issuer`.
    ///
    /// # Errors
    /// The random number generator failed.
    fn generate(&self, user: UserId, issuer: &str, account: &str) -> anyhow::Result<NewTotpSecret>;

    /// The first of `steps` at which `typed` is the code of the secret
    /// `sealed` for `user`; `None` when it matches none (compared in
    /// constant time).
    ///
    /// # Errors
    /// The sealed secret does not open (another server secret, or altered).
    fn matching_step(
        &self,
        user: UserId,
        sealed: &[u8],
        steps: &[u64],
        typed: &str,
    ) -> anyhow::Result<Option<u64>>;
}
