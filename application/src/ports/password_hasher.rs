//! Password hashing (slow by design: implementations run off the async threads).

use std::time::Duration;

use async_trait::async_trait;
use domain::PasswordHash;
use secrecy::SecretString;

/// A place in the queue of the hashing threads ([`PasswordHasher::reserve`]).
///
/// A request that hashes takes one before anything else, so a request shed
/// for overload has done nothing (taken no login-throttle slot, written
/// nothing). Dropping it gives the place back.
pub struct HashTicket {
    _place: Box<dyn Send + Sync>,
}

impl HashTicket {
    /// A ticket holding `place` (whatever the hasher releases on drop).
    pub fn new(place: impl Send + Sync + 'static) -> Self {
        Self {
            _place: Box::new(place),
        }
    }
}

impl std::fmt::Debug for HashTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashTicket")
    }
}

/// The hashing queue is full (`503 overloaded`): the work is shed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is saturated; retry in {retry_after:?}")]
pub struct Overloaded {
    /// When a place is likely to be free.
    pub retry_after: Duration,
}

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
    /// Takes a place in the queue (`PASSWORD_QUEUE_LIMIT` places), or says
    /// the queue is full.
    ///
    /// # Errors
    /// [`Overloaded`] when every place is taken.
    fn reserve(&self) -> Result<HashTicket, Overloaded>;

    /// Hashes a new password with the current algorithm, in `ticket`'s place.
    ///
    /// # Errors
    /// The hasher failed (not for any password the policy allows).
    async fn hash(
        &self,
        ticket: HashTicket,
        password: SecretString,
    ) -> anyhow::Result<PasswordHash>;

    /// Checks `password` against `hash`, in `ticket`'s place, in a time that
    /// tells neither where they differ nor which scheme the hash uses.
    ///
    /// # Errors
    /// The hasher failed to run.
    async fn verify(
        &self,
        ticket: HashTicket,
        password: SecretString,
        hash: PasswordHash,
    ) -> anyhow::Result<PasswordCheck>;

    /// A valid hash of an unguessable password with the current parameters,
    /// checked for unknown users so that their login costs as much as a real one.
    fn dummy_hash(&self) -> PasswordHash;
}
