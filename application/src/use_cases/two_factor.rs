//! Managing two-factor login with TOTP (contract: "Two-factor login"):
//! the status, an enrolment and its confirmation, turning it off. Every
//! change asks for the caller again first (see `reauthentication`).

use std::sync::Arc;
use std::time::Duration;

use domain::totp::{ENROLMENT_TTL, RECOVERY_CODES, candidate_steps, enrolment_open};
use domain::{AccessClaims, Timestamp, TokenHash, User};
use secrecy::SecretString;

use crate::ClientInfo;
use crate::ports::{
    Clock, LoginThrottle, MfaStore, Overloaded, RandomSource, SecurityEventKind, ThrottleKey,
    TotpCodes, UserRepository,
};
use crate::second_factor::{
    SecondFactor, code_digits, new_recovery_code, normal_recovery_code, recovery_hash,
};

use super::account::AccountError;
use super::reauthentication::{OnSuccess, Reauthentication, event};

/// Two-factor login's management, on exactly the ports it needs.
#[derive(Clone)]
pub struct TwoFactor {
    /// Asks for the caller again before a change.
    pub reauth: Reauthentication,
    /// The caller's user.
    pub users: Arc<dyn UserRepository>,
    /// Clears the throttle after a right confirming code.
    pub throttle: Arc<dyn LoginThrottle>,
    /// The TOTP secret, its confirmation, the recovery codes.
    pub mfa: Arc<dyn MfaStore>,
    /// New TOTP secrets; checks their codes.
    pub totp: Arc<dyn TotpCodes>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Recovery codes.
    pub random: Arc<dyn RandomSource>,
    /// `JWT_ISSUER`: the issuer an authenticator app shows.
    pub issuer: String,
}

impl std::fmt::Debug for TwoFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoFactor").finish_non_exhaustive()
    }
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

impl TwoFactor {
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
            .reauth
            .check_own_password(caller, password, client, OnSuccess::Clear)
            .await?;
        let now = self.clock.now();
        if self.reauth.two_factor_on(user.id).await? {
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
        if let Some(retry_after) = self
            .reauth
            .take_slot(&key, &user, caller, now, client)
            .await?
        {
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
            self.reauth
                .report(event(
                    SecurityEventKind::MfaFailed,
                    &user,
                    caller,
                    now,
                    client,
                ))
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
        self.reauth
            .report(event(
                SecurityEventKind::MfaEnabled,
                &user,
                caller,
                now,
                client,
            ))
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
            .reauth
            .check_own_password(caller, password, client, OnSuccess::Release)
            .await?;
        if !self.reauth.two_factor_on(user.id).await? {
            return Err(MfaError::NotFound);
        }
        // AccountError's RateLimited and InvalidCode become MfaError's.
        self.reauth
            .check_second_factor(&user, caller, &proof, client)
            .await?;
        if !self.mfa.remove_totp(user.id).await? {
            return Err(MfaError::NotFound);
        }
        // Logins waiting for a second factor that is gone end with it.
        self.mfa.end_challenges_of(user.id).await?;
        tracing::info!(user = %user.id, "two-factor login turned off");
        let now = self.clock.now();
        self.reauth
            .report(event(
                SecurityEventKind::MfaDisabled,
                &user,
                caller,
                now,
                client,
            ))
            .await;
        Ok(())
    }

    /// The caller's user.
    async fn caller(&self, caller: &AccessClaims) -> Result<User, MfaError> {
        self.users
            .find_by_id(caller.sub)
            .await?
            .ok_or(MfaError::UserGone)
    }
}
