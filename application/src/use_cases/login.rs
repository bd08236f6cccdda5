//! Log in: check the password, start a token family, hand out both tokens.

use std::time::Duration;

use domain::{AuthMethods, RefreshToken, Session, SessionId, Timestamp, User, Username};
use secrecy::SecretString;

use crate::ports::{Overloaded, PasswordCheck, SecurityEvent, SecurityEventKind, ThrottleKey};
use crate::{AuthService, ClientInfo, IssuedAccessToken, IssuedRefreshToken, RefreshSecret};

/// What a successful login hands out.
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

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user or wrong password: the two are indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The password is right and the user has two-factor login: the login
    /// goes on at `POST /api/login/mfa` with this token and a code.
    #[error("a second factor is required")]
    MfaRequired {
        /// The `mfaToken`: opaque, 5 minutes, bound to the user and the
        /// client; stored only as a hash.
        mfa_token: SecretString,
    },
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

impl AuthService {
    /// Logs `username` in.
    ///
    /// For a user with two-factor login, a right password does not start a
    /// session: it answers [`LoginError::MfaRequired`]. Its throttle slot is
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
    ) -> Result<LoginOutcome, LoginError> {
        // A place in the hashing queue first: a login shed for overload has
        // taken no throttle slot and read nothing.
        let ticket = self.ports.hasher.reserve()?;
        let now = self.ports.clock.now();
        let user = match Username::parse(username) {
            Ok(name) => self.ports.users.find_by_username(&name).await?,
            Err(_) => None,
        };
        // A name that matches no user is kept out of the audit trail and the
        // logs as a keyed pseudonym: it may be a password typed in the wrong field.
        let audit_name = user.as_ref().map_or_else(
            || self.config.seal_key.pseudonym(username),
            |u| u.username.canonical(),
        );
        tracing::Span::current().record("username", audit_name.as_str());
        let event = |kind| SecurityEvent::new(kind, now, client).username(&audit_name);
        let key = ThrottleKey::new(audit_name.clone(), client);
        // The slot is taken before the password is checked: N simultaneous
        // guesses get at most LOGIN_MAX_FAILURES checks. A failure keeps it.
        if let Some(retry_after) = self.ports.throttle.take_slot(&key, now).await? {
            self.report(event(SecurityEventKind::LoginThrottled)).await;
            return Err(LoginError::RateLimited { retry_after });
        }

        let hash = user.as_ref().map_or_else(
            || self.ports.hasher.dummy_hash(),
            |u| u.password_hash.clone(),
        );
        let check = self
            .ports
            .hasher
            .verify(ticket, password.clone(), hash)
            .await?;
        let (user, needs_rehash) = match (user, check) {
            (Some(user), PasswordCheck::Match { needs_rehash }) => (user, needs_rehash),
            (user, _) => {
                let mut failed = event(SecurityEventKind::LoginFailed);
                failed.user = user.map(|u| u.id);
                self.report(failed).await;
                return Err(LoginError::InvalidCredentials);
            }
        };
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
            self.ports.throttle.release(&key).await?;
            let mfa_token = self.challenge_second_factor(&user, now, client).await?;
            self.report(event(SecurityEventKind::MfaChallenged).user(user.id))
                .await;
            return Err(LoginError::MfaRequired { mfa_token });
        }
        self.ports.throttle.clear(&key).await?;
        Ok(self
            .start_session(user, AuthMethods::Password, now, client)
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
        let policy = &self.config.token_policy;
        let session = Session::start(
            SessionId::from_uuid(self.ports.random.uuid()),
            user.id,
            now,
            policy.session_max_age,
            client.user_agent.clone(),
            client.ip.clone(),
        )
        .begun_with(methods);
        let secret = RefreshSecret::generate(self.ports.random.as_ref());
        let first = RefreshToken::first(&session, secret.hash(), policy);
        self.ports.sessions.create(&session, &first).await?;
        let access = self.issue_access(&user, &session, now).await?;
        let refresh = IssuedRefreshToken {
            max_age: first.max_age_seconds(now),
            expires_at: first.expires_at,
            secret,
        };
        tracing::info!(user = %user.id, session = %session.id, mfa = methods.two_factor(), "login");
        self.report(
            SecurityEvent::new(SecurityEventKind::LoginSucceeded, now, client)
                .user(user.id)
                .username(&user.username.canonical())
                .session(session.id),
        )
        .await;
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
            let ticket = self.ports.hasher.reserve()?;
            let hash = self.ports.hasher.hash(ticket, password).await?;
            self.ports
                .users
                .update_password_hash(user.id, &hash)
                .await?;
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
}
