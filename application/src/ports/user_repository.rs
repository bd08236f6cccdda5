//! Where users are kept.

use async_trait::async_trait;
use domain::{PasswordHash, SessionId, Timestamp, User, UserId, Username};

/// Why a user could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    /// The case-folded username is taken.
    #[error("username taken")]
    Duplicate,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Persistent users, looked up case-insensitively by username.
#[async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new user.
    ///
    /// # Errors
    /// [`InsertUserError::Duplicate`] when a user with the same canonical
    /// username exists (also under a concurrent insert); `Unexpected` otherwise.
    async fn insert(&self, user: &User) -> Result<(), InsertUserError>;

    /// Finds a user by the canonical form of `username`.
    ///
    /// # Errors
    /// Storage failures.
    async fn find_by_username(&self, username: &Username) -> anyhow::Result<Option<User>>;

    /// Finds a user by id.
    ///
    /// # Errors
    /// Storage failures.
    async fn find_by_id(&self, id: UserId) -> anyhow::Result<Option<User>>;

    /// Replaces a user's password hash (a new password, or the upgrade to
    /// argon2id) at `now` (the row's `updated_at`).
    ///
    /// # Errors
    /// Storage failures.
    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: Timestamp,
    ) -> anyhow::Result<()>;

    /// Deletes a user and everything kept about them but the audit trail,
    /// in one transaction: their sessions and refresh tokens, their
    /// failed-login counters, the user row. The sessions that had not ended
    /// are remembered as revoked at `now` (the revocation feed still hands
    /// them out, so every process refuses their access tokens until they
    /// expire). Returns those sessions, or `None` when there is no such user.
    ///
    /// # Errors
    /// Storage failures (nothing is deleted then).
    async fn delete(&self, id: UserId, now: Timestamp) -> anyhow::Result<Option<Vec<SessionId>>>;
}
