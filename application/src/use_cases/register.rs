//! Register a user.

use domain::{PasswordPolicyError, User, UserId, Username, UsernameError, check_password_policy};
use secrecy::{ExposeSecret, SecretString};

use std::sync::Arc;

use crate::ClientInfo;
use crate::ports::security_events::report;
use crate::ports::{
    Clock, InsertUserError, MfaStore, Overloaded, PasswordHasher, RandomSource, SecurityEvent,
    SecurityEventKind, SecurityEvents, UserRepository,
};

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

/// Creating users, on exactly the ports it needs: the `authd user add`
/// command opens these and nothing else (no keys, no revocation feed).
#[derive(Clone)]
pub struct UserAccounts {
    /// Where users are stored.
    pub users: Arc<dyn UserRepository>,
    /// Hashes the password.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Stamps `created_at`.
    pub clock: Arc<dyn Clock>,
    /// Makes the user id.
    pub random: Arc<dyn RandomSource>,
    /// The audit trail (a deletion is recorded there).
    pub events: Arc<dyn SecurityEvents>,
    /// Two-factor login's state (an operator may turn it off).
    pub mfa: Arc<dyn MfaStore>,
}

impl std::fmt::Debug for UserAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAccounts").finish_non_exhaustive()
    }
}

impl UserAccounts {
    /// Adds `username` with `password` (hashed with argon2id), whether or
    /// not registration is open.
    ///
    /// # Errors
    /// See [`RegisterError`]; never `Closed`.
    #[tracing::instrument(skip(self, password))]
    pub async fn add(&self, username: &str, password: SecretString) -> Result<User, RegisterError> {
        let username = Username::parse(username)?;
        check_password_policy(password.expose_secret())?;
        let ticket = self.hasher.reserve()?;
        let password_hash = self.hasher.hash(ticket, password).await?;
        let user = User {
            id: UserId::from_uuid(self.random.uuid()),
            username,
            password_hash,
            created_at: self.clock.now(),
        };
        match self.users.insert(&user).await {
            Ok(()) => Ok(user),
            Err(InsertUserError::Duplicate) => Err(RegisterError::UsernameTaken),
            Err(InsertUserError::Unexpected(e)) => Err(RegisterError::Unexpected(e)),
        }
    }

    /// Deletes the user named `username` with everything kept about them
    /// but the audit trail (`authd user delete`); their sessions end, and
    /// every process hears of it within its revocation poll. `Ok(None)`
    /// when no user has that name.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(skip(self))]
    pub async fn delete(&self, username: &str) -> anyhow::Result<Option<(User, usize)>> {
        let Some(user) = self.named(username).await? else {
            return Ok(None);
        };
        let operator = operator("authd user delete");
        match super::account::erase_user(
            self.users.as_ref(),
            self.events.as_ref(),
            self.clock.now(),
            &user,
            &operator,
        )
        .await
        {
            Ok(ended) => Ok(Some((user, ended.len()))),
            Err(super::AccountError::UserGone) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e)),
        }
    }

    /// The user named `username`, if the name is valid and taken.
    async fn named(&self, username: &str) -> anyhow::Result<Option<User>> {
        match Username::parse(username) {
            Ok(name) => self.users.find_by_username(&name).await,
            Err(_) => Ok(None),
        }
    }

    /// Turns two-factor login off for the user named `username` (`authd user
    /// reset-mfa`, for a user who lost both the authenticator and the
    /// recovery codes): the TOTP secret and the recovery codes are deleted,
    /// the audit trail records `mfa_disabled`. Sessions go on. `Ok(None)`
    /// when no user has that name; `Some((user, false))` when two-factor
    /// login was off.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(skip(self))]
    pub async fn reset_two_factor(&self, username: &str) -> anyhow::Result<Option<(User, bool)>> {
        let Some(user) = self.named(username).await? else {
            return Ok(None);
        };
        if !self.mfa.remove_totp(user.id).await? {
            return Ok(Some((user, false)));
        }
        self.mfa.end_challenges_of(user.id).await?;
        let operator = operator("authd user reset-mfa");
        let event = SecurityEvent::new(SecurityEventKind::MfaDisabled, self.clock.now(), &operator)
            .user(user.id)
            .username(&user.username.canonical());
        report(self.events.as_ref(), event).await;
        Ok(Some((user, true)))
    }
}

/// The "client" an operator command's audit events name.
fn operator(command: &str) -> ClientInfo {
    ClientInfo {
        ip: None,
        user_agent: Some(command.to_owned()),
        key: None,
    }
}

/// Registration (`POST /api/register`): [`UserAccounts::add`] while
/// `ALLOW_REGISTRATION` is on.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Creates the user.
    pub accounts: UserAccounts,
    /// `ALLOW_REGISTRATION`.
    pub open: bool,
}

impl Registration {
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
        if !self.open {
            return Err(RegisterError::Closed);
        }
        self.accounts.add(username, password).await
    }
}
