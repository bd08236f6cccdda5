//! The signed-in user's account: changing the password.
//!
//! Every operation here asks for the password again, and checks it through
//! the login throttle (the same counter as a login for that user from that
//! address): a stolen access token must not become a way to guess the
//! password faster than the login form allows.

use std::time::Duration;

use domain::{AccessClaims, PasswordPolicyError, RevokeReason, User, check_password_policy};
use secrecy::{ExposeSecret as _, SecretString};

use crate::ports::{Overloaded, PasswordCheck, SecurityEvent, SecurityEventKind, ThrottleKey};
use crate::{AuthService, ClientInfo};

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The password presented is not the user's.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The new password is out of policy.
    #[error(transparent)]
    WeakPassword(#[from] PasswordPolicyError),
    /// Too many wrong passwords for this user from this client.
    #[error("too many failed password checks")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// The token's user no longer exists.
    #[error("no such user")]
    UserGone,
    /// The password-hashing queue is full.
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl AuthService {
    /// Changes the caller's password: `current` must be theirs (checked
    /// through the login throttle), `new` must pass the password policy and
    /// is stored as argon2id. Every other session of the user ends (reason
    /// `password_changed`, their WebSocket connections close); the caller's
    /// session stays.
    ///
    /// # Errors
    /// See [`AccountError`].
    #[tracing::instrument(skip_all, fields(user = %caller.sub, session = %caller.sid))]
    pub async fn change_password(
        &self,
        caller: &AccessClaims,
        current: SecretString,
        new: SecretString,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        // The policy first: refusing a weak password needs no password check.
        check_password_policy(new.expose_secret())?;
        let user = self.check_own_password(caller, current, client).await?;
        let ticket = self.ports.hasher.reserve()?;
        let hash = self.ports.hasher.hash(ticket, new).await?;
        self.ports
            .users
            .update_password_hash(user.id, &hash)
            .await?;
        let now = self.ports.clock.now();
        let revoked = self
            .ports
            .sessions
            .revoke_all_for_user(
                user.id,
                Some(caller.sid),
                RevokeReason::PasswordChanged,
                now,
            )
            .await?;
        tracing::info!(user = %user.id, sessions = revoked.len(), "password changed");
        self.announce_revoked(&revoked).await;
        self.report(
            SecurityEvent::new(SecurityEventKind::PasswordChanged, now, client)
                .user(user.id)
                .username(&user.username.canonical())
                .session(caller.sid)
                .revoked(revoked.len()),
        )
        .await;
        Ok(())
    }

    /// Checks that `password` is the caller's, as a login would: a place in
    /// the hashing queue, a slot of the login throttle for (user, client
    /// address) taken before the check and kept on a failure, the same
    /// timing; a success clears the user's failures from that address.
    async fn check_own_password(
        &self,
        caller: &AccessClaims,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<User, AccountError> {
        let ticket = self.ports.hasher.reserve()?;
        let now = self.ports.clock.now();
        let user = self
            .ports
            .users
            .find_by_id(caller.sub)
            .await?
            .ok_or(AccountError::UserGone)?;
        let username = user.username.canonical();
        let event = |kind| {
            SecurityEvent::new(kind, now, client)
                .user(user.id)
                .username(&username)
                .session(caller.sid)
        };
        let key = ThrottleKey {
            username: username.clone(),
            client: client.ip.clone().unwrap_or_else(|| "unknown".into()),
        };
        if let Some(retry_after) = self.ports.throttle.take_slot(&key, now).await? {
            self.report(event(SecurityEventKind::LoginThrottled)).await;
            return Err(AccountError::RateLimited { retry_after });
        }
        let check = self
            .ports
            .hasher
            .verify(ticket, password, user.password_hash.clone())
            .await?;
        if !matches!(check, PasswordCheck::Match { .. }) {
            self.report(event(SecurityEventKind::PasswordCheckFailed))
                .await;
            return Err(AccountError::InvalidCredentials);
        }
        self.ports.throttle.clear(&key).await?;
        Ok(user)
    }
}
