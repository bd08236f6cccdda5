//! Two-factor login with TOTP (contract: "Two-factor login"): enrolment,
//! its confirmation, turning it off, and the second step of a login.
//!
//! The rules are `domain::totp`'s; the codes and the sealed secret are the
//! [`crate::ports::TotpCodes`] adapter's; every decision that two processes
//! could both take (a code step, a recovery code, an `mfaToken`) is one
//! conditional write of the [`crate::ports::MfaStore`].

use std::time::Duration;

use domain::totp::{
    self, ENROLMENT_TTL, MFA_TOKEN_TTL, RECOVERY_CODES, candidate_steps, enrolment_open,
    mfa_token_usable,
};
use domain::{AccessClaims, AuthMethods, Timestamp, TokenHash, User, UserId};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::AccountError;
use super::login::LoginOutcome;
use crate::ports::{MfaChallenge, Overloaded, SecurityEvent, SecurityEventKind, ThrottleKey};
use crate::{AuthService, ClientInfo, RefreshSecret};

const RECOVERY_LABEL: &[u8] = b"authd/recovery-code/v1\0";
const CHALLENGE_LABEL: &[u8] = b"authd/mfa-token/v1\0";
/// Random bytes per recovery code: 80 bits, 20 hex digits.
const RECOVERY_BYTES: usize = 10;

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

/// The second factor of a login.
pub enum SecondFactor {
    /// A code from the authenticator app.
    Code(SecretString),
    /// One of the recovery codes shown at enrolment.
    RecoveryCode(SecretString),
}

impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Code(_) => "Code([redacted])",
            Self::RecoveryCode(_) => "RecoveryCode([redacted])",
        })
    }
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
            AccountError::WeakPassword(e) => Self::Unexpected(anyhow::anyhow!(e)),
        }
    }
}

/// Why the second step of a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum MfaLoginError {
    /// A wrong code, a code already used (a replay), or a used or unknown
    /// recovery code. Counts towards the login throttle and the token's five.
    #[error("wrong second factor")]
    InvalidCode,
    /// The `mfaToken` is unknown, expired, used up, or another client's.
    #[error("the mfaToken is not valid")]
    TokenInvalid,
    /// Too many failures for this user from this client.
    #[error("too many failed logins")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl AuthService {
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
        let now = self.ports.clock.now();
        let secret = self.ports.mfa.totp(user.id).await?;
        let enabled_at = secret.as_ref().and_then(|t| t.confirmed_at);
        let pending = secret
            .as_ref()
            .is_some_and(|t| t.confirmed_at.is_none() && enrolment_open(t.created_at, now));
        let recovery_codes_left = if enabled_at.is_some() {
            self.ports.mfa.recovery_codes_left(user.id).await?
        } else {
            0
        };
        Ok(TwoFactorStatus {
            enabled_at,
            pending,
            recovery_codes_left,
        })
    }

    /// Begins a TOTP enrolment for the caller: a new secret, pending until a
    /// code of it is confirmed within [`ENROLMENT_TTL`]. A pending enrolment
    /// is replaced; a confirmed one is [`MfaError::AlreadyEnabled`].
    ///
    /// # Errors
    /// See [`MfaError`].
    #[tracing::instrument(skip_all, fields(user = %caller.sub))]
    pub async fn begin_totp(&self, caller: &AccessClaims) -> Result<TotpEnrolment, MfaError> {
        let user = self.caller(caller).await?;
        let now = self.ports.clock.now();
        if self
            .ports
            .mfa
            .totp(user.id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some())
        {
            return Err(MfaError::AlreadyEnabled);
        }
        let new = self
            .ports
            .totp
            .generate(user.id, &self.config.issuer, user.username.as_str())?;
        if !self.ports.mfa.begin_totp(user.id, &new.sealed, now).await? {
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
        let now = self.ports.clock.now();
        let pending = self
            .ports
            .mfa
            .totp(user.id)
            .await?
            .filter(|t| t.confirmed_at.is_none() && enrolment_open(t.created_at, now))
            .ok_or(MfaError::NotFound)?;
        let step = self
            .ports
            .totp
            .matching_step(
                user.id,
                &pending.sealed,
                &candidate_steps(now, None),
                code_digits(&code).ok_or(MfaError::InvalidCode)?,
            )?
            .ok_or(MfaError::InvalidCode)?;
        let codes: Vec<SecretString> = (0..RECOVERY_CODES)
            .map(|_| self.new_recovery_code())
            .collect();
        let hashes: Vec<TokenHash> = codes
            .iter()
            .map(|c| recovery_hash(user.id, &normal_recovery_code(c).unwrap_or_default()))
            .collect();
        if !self
            .ports
            .mfa
            .confirm_totp(user.id, pending.created_at, step, &hashes, now)
            .await?
        {
            return Err(MfaError::NotFound);
        }
        tracing::info!(user = %user.id, "two-factor login turned on");
        self.report(
            SecurityEvent::new(SecurityEventKind::MfaEnabled, now, client)
                .user(user.id)
                .username(&user.username.canonical())
                .session(caller.sid),
        )
        .await;
        Ok(codes)
    }

    /// Turns the caller's two-factor login off (`password` checked through
    /// the login throttle, as a password change does): the secret and the
    /// recovery codes go. Existing sessions go on.
    ///
    /// # Errors
    /// See [`MfaError`]: `NotFound` when two-factor login is off.
    #[tracing::instrument(skip_all, fields(user = %caller.sub))]
    pub async fn disable_totp(
        &self,
        caller: &AccessClaims,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<(), MfaError> {
        let user = self.check_own_password(caller, password, client).await?;
        let enabled = self
            .ports
            .mfa
            .totp(user.id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some());
        if !enabled || !self.ports.mfa.remove_totp(user.id).await? {
            return Err(MfaError::NotFound);
        }
        tracing::info!(user = %user.id, "two-factor login turned off");
        self.report(
            SecurityEvent::new(
                SecurityEventKind::MfaDisabled,
                self.ports.clock.now(),
                client,
            )
            .user(user.id)
            .username(&user.username.canonical())
            .session(caller.sid),
        )
        .await;
        Ok(())
    }

    /// The second step of a login: `mfa_token` (from the `403 mfa_required`
    /// of the first) and a code or a recovery code. A success starts a
    /// session whose tokens say `amr: ["pwd","otp"]`.
    ///
    /// A wrong code takes a slot of the login throttle for the user and the
    /// client and one of the token's five; a code's step, once accepted,
    /// never matches again. The token is checked first: a used-up token is
    /// `TokenInvalid`, and the next login with the password is throttled.
    ///
    /// # Errors
    /// See [`MfaLoginError`].
    #[tracing::instrument(skip_all, fields(client = client.ip.as_deref(), user = tracing::field::Empty))]
    pub async fn login_second_factor(
        &self,
        mfa_token: &str,
        proof: SecondFactor,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, MfaLoginError> {
        let now = self.ports.clock.now();
        let token = RefreshSecret::parse(mfa_token).ok_or(MfaLoginError::TokenInvalid)?;
        let hash = challenge_hash(&token, client);
        let challenge = self
            .ports
            .mfa
            .challenge(&hash, now)
            .await?
            .ok_or(MfaLoginError::TokenInvalid)?;
        let user = match self.ports.users.find_by_id(challenge.user).await? {
            Some(user) if mfa_token_usable(challenge.wrong_codes) => user,
            _ => {
                self.ports.mfa.end_challenge(&hash).await?;
                return Err(MfaLoginError::TokenInvalid);
            }
        };
        tracing::Span::current().record("user", tracing::field::display(user.id));
        let username = user.username.canonical();
        let event = |kind| {
            SecurityEvent::new(kind, now, client)
                .user(user.id)
                .username(&username)
        };
        let key = ThrottleKey::new(username.clone(), client);
        if let Some(retry_after) = self.ports.throttle.take_slot(&key, now).await? {
            self.report(event(SecurityEventKind::LoginThrottled)).await;
            return Err(MfaLoginError::RateLimited { retry_after });
        }
        let recovery = matches!(proof, SecondFactor::RecoveryCode(_));
        let accepted = match proof {
            SecondFactor::Code(code) => self.accept_code(user.id, &code, now).await?,
            SecondFactor::RecoveryCode(code) => match normal_recovery_code(&code) {
                Some(code) => {
                    let hash = recovery_hash(user.id, &code);
                    self.ports
                        .mfa
                        .use_recovery_code(user.id, &hash, now)
                        .await?
                }
                None => false,
            },
        };
        if !accepted {
            let wrong = self.ports.mfa.count_wrong_code(&hash).await?;
            if !mfa_token_usable(wrong) {
                self.ports.mfa.end_challenge(&hash).await?;
            }
            self.report(event(SecurityEventKind::MfaFailed)).await;
            return Err(MfaLoginError::InvalidCode);
        }
        // Another request with this token won the same race: one session per token.
        if !self.ports.mfa.end_challenge(&hash).await? {
            return Err(MfaLoginError::TokenInvalid);
        }
        self.ports.throttle.clear(&key).await?;
        if recovery {
            tracing::warn!(user = %user.id, "login with a recovery code");
            self.report(event(SecurityEventKind::RecoveryCodeUsed))
                .await;
        }
        Ok(self
            .start_session(user, AuthMethods::PasswordAndOtp, now, client)
            .await?)
    }

    /// Whether `user` logs in with two factors (a confirmed TOTP secret).
    pub(crate) async fn has_two_factor(&self, user: &User) -> anyhow::Result<bool> {
        Ok(self
            .ports
            .mfa
            .totp(user.id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some()))
    }

    /// Hands out an `mfaToken` for `user`, whose password was right, bound
    /// to `client`; returns its plaintext.
    pub(crate) async fn challenge_second_factor(
        &self,
        user: &User,
        now: Timestamp,
        client: &ClientInfo,
    ) -> anyhow::Result<SecretString> {
        let token = RefreshSecret::generate(self.ports.random.as_ref());
        self.ports
            .mfa
            .create_challenge(&MfaChallenge {
                hash: challenge_hash(&token, client),
                user: user.id,
                client_ip: client.ip.clone(),
                user_agent: client.user_agent.clone(),
                expires_at: now.plus(MFA_TOKEN_TTL),
                wrong_codes: 0,
            })
            .await?;
        Ok(SecretString::from(token.expose().to_owned()))
    }

    /// Checks a TOTP code against the user's confirmed secret and, when it
    /// matches a step not used before, uses that step (in every process).
    async fn accept_code(
        &self,
        user: UserId,
        code: &SecretString,
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let Some(typed) = code_digits(code) else {
            return Ok(false);
        };
        let Some(secret) = self
            .ports
            .mfa
            .totp(user)
            .await?
            .filter(|t| t.confirmed_at.is_some())
        else {
            return Ok(false);
        };
        let steps = candidate_steps(now, secret.last_step);
        match self
            .ports
            .totp
            .matching_step(user, &secret.sealed, &steps, typed)?
        {
            Some(step) => self.ports.mfa.use_step(user, step).await,
            None => Ok(false),
        }
    }

    /// The caller's user.
    async fn caller(&self, caller: &AccessClaims) -> Result<User, MfaError> {
        self.ports
            .users
            .find_by_id(caller.sub)
            .await?
            .ok_or(MfaError::UserGone)
    }

    /// A recovery code: 80 random bits as four groups of five hex digits.
    fn new_recovery_code(&self) -> SecretString {
        let mut bytes = [0u8; RECOVERY_BYTES];
        self.ports.random.fill(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let groups: Vec<&str> = (0..4).map(|i| &hex[i * 5..i * 5 + 5]).collect();
        SecretString::from(groups.join("-"))
    }
}

/// The six digits of a typed code (spaces allowed, as apps show `123 456`);
/// `None` for anything else.
fn code_digits(code: &SecretString) -> Option<&str> {
    use secrecy::ExposeSecret as _;
    let typed = code.expose_secret().trim();
    let digits = usize::try_from(totp::DIGITS).unwrap_or(6);
    (typed.len() == digits && typed.bytes().all(|b| b.is_ascii_digit())).then_some(typed)
}

/// A recovery code as stored: its 20 hex digits, lower case, without the
/// dashes or spaces it was typed with; `None` when it cannot be one.
fn normal_recovery_code(code: &SecretString) -> Option<String> {
    use secrecy::ExposeSecret as _;
    let typed = code.expose_secret();
    if typed.len() > 64 {
        return None;
    }
    let normal: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (normal.len() == RECOVERY_BYTES * 2 && normal.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(normal)
}

/// A recovery code's stored hash: SHA-256 over a label, the user and the
/// code. 80 random bits need no slow hash; the user makes equal codes of
/// two users differ.
fn recovery_hash(user: UserId, normal: &str) -> TokenHash {
    let mut h = Sha256::new();
    h.update(RECOVERY_LABEL);
    h.update(user.as_uuid().as_bytes());
    h.update(normal.as_bytes());
    TokenHash::from_bytes(h.finalize().into())
}

/// The stored hash of an `mfaToken` presented by `client`: the client's
/// address and user agent are hashed in, so that the token looked up from
/// another client is simply unknown (`mfa_token_invalid`).
fn challenge_hash(token: &RefreshSecret, client: &ClientInfo) -> TokenHash {
    let mut h = Sha256::new();
    h.update(CHALLENGE_LABEL);
    h.update(token.hash().as_bytes());
    for part in [&client.ip, &client.user_agent] {
        let part = part.as_deref().unwrap_or_default();
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    TokenHash::from_bytes(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_owned())
    }

    #[test]
    fn codes_are_six_digits_trimmed() {
        assert_eq!(code_digits(&s(" 123456 ")), Some("123456"));
        for bad in ["12345", "1234567", "12345a", "", "１２３４５６"] {
            assert_eq!(code_digits(&s(bad)), None, "{bad}");
        }
    }

    #[test]
    fn recovery_codes_are_read_without_dashes_spaces_or_case() {
        let want = Some("0123456789abcdef0123".to_owned());
        assert_eq!(normal_recovery_code(&s("01234-56789-abcde-f0123")), want);
        assert_eq!(normal_recovery_code(&s("01234 56789 ABCDE F0123")), want);
        assert_eq!(normal_recovery_code(&s("01234-56789-abcde-f012")), None);
        assert_eq!(normal_recovery_code(&s("01234-56789-abcde-f012g")), None);
        assert_eq!(normal_recovery_code(&s(&"-".repeat(100))), None);
    }

    #[test]
    fn a_challenge_is_bound_to_the_client() {
        let token = RefreshSecret::parse(&"A".repeat(43)).unwrap();
        let client = |ip: &str, ua: &str| ClientInfo {
            ip: Some(ip.into()),
            user_agent: Some(ua.into()),
        };
        let here = challenge_hash(&token, &client("10.0.0.1", "curl"));
        assert_eq!(here, challenge_hash(&token, &client("10.0.0.1", "curl")));
        assert_ne!(here, challenge_hash(&token, &client("10.0.0.2", "curl")));
        assert_ne!(here, challenge_hash(&token, &client("10.0.0.1", "wget")));
        // The parts are length-prefixed: moving a byte across does not collide.
        assert_ne!(challenge_hash(&token, &client("10.0.0.1c", "url")), here);
    }

    #[test]
    fn recovery_hashes_differ_per_user() {
        let a = UserId::from_uuid(uuid::Uuid::from_u128(1));
        let b = UserId::from_uuid(uuid::Uuid::from_u128(2));
        assert_ne!(recovery_hash(a, "00"), recovery_hash(b, "00"));
    }
}
