//! Password hashing (slow by design: implementations run off the async threads).

use async_trait::async_trait;
use domain::PasswordHash;
use secrecy::SecretString;

/// Result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Wrong password (or a hash in a format nobody can check).
    Mismatch,
    /// Right password; `needs_rehash` when the hash is not the current
    /// algorithm and parameters (e.g. imported bcrypt or PBKDF2).
    Match {
        /// Upgrade the stored hash.
        needs_rehash: bool,
    },
}

/// Hashes and verifies passwords.
#[async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// Hashes a new password with the current algorithm.
    ///
    /// # Errors
    /// The hasher failed (not for any password the policy allows).
    async fn hash(&self, password: SecretString) -> anyhow::Result<PasswordHash>;

    /// Checks `password` against `hash`, in time independent of where they differ.
    ///
    /// # Errors
    /// The hasher failed to run.
    async fn verify(
        &self,
        password: SecretString,
        hash: PasswordHash,
    ) -> anyhow::Result<PasswordCheck>;

    /// A valid hash of an unguessable password with the current parameters,
    /// checked for unknown users so that their login costs as much as a real one.
    fn dummy_hash(&self) -> PasswordHash;
}
