//! Passkeys (contract v3, "Passkeys"): registering one (after the
//! password), listing and deleting them, and a usernameless login with a
//! discoverable credential.
//!
//! The ceremonies' cryptography is the [`RelyingParty`]'s; the rules
//! around it are `domain::passkey`'s. A ceremony is stored between its two
//! steps (so that options from one process can be finished at another) and
//! taken away by the finish, whatever its outcome: every `registrationId`
//! and `loginId` is used once.

use std::sync::Arc;
use std::time::Duration;

use domain::passkey::{
    self, Assertion, CEREMONY_TTL, PasskeyNameError, PasskeyRefusal, StoredPasskey,
    USER_HANDLE_BYTES,
};
use domain::{AccessClaims, Timestamp, TokenHash, User};
use secrecy::SecretString;
use uuid::Uuid;

use crate::ports::security_events::report;
use crate::ports::{
    Ceremony, CeremonyKind, Clock, LoginMethod, LoginThrottle, Passkey, PasskeyExists,
    PasskeyRejected, PasskeyStore, PasskeyUser, RandomSource, RelyingParty, SecurityEvent,
    SecurityEventKind, SecurityEvents, ThrottleKey, UserRepository,
};
use crate::use_cases::LoginOutcome;
use crate::use_cases::account::AccountError;
use crate::use_cases::reauthentication::{OnSuccess, Reauthentication, event};
use crate::{ClientInfo, Logins, RefreshSecret};

/// Passkeys, on exactly the ports they need.
#[derive(Clone)]
pub struct Passkeys {
    /// Asks for the password before a registration.
    pub reauth: Reauthentication,
    /// Starts the session of a passkey login.
    pub logins: Logins,
    /// The ceremonies' cryptography.
    pub relying_party: Arc<dyn RelyingParty>,
    /// Passkeys, user handles and ceremonies.
    pub store: Arc<dyn PasskeyStore>,
    /// The owner of a passkey.
    pub users: Arc<dyn UserRepository>,
    /// Failed passkey logins take slots as wrong passwords do.
    pub throttle: Arc<dyn LoginThrottle>,
    /// The audit trail and the outcome metrics.
    pub events: Arc<dyn SecurityEvents>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Ceremony ids, user handles, passkey ids.
    pub random: Arc<dyn RandomSource>,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys").finish_non_exhaustive()
    }
}

/// A ceremony's id (`registrationId`, `loginId`): 256 random bits,
/// base64url, stored only as a hash. `Debug` is redacted.
pub struct CeremonyId(RefreshSecret);

impl std::fmt::Debug for CeremonyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CeremonyId([redacted])")
    }
}

impl CeremonyId {
    fn generate(random: &dyn RandomSource) -> Self {
        Self(RefreshSecret::generate(random))
    }

    fn hash_of(presented: &str) -> Option<TokenHash> {
        RefreshSecret::parse(presented).map(|s| s.hash())
    }

    /// The plaintext, for the options' answer.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// The first step of a ceremony, for the browser.
#[derive(Debug)]
pub struct PasskeyOptions {
    /// `registrationId` or `loginId`.
    pub id: CeremonyId,
    /// The `publicKey` member.
    pub public_key: serde_json::Value,
}

/// Why a registration, the list or a deletion was refused.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The password is not the caller's (counts towards the login throttle).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many wrong passwords for this user from this client.
    #[error("too many failed password checks")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// The credential did not verify.
    #[error(transparent)]
    Rejected(#[from] PasskeyRejected),
    /// Unknown, used, expired or another user's `registrationId`; or no
    /// such passkey of the caller's.
    #[error("no such ceremony or passkey")]
    NotFound,
    /// The credential id is registered already.
    #[error(transparent)]
    Exists(#[from] PasskeyExists),
    /// The name is not allowed.
    #[error(transparent)]
    InvalidName(#[from] PasskeyNameError),
    /// The token's user no longer exists.
    #[error("no such user")]
    UserGone,
    /// The password-hashing queue is full.
    #[error(transparent)]
    Overloaded(#[from] crate::ports::Overloaded),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<AccountError> for PasskeyError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::InvalidCredentials => Self::InvalidCredentials,
            AccountError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            AccountError::UserGone => Self::UserGone,
            AccountError::Overloaded(e) => Self::Overloaded(e),
            AccountError::Unexpected(e) => Self::Unexpected(e),
            AccountError::InvalidCode | AccountError::WeakPassword(_) => {
                Self::Unexpected(anyhow::anyhow!(e))
            }
        }
    }
}

/// Why a passkey login was refused.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyLoginError {
    /// Anything that does not log in: an unknown credential, a signature,
    /// challenge, origin, rpIdHash or flags that do not verify, a counter
    /// that did not grow, another user's handle, a used or expired
    /// `loginId`. The reason is for the logs only.
    #[error("invalid passkey: {0}")]
    Invalid(String),
    /// Too many failures for the credential's user from this client, or
    /// for the account from every address.
    #[error("too many failed logins")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl Passkeys {
    /// Registration options for the caller, whose `password` is checked
    /// through the login throttle first (a stolen access token alone cannot
    /// add an attacker's passkey). `excludeCredentials` lists the caller's
    /// passkeys.
    ///
    /// # Errors
    /// `InvalidCredentials`, `RateLimited`, `UserGone`, `Overloaded`.
    #[tracing::instrument(skip_all, fields(user = %caller.sub))]
    pub async fn registration_options(
        &self,
        caller: &AccessClaims,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<PasskeyOptions, PasskeyError> {
        let user = self
            .reauth
            .check_own_password(caller, password, client, OnSuccess::Clear)
            .await?;
        let mut candidate = [0u8; USER_HANDLE_BYTES];
        self.random.fill(&mut candidate);
        let handle = self.store.user_handle(user.id, &candidate).await?;
        let exclude: Vec<_> = self
            .store
            .list(user.id)
            .await?
            .into_iter()
            .map(|p| p.credential)
            .collect();
        let someone = PasskeyUser {
            handle,
            name: user.username.as_str().to_owned(),
        };
        let started = self.relying_party.start_registration(&someone, &exclude)?;
        let id = CeremonyId::generate(self.random.as_ref());
        self.store
            .save_ceremony(&Ceremony {
                id: id.0.hash(),
                kind: CeremonyKind::Registration,
                user: Some(user.id),
                state: started.state,
                expires_at: self.clock.now().plus(CEREMONY_TTL),
            })
            .await?;
        Ok(PasskeyOptions {
            id,
            public_key: started.options,
        })
    }

    /// Finishes the caller's registration `registration_id` with
    /// `credential` (a `RegistrationResponseJSON`), under `name`.
    ///
    /// # Errors
    /// `NotFound` (unknown, used, expired or another user's ceremony),
    /// `Rejected`, `Exists`, `InvalidName`.
    #[tracing::instrument(skip_all, fields(user = %caller.sub))]
    pub async fn register(
        &self,
        caller: &AccessClaims,
        registration_id: &str,
        credential: &str,
        name: Option<&str>,
        client: &ClientInfo,
    ) -> Result<Passkey, PasskeyError> {
        // A bad name is refused before the ceremony is used up.
        let name = passkey::passkey_name(name)?;
        let now = self.clock.now();
        let id = CeremonyId::hash_of(registration_id).ok_or(PasskeyError::NotFound)?;
        let ceremony = self
            .store
            .take_ceremony(&id, CeremonyKind::Registration, Some(caller.sub))
            .await?
            .filter(|c| passkey::ceremony_open(c.expires_at, now))
            .ok_or(PasskeyError::NotFound)?;
        let user = self
            .users
            .find_by_id(caller.sub)
            .await?
            .ok_or(PasskeyError::UserGone)?;
        let registered = self
            .relying_party
            .finish_registration(&ceremony.state, credential)
            .inspect_err(
                |e| tracing::info!(user = %user.id, reason = %e.0, "passkey registration refused"),
            )?;
        let added = Passkey {
            id: self.random.uuid(),
            user: user.id,
            credential: registered.id,
            public_key: registered.public_key,
            counter: registered.counter,
            backup_eligible: registered.backup_eligible,
            backup_state: registered.backup_state,
            name,
            created_at: now,
            last_used_at: None,
        };
        self.store.add(&added).await.map_err(|e| {
            if e.downcast_ref::<PasskeyExists>().is_some() {
                PasskeyError::Exists(PasskeyExists)
            } else {
                PasskeyError::Unexpected(e)
            }
        })?;
        tracing::info!(user = %user.id, passkey = %added.id, "passkey added");
        self.report(event(
            SecurityEventKind::PasskeyAdded,
            &user,
            caller,
            now,
            client,
        ))
        .await;
        Ok(added)
    }

    /// The caller's passkeys, oldest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(&self, caller: &AccessClaims) -> Result<Vec<Passkey>, PasskeyError> {
        Ok(self.store.list(caller.sub).await?)
    }

    /// Deletes the caller's passkey `id`: the next login with it is refused.
    ///
    /// # Errors
    /// `NotFound` (also another user's), `UserGone`.
    #[tracing::instrument(skip_all, fields(user = %caller.sub))]
    pub async fn remove(
        &self,
        caller: &AccessClaims,
        id: Uuid,
        client: &ClientInfo,
    ) -> Result<(), PasskeyError> {
        let user = self
            .users
            .find_by_id(caller.sub)
            .await?
            .ok_or(PasskeyError::UserGone)?;
        if !self.store.remove(user.id, id).await? {
            return Err(PasskeyError::NotFound);
        }
        let now = self.clock.now();
        tracing::info!(user = %user.id, passkey = %id, "passkey removed");
        self.report(event(
            SecurityEventKind::PasskeyRemoved,
            &user,
            caller,
            now,
            client,
        ))
        .await;
        Ok(())
    }

    /// Login options for a discoverable credential.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn login_options(&self) -> Result<PasskeyOptions, PasskeyError> {
        let started = self.relying_party.start_login()?;
        let id = CeremonyId::generate(self.random.as_ref());
        self.store
            .save_ceremony(&Ceremony {
                id: id.0.hash(),
                kind: CeremonyKind::Login,
                user: None,
                state: started.state,
                expires_at: self.clock.now().plus(CEREMONY_TTL),
            })
            .await?;
        Ok(PasskeyOptions {
            id,
            public_key: started.options,
        })
    }

    /// A usernameless login: `credential` (an `AuthenticationResponseJSON`)
    /// for the ceremony `login_id`. Its session's `amr` is `["hwk","mfa"]`
    /// or `["swk","mfa"]` (`domain::passkey::login_methods`); it never asks
    /// for another factor.
    ///
    /// A failure for a known credential takes a slot of its user's login
    /// throttle from this address, and one of the account's second factors
    /// from every address, as a wrong password and a wrong code do.
    ///
    /// # Errors
    /// See [`PasskeyLoginError`].
    #[tracing::instrument(skip_all, fields(client = client.ip.as_deref(), user = tracing::field::Empty))]
    pub async fn login(
        &self,
        login_id: &str,
        credential: &str,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, PasskeyLoginError> {
        let now = self.clock.now();
        let mut attempt = Attempt::default();
        let result = self
            .login_step(login_id, credential, client, now, &mut attempt)
            .await;
        let kind = match &result {
            Ok(_) => Some(SecurityEventKind::LoginSucceeded),
            Err(PasskeyLoginError::Invalid(_)) if attempt.cloned => {
                Some(SecurityEventKind::PasskeyCloneSuspected)
            }
            Err(PasskeyLoginError::Invalid(reason)) => {
                tracing::info!(reason = %reason, "passkey login refused");
                Some(SecurityEventKind::LoginFailed)
            }
            Err(PasskeyLoginError::RateLimited { .. }) if attempt.locked => {
                Some(SecurityEventKind::SecondFactorLocked)
            }
            Err(PasskeyLoginError::RateLimited { .. }) => Some(SecurityEventKind::LoginThrottled),
            Err(PasskeyLoginError::Unexpected(_)) => None,
        };
        if let Some(kind) = kind {
            let mut event = SecurityEvent::new(kind, now, client).method(LoginMethod::Passkey);
            if let Some(user) = &attempt.user {
                event = event.user(user.id).username(&user.username.canonical());
            }
            if let Ok(outcome) = &result {
                event = event.session(outcome.session.id);
            }
            report(self.events.as_ref(), event).await;
        }
        result
    }

    async fn login_step(
        &self,
        login_id: &str,
        credential: &str,
        client: &ClientInfo,
        now: Timestamp,
        attempt: &mut Attempt,
    ) -> Result<LoginOutcome, PasskeyLoginError> {
        let invalid = |why: &str| PasskeyLoginError::Invalid(why.to_owned());
        let id = CeremonyId::hash_of(login_id).ok_or_else(|| invalid("malformed loginId"))?;
        let ceremony = self
            .store
            .take_ceremony(&id, CeremonyKind::Login, None)
            .await?
            .filter(|c| passkey::ceremony_open(c.expires_at, now))
            .ok_or_else(|| invalid("unknown, used or expired loginId"))?;
        let claim = self
            .relying_party
            .read_assertion(credential)
            .map_err(|e| PasskeyLoginError::Invalid(e.0))?;
        let stored = self
            .store
            .find(&claim.credential)
            .await?
            .ok_or_else(|| invalid("unknown credential"))?;
        let user = self
            .users
            .find_by_id(stored.user)
            .await?
            .ok_or_else(|| invalid("the credential's user is gone"))?;
        tracing::Span::current().record("user", tracing::field::display(user.id));
        let username = user.username.canonical();
        attempt.user = Some(user.clone());
        // The account's window of second factors first, then (user, address),
        // as for a code at login.
        let account = ThrottleKey::second_factors_of(username.clone());
        if let Some(retry_after) = self.throttle.take_slot(&account, now).await? {
            attempt.locked = true;
            return Err(PasskeyLoginError::RateLimited { retry_after });
        }
        let key = ThrottleKey::new(username, client);
        if let Some(retry_after) = self.throttle.take_slot(&key, now).await? {
            self.throttle.release(&account).await?;
            return Err(PasskeyLoginError::RateLimited { retry_after });
        }
        let handle = claim
            .user_handle
            .as_deref()
            .ok_or_else(|| invalid("no userHandle"))?;
        let handle_user = self.store.user_of_handle(handle).await?;
        let verified = self
            .relying_party
            .finish_login(&ceremony.state, credential, &stored, handle)
            .map_err(|e| PasskeyLoginError::Invalid(e.0))?;
        let methods = passkey::judge_login(
            StoredPasskey {
                user: stored.user,
                counter: stored.counter,
            },
            Assertion {
                counter: verified.counter,
                backup_eligible: verified.backup_eligible,
                user: handle_user,
            },
        )
        .map_err(|refusal| {
            attempt.cloned = refusal == PasskeyRefusal::CounterDidNotGrow;
            PasskeyLoginError::Invalid(refusal.to_string())
        })?;
        // The counter is written only if no other login moved it since it
        // was read: two clones racing with one value get one session.
        if !self
            .store
            .record_use(stored.id, stored.counter, verified, now)
            .await?
        {
            attempt.cloned = verified.counter != 0;
            return Err(invalid("the counter moved under a concurrent login"));
        }
        self.throttle.clear(&key).await?;
        self.throttle.clear(&account).await?;
        Ok(self
            .logins
            .start_session(user, methods, now, client)
            .await?)
    }

    async fn report(&self, event: SecurityEvent) {
        report(self.events.as_ref(), event).await;
    }
}

/// Whom a passkey login concerns, as far as it got: what its audit event says.
#[derive(Debug, Default)]
struct Attempt {
    /// The credential's user, once the credential is known.
    user: Option<User>,
    /// Refused by the account's second-factor window (every address).
    locked: bool,
    /// Refused because the signature counter did not grow.
    cloned: bool,
}
