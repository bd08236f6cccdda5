//! The signed-in user's account: changing the password, deleting the account.
//!
//! Every operation here asks for the password again, and checks it through
//! the login throttle (the same counter as a login for that user from that
//! address): a stolen access token must not become a way to guess the
//! password faster than the login form allows.

use std::time::Duration;

use domain::{
    AccessClaims, PasswordPolicyError, RevokeReason, SessionId, Timestamp, User,
    check_password_policy,
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::ports::{
    Overloaded, PasswordCheck, SecurityEvent, SecurityEventKind, SecurityEvents, ThrottleKey,
    UserRepository,
};
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

    /// Deletes the caller's account: `password` must be theirs (checked
    /// through the login throttle). Every session ends (their WebSocket
    /// connections close), and the user's rows go in one transaction; the
    /// audit trail keeps its events and records the deletion. The name can
    /// be registered again, as a new user.
    ///
    /// # Errors
    /// See [`AccountError`] (never `WeakPassword`).
    #[tracing::instrument(skip_all, fields(user = %caller.sub, session = %caller.sid))]
    pub async fn delete_account(
        &self,
        caller: &AccessClaims,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        let user = self.check_own_password(caller, password, client).await?;
        let ended = erase_user(
            self.ports.users.as_ref(),
            self.ports.events.as_ref(),
            self.ports.clock.now(),
            &user,
            client,
        )
        .await?;
        // At once here; the revocation feed would bring it within its poll.
        self.announce_revoked(&ended).await;
        Ok(())
    }

    /// Checks that `password` is the caller's, as a login would: a place in
    /// the hashing queue, a slot of the login throttle for (user, client
    /// address) taken before the check and kept on a failure, the same
    /// timing; a success clears the user's failures from that address.
    pub(crate) async fn check_own_password(
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
        let key = ThrottleKey::new(username.clone(), client);
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

/// Deletes `user` with everything kept about them but the audit trail, and
/// records the deletion there; returns the sessions that ended. The
/// revocation feed reports those sessions to every process within its poll
/// (the API also announces them at once; `authd user delete` cannot).
///
/// # Errors
/// [`AccountError::UserGone`] when it was deleted meanwhile; storage failures.
pub(crate) async fn erase_user(
    users: &dyn UserRepository,
    events: &dyn SecurityEvents,
    now: Timestamp,
    user: &User,
    client: &ClientInfo,
) -> Result<Vec<SessionId>, AccountError> {
    let ended = users
        .delete(user.id, now)
        .await?
        .ok_or(AccountError::UserGone)?;
    tracing::info!(user = %user.id, sessions = ended.len(), "account deleted");
    let event = SecurityEvent::new(SecurityEventKind::AccountDeleted, now, client)
        .user(user.id)
        .username(&user.username.canonical())
        .revoked(ended.len());
    if let Err(e) = events.record(&event).await {
        tracing::error!(error = ?e, kind = event.kind.as_str(), "could not record a security event");
    }
    Ok(ended)
}
