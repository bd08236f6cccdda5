//! The signed-in user's account: what it is, changing the password,
//! deleting the account. Both changes ask for the caller again first (see
//! `reauthentication`); managing the second factor is `two_factor`'s.

use std::sync::Arc;
use std::time::Duration;

use domain::{
    AccessClaims, PasswordPolicyError, RevokeReason, SessionId, Timestamp, User,
    check_password_policy,
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::ports::security_events::report;
use crate::ports::{
    Clock, MailStore, MfaStore, Overloaded, PasskeyStore, PasswordHasher, SecurityEvent,
    SecurityEventKind, SecurityEvents, SessionStore, UserRepository,
};
use crate::second_factor::SecondFactor;
use crate::{ClientInfo, Revocations};

use super::reauthentication::{Reauthentication, event};

/// The account operations, on exactly the ports they need.
#[derive(Clone)]
pub struct Account {
    /// Asks for the caller again before a change.
    pub reauth: Reauthentication,
    /// The user; the new password hash; the deletion.
    pub users: Arc<dyn UserRepository>,
    /// Hashes a new password.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Ends the other sessions at a password change.
    pub sessions: Arc<dyn SessionStore>,
    /// Tells every process of the sessions that ended.
    pub revocations: Revocations,
    /// Ends outstanding `mfaToken`s at a password change.
    pub mfa: Arc<dyn MfaStore>,
    /// How many passkeys the account has.
    pub passkeys: Arc<dyn PasskeyStore>,
    /// The account's address.
    pub mail: Arc<dyn MailStore>,
    /// The audit trail (a deletion is recorded there).
    pub events: Arc<dyn SecurityEvents>,
    /// Now.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").finish_non_exhaustive()
    }
}

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
    /// Two-factor login is on and the session began without it: a code or
    /// a recovery code is needed, and none or a wrong one came.
    #[error("a second factor is needed")]
    InvalidCode,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The caller's account as `GET /api/account` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// The user (its password hash stays inside the service).
    pub user: User,
    /// Whether two-factor login by TOTP is on.
    pub totp: bool,
    /// Registered passkeys.
    pub passkeys: u32,
    /// The address it shows, and whether it is verified
    /// (`domain::email::account_address`).
    pub email: Option<(String, bool)>,
}

impl Account {
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
        proof: Option<SecondFactor>,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        // The policy first: refusing a weak password needs no password check.
        check_password_policy(new.expose_secret())?;
        let user = self
            .reauth
            .reauthenticate(caller, current, proof, client)
            .await?;
        let ticket = self.hasher.reserve()?;
        let hash = self.hasher.hash(ticket, new).await?;
        let now = self.clock.now();
        self.users.update_password_hash(user.id, &hash, now).await?;
        let revoked = self
            .sessions
            .revoke_all_for_user(
                user.id,
                Some(caller.sid),
                RevokeReason::PasswordChanged,
                now,
            )
            .await?;
        // A login that got as far as the old password must not finish.
        self.mfa.end_challenges_of(user.id).await?;
        tracing::info!(user = %user.id, sessions = revoked.len(), "password changed");
        self.revocations.announce(&revoked).await;
        let event = event(
            SecurityEventKind::PasswordChanged,
            &user,
            caller,
            now,
            client,
        );
        self.reauth.report(event.revoked(revoked.len())).await;
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
    pub async fn delete(
        &self,
        caller: &AccessClaims,
        password: SecretString,
        proof: Option<SecondFactor>,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        let user = self
            .reauth
            .reauthenticate(caller, password, proof, client)
            .await?;
        let ended = erase_user(
            self.users.as_ref(),
            self.events.as_ref(),
            self.clock.now(),
            &user,
            client,
        )
        .await?;
        // At once here; the revocation feed would bring it within its poll.
        self.revocations.announce(&ended).await;
        Ok(())
    }

    /// The caller's account: who they are and their second factors.
    ///
    /// # Errors
    /// [`AccountError::UserGone`]; storage failures.
    #[tracing::instrument(skip_all, fields(user = %caller.sub))]
    pub async fn view(&self, caller: &AccessClaims) -> Result<AccountView, AccountError> {
        let user = self
            .users
            .find_by_id(caller.sub)
            .await?
            .ok_or(AccountError::UserGone)?;
        let totp = self.reauth.two_factor_on(user.id).await?;
        let passkeys = self.passkeys.count(user.id).await?;
        let verified = self.mail.verified_address(user.id).await?;
        let pending = match verified {
            Some(_) => None,
            None => self.mail.pending_address(user.id, self.clock.now()).await?,
        };
        let email = domain::email::account_address(verified.as_deref(), pending.as_deref())
            .map(|(address, verified)| (address.to_owned(), verified));
        Ok(AccountView {
            user,
            totp,
            passkeys: u32::try_from(passkeys).unwrap_or(u32::MAX),
            email,
        })
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
    report(events, event).await;
    Ok(ended)
}
