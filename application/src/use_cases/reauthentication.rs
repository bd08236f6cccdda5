//! Asking a signed-in caller again before a change to what protects the
//! account: the password, checked through the login throttle (the same
//! counter as a login for that user from that address), and, where the
//! contract asks, a second factor. A stolen access token must not become a
//! way to guess the password, or codes, faster than the login form allows.

use std::sync::Arc;
use std::time::Duration;

use domain::{AccessClaims, Timestamp, User, UserId};
use secrecy::SecretString;

use crate::ClientInfo;
use crate::ports::security_events::report;
use crate::ports::{
    Clock, LoginThrottle, MfaStore, PasswordCheck, PasswordHasher, SecurityEvent,
    SecurityEventKind, SecurityEvents, ThrottleKey, TotpCodes, UserRepository,
};
use crate::second_factor::{SecondFactor, use_second_factor};

use super::account::AccountError;

/// The re-authentication of account changes, on the ports it needs.
#[derive(Clone)]
pub struct Reauthentication {
    /// The caller's user.
    pub users: Arc<dyn UserRepository>,
    /// Checks the password.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Counts wrong passwords and codes as a login does.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Whether two-factor login is on; the codes' steps and recovery codes.
    pub mfa: Arc<dyn MfaStore>,
    /// Checks TOTP codes.
    pub totp: Arc<dyn TotpCodes>,
    /// The audit trail and the outcome metrics.
    pub events: Arc<dyn SecurityEvents>,
    /// Now.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Reauthentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reauthentication").finish_non_exhaustive()
    }
}

impl Reauthentication {
    /// What a password change and an account deletion ask: the password,
    /// and a second factor while two-factor login is on and the session
    /// began without one (`domain::totp::code_needed_for_account_change`).
    /// As when turning it off, a right password then only gives its
    /// throttle slot back, and only the right code clears the failures.
    pub(crate) async fn reauthenticate(
        &self,
        caller: &AccessClaims,
        password: SecretString,
        proof: Option<SecondFactor>,
        client: &ClientInfo,
    ) -> Result<User, AccountError> {
        let two_factor_on = self.two_factor_on(caller.sub).await?;
        if !domain::totp::code_needed_for_account_change(two_factor_on, caller.amr) {
            return self
                .check_own_password(caller, password, client, OnSuccess::Clear)
                .await;
        }
        let user = self
            .check_own_password(caller, password, client, OnSuccess::Release)
            .await?;
        let Some(proof) = proof else {
            return Err(AccountError::InvalidCode);
        };
        self.check_second_factor(&user, caller, &proof, client)
            .await?;
        Ok(user)
    }

    /// Checks `proof`, a second factor of `user`, through the login
    /// throttle: a slot of the account's second factors from every address
    /// and one of (user, address) are taken first and kept on a wrong one
    /// (audited `mfa_failed`); a right one is used (a code's step, a
    /// recovery code) and clears both.
    ///
    /// # Errors
    /// `RateLimited`, `InvalidCode`; storage failures.
    pub(crate) async fn check_second_factor(
        &self,
        user: &User,
        caller: &AccessClaims,
        proof: &SecondFactor,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        let now = self.clock.now();
        // The account's window of second factors from every address first,
        // as at login.
        let account = ThrottleKey::second_factors_of(user.username.canonical());
        if let Some(retry_after) = self.throttle.take_slot(&account, now).await? {
            let kind = SecurityEventKind::SecondFactorLocked;
            self.report(event(kind, user, caller, now, client)).await;
            return Err(AccountError::RateLimited { retry_after });
        }
        let key = ThrottleKey::new(user.username.canonical(), client);
        if let Some(retry_after) = self.take_slot(&key, user, caller, now, client).await? {
            self.throttle.release(&account).await?;
            return Err(AccountError::RateLimited { retry_after });
        }
        if !use_second_factor(self.mfa.as_ref(), self.totp.as_ref(), user.id, proof, now).await? {
            self.report(event(
                SecurityEventKind::MfaFailed,
                user,
                caller,
                now,
                client,
            ))
            .await;
            return Err(AccountError::InvalidCode);
        }
        self.throttle.clear(&key).await?;
        self.throttle.clear(&account).await?;
        Ok(())
    }

    /// Checks that `password` is the caller's, as a login would: a place in
    /// the hashing queue, a slot of the login throttle for (user, client
    /// address) taken before the check and kept on a failure, the same
    /// timing; a success clears the user's failures from that address, or
    /// only gives its slot back when a second factor is still to come.
    pub(crate) async fn check_own_password(
        &self,
        caller: &AccessClaims,
        password: SecretString,
        client: &ClientInfo,
        on_success: OnSuccess,
    ) -> Result<User, AccountError> {
        let ticket = self.hasher.reserve()?;
        let now = self.clock.now();
        let user = self
            .users
            .find_by_id(caller.sub)
            .await?
            .ok_or(AccountError::UserGone)?;
        let key = ThrottleKey::new(user.username.canonical(), client);
        if let Some(retry_after) = self.take_slot(&key, &user, caller, now, client).await? {
            return Err(AccountError::RateLimited { retry_after });
        }
        let check = self
            .hasher
            .verify(ticket, password, user.password_hash.clone())
            .await?;
        if !matches!(check, PasswordCheck::Match { .. }) {
            let kind = SecurityEventKind::PasswordCheckFailed;
            self.report(event(kind, &user, caller, now, client)).await;
            return Err(AccountError::InvalidCredentials);
        }
        match on_success {
            OnSuccess::Clear => self.throttle.clear(&key).await?,
            OnSuccess::Release => self.throttle.release(&key).await?,
        }
        Ok(user)
    }

    /// A slot of the login throttle for `key`, as at login: `Some` (and the
    /// audited `login_throttled`) when the window's slots are taken.
    pub(crate) async fn take_slot(
        &self,
        key: &ThrottleKey,
        user: &User,
        caller: &AccessClaims,
        now: Timestamp,
        client: &ClientInfo,
    ) -> anyhow::Result<Option<Duration>> {
        let refused = self.throttle.take_slot(key, now).await?;
        if refused.is_some() {
            let event = event(SecurityEventKind::LoginThrottled, user, caller, now, client);
            self.report(event).await;
        }
        Ok(refused)
    }

    /// Whether `user` logs in with two factors (a confirmed TOTP secret).
    pub(crate) async fn two_factor_on(&self, user: UserId) -> anyhow::Result<bool> {
        Ok(self
            .mfa
            .totp(user)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some()))
    }

    /// Every event of an account operation goes out here.
    pub(crate) async fn report(&self, event: SecurityEvent) {
        report(self.events.as_ref(), event).await;
    }
}

/// An event of `kind` about the caller's account.
pub(crate) fn event(
    kind: SecurityEventKind,
    user: &User,
    caller: &AccessClaims,
    now: Timestamp,
    client: &ClientInfo,
) -> SecurityEvent {
    SecurityEvent::new(kind, now, client)
        .user(user.id)
        .username(&user.username.canonical())
        .session(caller.sid)
}

/// What a right password does to the throttle's failures.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OnSuccess {
    /// Clears them: the operation needs nothing more.
    Clear,
    /// Gives this check's slot back only: a second factor is still to be
    /// checked, and only its success clears them.
    Release,
}
