//! Register a user.

use domain::{PasswordPolicyError, User, UserId, Username, UsernameError, check_password_policy};
use secrecy::{ExposeSecret, SecretString};

use crate::AuthService;
use crate::ports::{InsertUserError, Overloaded};

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// `ALLOW_REGISTRATION=false`.
    #[error("registration is closed")]
    Closed,
    /// The username is out of policy.
    #[error(transparent)]
    InvalidUsername(#[from] UsernameError),
    /// The password is out of policy.
    #[error(transparent)]
    WeakPassword(#[from] PasswordPolicyError),
    /// The (case-folded) username is taken.
    #[error("username taken")]
    UsernameTaken,
    /// The password-hashing queue is full.
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl AuthService {
    /// Registers `username` with `password` (hashed with argon2id).
    ///
    /// # Errors
    /// See [`RegisterError`].
    #[tracing::instrument(skip(self, password))]
    pub async fn register(
        &self,
        username: &str,
        password: SecretString,
    ) -> Result<User, RegisterError> {
        self.create_user(username, password, true).await
    }

    /// Adds a user whether or not registration is open (the `authd user add` command).
    ///
    /// # Errors
    /// See [`RegisterError`]; never `Closed`.
    #[tracing::instrument(skip(self, password))]
    pub async fn add_user(
        &self,
        username: &str,
        password: SecretString,
    ) -> Result<User, RegisterError> {
        self.create_user(username, password, false).await
    }

    async fn create_user(
        &self,
        username: &str,
        password: SecretString,
        public: bool,
    ) -> Result<User, RegisterError> {
        if public && !self.config.allow_registration {
            return Err(RegisterError::Closed);
        }
        let username = Username::parse(username)?;
        check_password_policy(password.expose_secret())?;
        let ticket = self.ports.hasher.reserve()?;
        let password_hash = self.ports.hasher.hash(ticket, password).await?;
        let user = User {
            id: UserId::from_uuid(self.ports.random.uuid()),
            username,
            password_hash,
            created_at: self.ports.clock.now(),
        };
        match self.ports.users.insert(&user).await {
            Ok(()) => Ok(user),
            Err(InsertUserError::Duplicate) => Err(RegisterError::UsernameTaken),
            Err(InsertUserError::Unexpected(e)) => Err(RegisterError::Unexpected(e)),
        }
    }
}
