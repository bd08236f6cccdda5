//! The signed-in user's account: changing the password, deleting the
//! account, and turning two-factor login on and off.
//!
//! Every operation that changes what protects the account asks for the
//! password again, and checks it through the login throttle (the same
//! counter as a login for that user from that address): a stolen access
//! token must not become a way to guess the password faster than the login
//! form allows.

use std::sync::Arc;
use std::time::Duration;

use domain::totp::{ENROLMENT_TTL, RECOVERY_CODES, candidate_steps, enrolment_open};
use domain::{
    AccessClaims, PasswordPolicyError, RevokeReason, SessionId, Timestamp, TokenHash, User,
    check_password_policy,
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::ports::security_events::report;
use crate::ports::{
    Clock, LoginThrottle, MfaStore, Overloaded, PasswordCheck, PasswordHasher, RandomSource,
    SecurityEvent, SecurityEventKind, SecurityEvents, SessionStore, ThrottleKey, TotpCodes,
    UserRepository,
};
use crate::second_factor::{
    SecondFactor, code_digits, new_recovery_code, normal_recovery_code, recovery_hash,
    use_second_factor,
};
use crate::{ClientInfo, Revocations};

/// The account operations, on exactly the ports they need.
#[derive(Clone)]
pub struct Account {
    /// The user; the new password hash; the deletion.
    pub users: Arc<dyn UserRepository>,
    /// Checks the password, hashes a new one.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Counts wrong passwords as a login does.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Ends the other sessions at a password change.
    pub sessions: Arc<dyn SessionStore>,
    /// Tells every process of the sessions that ended.
    pub revocations: Revocations,
    /// Two-factor state: the TOTP secret and the recovery codes.
    pub mfa: Arc<dyn MfaStore>,
    /// New TOTP secrets; checks their codes.
    pub totp: Arc<dyn TotpCodes>,
    /// The audit trail and the outcome metrics.
    pub events: Arc<dyn SecurityEvents>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Recovery codes.
    pub random: Arc<dyn RandomSource>,
    /// `JWT_ISSUER`: the issuer an authenticator app shows.
    pub issuer: String,
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

/// A pending enrolment, shown to the user once.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// The secret in base32, to type into an authenticator app.
    pub secret: SecretString,
    /// The `otpauth://` URI, for the QR code.
    pub otpauth_uri: SecretString,
    /// How long the enrolment waits for its confirming code.
    pub expires_in: Duration,
}

/// Whether the caller has two-factor login, for their account page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwoFactorStatus {
    /// When it was turned on; `None` when it is off.
    pub enabled_at: Option<Timestamp>,
    /// Whether an enrolment waits for its confirming code.
    pub pending: bool,
    /// Unused recovery codes (0 when it is off).
    pub recovery_codes_left: u32,
}

/// The caller's account as `GET /api/account` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// The user (its password hash stays inside the service).
    pub user: User,
    /// Whether two-factor login by TOTP is on.
    pub totp: bool,
    /// Registered passkeys (none until passkeys land).
    pub passkeys: u32,
}

/// Why an enrolment, a confirmation or turning two-factor login off was refused.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// Two-factor login is on already.
    #[error("two-factor login is already on")]
    AlreadyEnabled,
    /// No pending enrolment to confirm (none, or it expired), or nothing to
    /// turn off.
    #[error("no such enrolment")]
    NotFound,
    /// The confirming code is not the secret's.
    #[error("wrong code")]
    InvalidCode,
    /// The password presented is not the user's.
    #[error("invalid credentials")]
    InvalidCredentials,
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

impl From<AccountError> for MfaError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::InvalidCredentials => Self::InvalidCredentials,
            AccountError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            AccountError::UserGone => Self::UserGone,
            AccountError::Overloaded(e) => Self::Overloaded(e),
            AccountError::Unexpected(e) => Self::Unexpected(e),
            AccountError::InvalidCode => Self::InvalidCode,
            AccountError::WeakPassword(e) => Self::Unexpected(anyhow::anyhow!(e)),
        }
    }
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
        let user = self.reauthenticate(caller, current, proof, client).await?;
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
        let event = self.event(
            SecurityEventKind::PasswordChanged,
            &user,
            caller,
            now,
            client,
        );
        self.report(event.revoked(revoked.len())).await;
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
        let user = self.reauthenticate(caller, password, proof, client).await?;
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
        let totp = self.has_two_factor(&user).await?;
        Ok(AccountView {
            user,
            totp,
            passkeys: 0,
        })
    }

    /// Whether the caller has two-factor login on, an enrolment pending, and
    /// how many recovery codes are left.
    ///
    /// # Errors
    /// `UserGone`; storage failures.
    pub async fn two_factor_status(
        &self,
        caller: &AccessClaims,
    ) -> Result<TwoFactorStatus, MfaError> {
        let user = self.caller(caller).await?;
        let now = self.clock.now();
        let secret = self.mfa.totp(user.id).await?;
        let enabled_at = secret.as_ref().and_then(|t| t.confirmed_at);
        let pending = secret
            .as_ref()
            .is_some_and(|t| t.confirmed_at.is_none() && enrolment_open(t.created_at, now));
        let recovery_codes_left = if enabled_at.is_some() {
            self.mfa.recovery_codes_left(user.id).await?
        } else {
            0
        };
        Ok(TwoFactorStatus {
            enabled_at,
            pending,
            recovery_codes_left,
        })
    }

    /// Begins a TOTP enrolment for the caller, whose `password` is checked
    /// through the login throttle first (contract v3: a stolen access token
    /// alone cannot enrol an attacker's authenticator): a new secret,
    /// pending until a code of it is confirmed within [`ENROLMENT_TTL`]. A
    /// pending enrolment is replaced; a confirmed one is
    /// [`MfaError::AlreadyEnabled`].
    ///
    /// # Errors
    /// See [`MfaError`].
    #[tracing::instrument(skip_all, fields(user = %caller.sub))]
    pub async fn begin_totp(
        &self,
        caller: &AccessClaims,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<TotpEnrolment, MfaError> {
        let user = self
            .check_own_password(caller, password, client, OnSuccess::Clear)
            .await?;
        let now = self.clock.now();
        if self.has_two_factor(&user).await? {
            return Err(MfaError::AlreadyEnabled);
        }
        let new = self
            .totp
            .generate(user.id, &self.issuer, user.username.as_str())?;
        if !self.mfa.begin_totp(user.id, &new.sealed, now).await? {
            return Err(MfaError::AlreadyEnabled);
        }
        tracing::info!(user = %user.id, "TOTP enrolment begun");
        Ok(TotpEnrolment {
            secret: new.base32,
            otpauth_uri: new.uri,
            expires_in: ENROLMENT_TTL,
        })
    }

    /// Confirms the caller's pending enrolment with a code of its secret:
    /// two-factor login is on, and the [`RECOVERY_CODES`] recovery codes are
    /// returned (shown once; only their hashes are stored). The code's step
    /// is used: it cannot log in afterwards. Existing sessions go on.
    ///
    /// # Errors
    /// See [`MfaError`]: `NotFound` without a pending enrolment (or after it
    /// expired), `InvalidCode`.
    #[tracing::instrument(skip_all, fields(user = %caller.sub))]
    pub async fn confirm_totp(
        &self,
        caller: &AccessClaims,
        code: SecretString,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>, MfaError> {
        let user = self.caller(caller).await?;
        let now = self.clock.now();
        let pending = self
            .mfa
            .totp(user.id)
            .await?
            .filter(|t| t.confirmed_at.is_none() && enrolment_open(t.created_at, now))
            .ok_or(MfaError::NotFound)?;
        // Codes are guessed here as at login: each takes a slot of the login
        // throttle, and five wrong ones void the enrolment (security review
        // 2, finding 4).
        let key = ThrottleKey::new(user.username.canonical(), client);
        if let Some(retry_after) = self.take_slot(&key, &user, caller, now, client).await? {
            return Err(MfaError::RateLimited { retry_after });
        }
        let matched = match code_digits(&code) {
            Some(typed) => self.totp.matching_step(
                user.id,
                &pending.sealed,
                &candidate_steps(now, None),
                typed,
            )?,
            None => None,
        };
        let Some(step) = matched else {
            let wrong = self
                .mfa
                .count_wrong_enrolment_code(user.id, pending.created_at)
                .await?;
            self.report(self.event(SecurityEventKind::MfaFailed, &user, caller, now, client))
                .await;
            if !domain::totp::enrolment_usable(wrong) {
                // Voided: the next confirmation finds nothing (404).
                tracing::warn!(user = %user.id, "enrolment voided after five wrong codes");
            }
            return Err(MfaError::InvalidCode);
        };
        self.throttle.clear(&key).await?;
        let codes: Vec<SecretString> = (0..RECOVERY_CODES)
            .map(|_| new_recovery_code(self.random.as_ref()))
            .collect();
        let hashes: Vec<TokenHash> = codes
            .iter()
            .map(|c| recovery_hash(user.id, &normal_recovery_code(c).unwrap_or_default()))
            .collect();
        if !self
            .mfa
            .confirm_totp(user.id, pending.created_at, step, &hashes, now)
            .await?
        {
            return Err(MfaError::NotFound);
        }
        tracing::info!(user = %user.id, "two-factor login turned on");
        self.report(self.event(SecurityEventKind::MfaEnabled, &user, caller, now, client))
            .await;
        Ok(codes)
    }

    /// Turns the caller's two-factor login off: `password` and then `proof`
    /// (a code, or a recovery code) are checked through the login throttle
    /// (contract v3: a stolen access token and the password alone cannot
    /// remove the owner's authenticator). The secret and the recovery codes
    /// go. Existing sessions go on.
    ///
    /// A right password gives its throttle slot back without clearing the
    /// failures, and only a right code clears them, as at login: otherwise
    /// a holder of the password could guess codes without end, a password
    /// before every code.
    ///
    /// # Errors
    /// See [`MfaError`]: `NotFound` when two-factor login is off,
    /// `InvalidCode` for a wrong, replayed or used code.
    #[tracing::instrument(skip_all, fields(user = %caller.sub))]
    pub async fn disable_totp(
        &self,
        caller: &AccessClaims,
        password: SecretString,
        proof: SecondFactor,
        client: &ClientInfo,
    ) -> Result<(), MfaError> {
        let user = self
            .check_own_password(caller, password, client, OnSuccess::Release)
            .await?;
        if !self.has_two_factor(&user).await? {
            return Err(MfaError::NotFound);
        }
        let now = self.clock.now();
        let key = ThrottleKey::new(user.username.canonical(), client);
        if let Some(retry_after) = self.take_slot(&key, &user, caller, now, client).await? {
            return Err(MfaError::RateLimited { retry_after });
        }
        if !use_second_factor(self.mfa.as_ref(), self.totp.as_ref(), user.id, &proof, now).await? {
            self.report(self.event(SecurityEventKind::MfaFailed, &user, caller, now, client))
                .await;
            return Err(MfaError::InvalidCode);
        }
        self.throttle.clear(&key).await?;
        if !self.mfa.remove_totp(user.id).await? {
            return Err(MfaError::NotFound);
        }
        // Logins waiting for a second factor that is gone end with it.
        self.mfa.end_challenges_of(user.id).await?;
        tracing::info!(user = %user.id, "two-factor login turned off");
        let now = self.clock.now();
        self.report(self.event(SecurityEventKind::MfaDisabled, &user, caller, now, client))
            .await;
        Ok(())
    }

    /// What a password change and an account deletion ask: the password,
    /// and a second factor while two-factor login is on and the session
    /// began without one (`domain::totp::code_needed_for_account_change`).
    /// As when turning it off, a right password then only gives its
    /// throttle slot back, and only the right code clears the failures.
    async fn reauthenticate(
        &self,
        caller: &AccessClaims,
        password: SecretString,
        proof: Option<SecondFactor>,
        client: &ClientInfo,
    ) -> Result<User, AccountError> {
        let two_factor_on = self
            .mfa
            .totp(caller.sub)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some());
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
        let now = self.clock.now();
        let key = ThrottleKey::new(user.username.canonical(), client);
        if let Some(retry_after) = self.take_slot(&key, &user, caller, now, client).await? {
            return Err(AccountError::RateLimited { retry_after });
        }
        if !use_second_factor(self.mfa.as_ref(), self.totp.as_ref(), user.id, &proof, now).await? {
            self.report(self.event(SecurityEventKind::MfaFailed, &user, caller, now, client))
                .await;
            return Err(AccountError::InvalidCode);
        }
        self.throttle.clear(&key).await?;
        Ok(user)
    }

    /// Checks that `password` is the caller's, as a login would: a place in
    /// the hashing queue, a slot of the login throttle for (user, client
    /// address) taken before the check and kept on a failure, the same
    /// timing; a success clears the user's failures from that address, or
    /// only gives its slot back when a second factor is still to come.
    async fn check_own_password(
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
            self.report(self.event(kind, &user, caller, now, client))
                .await;
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
    async fn take_slot(
        &self,
        key: &ThrottleKey,
        user: &User,
        caller: &AccessClaims,
        now: Timestamp,
        client: &ClientInfo,
    ) -> anyhow::Result<Option<Duration>> {
        let refused = self.throttle.take_slot(key, now).await?;
        if refused.is_some() {
            let event = self.event(SecurityEventKind::LoginThrottled, user, caller, now, client);
            self.report(event).await;
        }
        Ok(refused)
    }

    /// Whether `user` logs in with two factors (a confirmed TOTP secret).
    async fn has_two_factor(&self, user: &User) -> anyhow::Result<bool> {
        Ok(self
            .mfa
            .totp(user.id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some()))
    }

    /// The caller's user.
    async fn caller(&self, caller: &AccessClaims) -> Result<User, MfaError> {
        self.users
            .find_by_id(caller.sub)
            .await?
            .ok_or(MfaError::UserGone)
    }

    /// An event of `kind` about the caller's account.
    fn event(
        &self,
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

    /// Every event of an account operation goes out here.
    async fn report(&self, event: SecurityEvent) {
        report(self.events.as_ref(), event).await;
    }
}

/// What a right password does to the throttle's failures.
#[derive(Debug, Clone, Copy)]
enum OnSuccess {
    /// Clears them: the operation needs nothing more.
    Clear,
    /// Gives this check's slot back only: a second factor is still to be
    /// checked, and only its success clears them.
    Release,
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
