//! Log in: the password, then (for a user with two-factor login) the second
//! factor; either ends in a new token family and both tokens.
//!
//! The rules are `domain`'s (`throttle`, `totp`); every decision that two
//! processes could both take (a throttle slot, a code step, a recovery code,
//! an `mfaToken`) is one conditional write of a store.

use std::sync::Arc;
use std::time::Duration;

use domain::totp::{MFA_TOKEN_TTL, mfa_token_usable};
use domain::{
    AuthMethods, RefreshToken, Session, SessionId, Timestamp, TokenPolicy, User, UserId, Username,
};
use secrecy::SecretString;

use crate::ports::security_events::report;
use crate::ports::{
    Clock, LoginMethod, LoginThrottle, MfaChallenge, MfaStore, Overloaded, PasswordCheck,
    PasswordHasher, RandomSource, SecurityEvent, SecurityEventKind, SecurityEvents, SessionStore,
    ThrottleKey, TotpCodes, UserRepository,
};
use crate::second_factor::{SecondFactor, challenge_hash, use_second_factor};
use crate::{
    AccessTokenIssuer, ClientInfo, IssuedAccessToken, IssuedRefreshToken, MfaToken, RefreshSecret,
    SealKey,
};

/// Logging in, on exactly the ports it needs.
#[derive(Clone)]
pub struct Logins {
    /// Looks the user up; stores an upgraded password hash.
    pub users: Arc<dyn UserRepository>,
    /// Checks the password (and rehashes an imported one).
    pub hasher: Arc<dyn PasswordHasher>,
    /// The brute-force throttle of passwords and codes.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Two-factor state: the TOTP secret, recovery codes, `mfaToken`s.
    pub mfa: Arc<dyn MfaStore>,
    /// Checks a TOTP code against the sealed secret.
    pub totp: Arc<dyn TotpCodes>,
    /// Stores the new token family.
    pub sessions: Arc<dyn SessionStore>,
    /// Signs the first access token.
    pub issuer: AccessTokenIssuer,
    /// The audit trail and the outcome metrics.
    pub events: Arc<dyn SecurityEvents>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Session ids, refresh tokens and `mfaToken`s.
    pub random: Arc<dyn RandomSource>,
    /// Keys the pseudonym of a username that matches no user.
    pub seal_key: SealKey,
    /// Refresh-token lifetimes.
    pub token_policy: TokenPolicy,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logins").finish_non_exhaustive()
    }
}

/// What a completed login hands out.
#[derive(Debug)]
pub struct LoginOutcome {
    /// The user.
    pub user: User,
    /// The new session.
    pub session: Session,
    /// Access token.
    pub access: IssuedAccessToken,
    /// Refresh token (the cookie).
    pub refresh: IssuedRefreshToken,
}

/// Where a right password leads.
#[derive(Debug)]
pub enum LoginStep {
    /// Logged in (boxed: the outcome is large next to the token).
    Done(Box<LoginOutcome>),
    /// The user has two-factor login: the login goes on at
    /// `POST /api/login/mfa` with this token and a code.
    SecondFactor {
        /// Opaque, 5 minutes, bound to the user and the client; stored only
        /// as a hash.
        mfa_token: MfaToken,
    },
}

impl LoginStep {
    /// The outcome of a login that needed no second factor.
    pub fn done(self) -> Option<LoginOutcome> {
        match self {
            Self::Done(outcome) => Some(*outcome),
            Self::SecondFactor { .. } => None,
        }
    }
}

/// Why a login's password step was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user or wrong password: the two are indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failures for this username from this client.
    #[error("too many failed logins")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// The password-hashing queue is full: shed before any other work.
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
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

/// Whom an attempt concerns, as far as it got: what its audit event names.
#[derive(Debug, Default)]
struct Attempt {
    /// The canonical username, or the pseudonym of one that matches no user.
    username: String,
    user: Option<UserId>,
    recovery_code: bool,
    /// Refused by the account's second-factor window (every address).
    second_factors_locked: bool,
}

impl Logins {
    /// The password step of a login for `username`.
    ///
    /// For a user with two-factor login, a right password does not start a
    /// session: it answers [`LoginStep::SecondFactor`]. Its throttle slot is
    /// given back but the failures are not cleared: wrong codes take slots
    /// too, and only the second factor's success clears them, so a window
    /// allows `LOGIN_MAX_FAILURES` wrong passwords and codes together,
    /// however many right passwords come between.
    ///
    /// Unknown usernames cost a password verification against a dummy hash,
    /// so the response time does not tell which usernames exist. An imported
    /// bcrypt or PBKDF2 hash is replaced by argon2id after a successful login.
    ///
    /// # Errors
    /// See [`LoginError`].
    #[tracing::instrument(
        skip(self, username, password, client),
        fields(client = client.ip.as_deref(), username = tracing::field::Empty)
    )]
    pub async fn login(
        &self,
        username: &str,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<LoginStep, LoginError> {
        let now = self.clock.now();
        let mut attempt = Attempt::default();
        let result = self
            .password_step(username, password, client, now, &mut attempt)
            .await;
        let kind = match &result {
            Ok(LoginStep::Done(_)) => Some(SecurityEventKind::LoginSucceeded),
            Ok(LoginStep::SecondFactor { .. }) => Some(SecurityEventKind::MfaChallenged),
            Err(LoginError::InvalidCredentials) => Some(SecurityEventKind::LoginFailed),
            Err(LoginError::RateLimited { .. }) => Some(SecurityEventKind::LoginThrottled),
            Err(LoginError::Overloaded(_) | LoginError::Unexpected(_)) => None,
        };
        let session = match &result {
            Ok(LoginStep::Done(o)) => Some(o.session.id),
            _ => None,
        };
        let method = LoginMethod::Password;
        self.report(kind.into_iter(), method, &attempt, session, now, client)
            .await;
        result
    }

    /// The second step of a login: `mfa_token` (from the password step) and
    /// a code or a recovery code. A success starts a session whose tokens
    /// say `amr: ["pwd","otp"]`.
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
        let now = self.clock.now();
        let mut attempt = Attempt::default();
        let result = self
            .second_factor_step(mfa_token, proof, client, now, &mut attempt)
            .await;
        let mut kinds = Vec::with_capacity(2);
        match &result {
            Ok(_) => {
                if attempt.recovery_code {
                    kinds.push(SecurityEventKind::RecoveryCodeUsed);
                }
                kinds.push(SecurityEventKind::LoginSucceeded);
            }
            Err(MfaLoginError::InvalidCode) => kinds.push(SecurityEventKind::MfaFailed),
            Err(MfaLoginError::RateLimited { .. }) if attempt.second_factors_locked => {
                kinds.push(SecurityEventKind::SecondFactorLocked);
            }
            Err(MfaLoginError::RateLimited { .. }) => kinds.push(SecurityEventKind::LoginThrottled),
            Err(MfaLoginError::TokenInvalid | MfaLoginError::Unexpected(_)) => {}
        }
        let session = result.as_ref().ok().map(|o| o.session.id);
        let method = LoginMethod::Totp;
        self.report(kinds.into_iter(), method, &attempt, session, now, client)
            .await;
        result
    }

    /// Every security event of a login attempt is reported here.
    async fn report(
        &self,
        kinds: impl Iterator<Item = SecurityEventKind>,
        method: LoginMethod,
        attempt: &Attempt,
        session: Option<SessionId>,
        now: Timestamp,
        client: &ClientInfo,
    ) {
        for kind in kinds {
            let mut event = SecurityEvent::new(kind, now, client)
                .username(&attempt.username)
                .method(method);
            event.user = attempt.user;
            if kind == SecurityEventKind::LoginSucceeded {
                event.session = session;
            }
            report(self.events.as_ref(), event).await;
        }
    }

    async fn password_step(
        &self,
        username: &str,
        password: SecretString,
        client: &ClientInfo,
        now: Timestamp,
        attempt: &mut Attempt,
    ) -> Result<LoginStep, LoginError> {
        // A place in the hashing queue first: a login shed for overload has
        // taken no throttle slot and read nothing.
        let ticket = self.hasher.reserve()?;
        let user = match Username::parse(username) {
            Ok(name) => self.users.find_by_username(&name).await?,
            Err(_) => None,
        };
        // A name that matches no user is kept out of the audit trail and the
        // logs as a keyed pseudonym: it may be a password typed in the wrong field.
        attempt.username = user.as_ref().map_or_else(
            || self.seal_key.pseudonym(username),
            |u| u.username.canonical(),
        );
        tracing::Span::current().record("username", attempt.username.as_str());
        let key = ThrottleKey::new(attempt.username.clone(), client);
        // The slot is taken before the password is checked: N simultaneous
        // guesses get at most LOGIN_MAX_FAILURES checks. A failure keeps it.
        if let Some(retry_after) = self.throttle.take_slot(&key, now).await? {
            return Err(LoginError::RateLimited { retry_after });
        }

        let hash = user
            .as_ref()
            .map_or_else(|| self.hasher.dummy_hash(), |u| u.password_hash.clone());
        let check = self.hasher.verify(ticket, password.clone(), hash).await?;
        let (user, needs_rehash) = match (user, check) {
            (Some(user), PasswordCheck::Match { needs_rehash }) => (user, needs_rehash),
            (user, _) => {
                attempt.user = user.map(|u| u.id);
                return Err(LoginError::InvalidCredentials);
            }
        };
        attempt.user = Some(user.id);
        let user = if needs_rehash {
            self.upgrade_hash(user, password).await
        } else {
            user
        };
        if self.has_two_factor(&user).await? {
            // Half a login: its slot goes back, the failures stay (wrong
            // codes among them) until the second factor succeeds. Clearing
            // here would let a holder of the password guess codes without
            // end, a password between every few codes.
            self.throttle.release(&key).await?;
            let mfa_token = self.challenge(&user, now, client).await?;
            return Ok(LoginStep::SecondFactor { mfa_token });
        }
        self.throttle.clear(&key).await?;
        Ok(LoginStep::Done(Box::new(
            self.start_session(user, AuthMethods::Password, now, client)
                .await?,
        )))
    }

    async fn second_factor_step(
        &self,
        mfa_token: &str,
        proof: SecondFactor,
        client: &ClientInfo,
        now: Timestamp,
        attempt: &mut Attempt,
    ) -> Result<LoginOutcome, MfaLoginError> {
        let token = MfaToken::parse(mfa_token).ok_or(MfaLoginError::TokenInvalid)?;
        let hash = challenge_hash(&token, client);
        let challenge = self
            .mfa
            .challenge(&hash, now)
            .await?
            .ok_or(MfaLoginError::TokenInvalid)?;
        let user = match self.users.find_by_id(challenge.user).await? {
            Some(user) if mfa_token_usable(challenge.wrong_codes) => user,
            _ => {
                self.mfa.end_challenge(&hash).await?;
                return Err(MfaLoginError::TokenInvalid);
            }
        };
        tracing::Span::current().record("user", tracing::field::display(user.id));
        attempt.username = user.username.canonical();
        attempt.user = Some(user.id);
        // The account's window first: a refusal there takes no slot of the
        // address's window.
        let account = ThrottleKey::second_factors_of(attempt.username.clone());
        if let Some(retry_after) = self.throttle.take_slot(&account, now).await? {
            attempt.second_factors_locked = true;
            return Err(MfaLoginError::RateLimited { retry_after });
        }
        let key = ThrottleKey::new(attempt.username.clone(), client);
        if let Some(retry_after) = self.throttle.take_slot(&key, now).await? {
            self.throttle.release(&account).await?;
            return Err(MfaLoginError::RateLimited { retry_after });
        }
        attempt.recovery_code = matches!(proof, SecondFactor::RecoveryCode(_));
        let accepted =
            use_second_factor(self.mfa.as_ref(), self.totp.as_ref(), user.id, &proof, now).await?;
        if !accepted {
            let wrong = self.mfa.count_wrong_code(&hash).await?;
            if !mfa_token_usable(wrong) {
                self.mfa.end_challenge(&hash).await?;
            }
            return Err(MfaLoginError::InvalidCode);
        }
        // Another request with this token won the same race: one session per token.
        if !self.mfa.end_challenge(&hash).await? {
            return Err(MfaLoginError::TokenInvalid);
        }
        self.throttle.clear(&key).await?;
        self.throttle.clear(&account).await?;
        if attempt.recovery_code {
            tracing::warn!(user = %user.id, "login with a recovery code");
        }
        Ok(self
            .start_session(user, AuthMethods::PasswordAndOtp, now, client)
            .await?)
    }

    /// Starts a token family for `user`, who proved `methods`, and hands out
    /// its first tokens (the end of a login, with one factor or two).
    pub(crate) async fn start_session(
        &self,
        user: User,
        methods: AuthMethods,
        now: Timestamp,
        client: &ClientInfo,
    ) -> anyhow::Result<LoginOutcome> {
        let policy = &self.token_policy;
        let session = Session::start(
            SessionId::from_uuid(self.random.uuid()),
            user.id,
            now,
            policy.session_max_age,
            client.user_agent.clone(),
            client.ip.clone(),
        )
        .begun_with(methods)
        .bound_to(client.key.clone());
        let secret = RefreshSecret::generate(self.random.as_ref());
        let first = RefreshToken::first(&session, secret.hash(), policy);
        self.sessions.create(&session, &first).await?;
        let access = self.issuer.issue(&user, &session, now).await?;
        let refresh = IssuedRefreshToken {
            max_age: first.max_age_seconds(now),
            expires_at: first.expires_at,
            secret,
        };
        tracing::info!(user = %user.id, session = %session.id, mfa = methods.two_factor(), "login");
        Ok(LoginOutcome {
            user,
            session,
            access,
            refresh,
        })
    }

    /// Rehashes with the current algorithm; a failure (or a full hashing
    /// queue) only costs the upgrade, which the next login retries.
    async fn upgrade_hash(&self, mut user: User, password: SecretString) -> User {
        let upgraded = async {
            let ticket = self.hasher.reserve()?;
            let hash = self.hasher.hash(ticket, password).await?;
            let now = self.clock.now();
            self.users.update_password_hash(user.id, &hash, now).await?;
            anyhow::Ok(hash)
        };
        match upgraded.await {
            Ok(hash) => {
                tracing::info!(user = %user.id, "password hash upgraded to the current algorithm");
                user.password_hash = hash;
            }
            Err(e) => tracing::warn!(user = %user.id, error = ?e, "password hash upgrade failed"),
        }
        user
    }

    /// Whether `user` logs in with two factors (a confirmed TOTP secret).
    async fn has_two_factor(&self, user: &User) -> anyhow::Result<bool> {
        Ok(self
            .mfa
            .totp(user.id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some()))
    }

    /// Hands out an `mfaToken` for `user`, whose password was right, bound
    /// to `client`.
    async fn challenge(
        &self,
        user: &User,
        now: Timestamp,
        client: &ClientInfo,
    ) -> anyhow::Result<MfaToken> {
        let token = MfaToken::generate(self.random.as_ref());
        self.mfa
            .create_challenge(&MfaChallenge {
                hash: challenge_hash(&token, client),
                user: user.id,
                client_ip: client.ip.clone(),
                user_agent: client.user_agent.clone(),
                expires_at: now.plus(MFA_TOKEN_TTL),
                wrong_codes: 0,
            })
            .await?;
        Ok(token)
    }
}
