//! The service that every use case hangs off, and the values they hand out.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use domain::revocation::{feed_degraded, read_since, revocation_horizon};
use domain::{AccessClaims, Session, SessionId, Timestamp, TokenPolicy, User, access_token_exp};

use crate::ports::{
    AccessTokenSigner, AccessTokenVerifier, Clock, FeedStatus, HealthCheck, LoginThrottle,
    MfaStore, PasswordHasher, RandomSource, RevocationBus, RevocationListener, SecurityEvent,
    SecurityEventKind, SecurityEvents, SessionStore, TotpCodes, UserRepository,
};
use crate::{RefreshSecret, RevokedSessions, SealKey, VerifiedTokens};

/// Clock leeway for `exp` and `nbf`, in seconds ([`domain::revocation::CLOCK_LEEWAY`]).
#[allow(clippy::cast_possible_wrap)]
pub const CLOCK_LEEWAY_SECS: i64 = domain::revocation::CLOCK_LEEWAY.as_secs() as i64;

/// The adapters behind each port, wired by `bin`.
#[derive(Clone)]
pub struct Ports {
    /// Users.
    pub users: Arc<dyn UserRepository>,
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn SessionStore>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Access-token signing.
    pub signer: Arc<dyn AccessTokenSigner>,
    /// Access-token verification.
    pub verifier: Arc<dyn AccessTokenVerifier>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub random: Arc<dyn RandomSource>,
    /// Revocation announcements.
    pub bus: Arc<dyn RevocationBus>,
    /// Login brute-force throttle.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Storage probe.
    pub health: Arc<dyn HealthCheck>,
    /// Security events: audit trail and outcome metrics.
    pub events: Arc<dyn SecurityEvents>,
    /// Two-factor login's state.
    pub mfa: Arc<dyn MfaStore>,
    /// TOTP secrets and codes.
    pub totp: Arc<dyn TotpCodes>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ports { .. }")
    }
}

/// Settings of the use cases (from the contract's configuration table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `JWT_ISSUER`.
    pub issuer: String,
    /// `JWT_AUDIENCE`.
    pub audience: String,
    /// `ACCESS_TOKEN_EXPIRY`.
    pub access_ttl: Duration,
    /// Refresh-token lifetimes and the grace.
    pub token_policy: TokenPolicy,
    /// `ALLOW_REGISTRATION`.
    pub allow_registration: bool,
    /// `TOKEN_CACHE_SIZE`: access tokens whose verified claims are kept
    /// (0 verifies the signature on every request).
    pub token_cache_size: usize,
    /// `AUDIT_RETENTION`: how long stored security events are kept.
    pub audit_retention: Duration,
    /// The server secret of the refresh-grace seals (`REFRESH_SEAL_KEY_PATH`).
    pub seal_key: SealKey,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "auth".into(),
            audience: "api".into(),
            access_ttl: Duration::from_secs(900),
            token_policy: TokenPolicy::default(),
            allow_registration: true,
            token_cache_size: 10_000,
            audit_retention: Duration::from_secs(90 * 86_400),
            // Tests only: the wiring always sets the key read from its file.
            seal_key: SealKey::from_bytes([0; SealKey::LEN]),
        }
    }
}

/// Who is asking, as the edge saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// Client address (peer, or forwarded by a trusted proxy).
    pub ip: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}

/// A signed access token.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedAccessToken {
    /// The compact JWS.
    pub token: String,
    /// Its `exp`, Unix seconds.
    pub expires_at: i64,
    /// Seconds from issue to `exp`.
    pub expires_in: i64,
}

impl std::fmt::Debug for IssuedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A refresh token handed to the client (the cookie).
#[derive(Debug)]
pub struct IssuedRefreshToken {
    /// The plaintext.
    pub secret: RefreshSecret,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Seconds until then: the cookie's `Max-Age`.
    pub max_age: i64,
}

/// What one housekeeping pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Ended sessions (their tokens went with them).
    pub sessions: u64,
    /// Closed login-throttle windows.
    pub login_windows: u64,
    /// Ended `mfaToken`s (logins that never got their second factor).
    pub mfa_tokens: u64,
    /// Security events past `AUDIT_RETENTION`.
    pub audit_events: u64,
}

/// The auth service: every use case is a method (one file each under `use_cases/`).
#[derive(Debug, Clone)]
pub struct AuthService {
    pub(crate) ports: Ports,
    pub(crate) config: AuthConfig,
    /// The revoked-session cache and the listeners it passes news on to.
    pub(crate) revocations: Revocations,
    pub(crate) verified: Arc<VerifiedTokens>,
}

impl AuthService {
    /// Wires the service and subscribes its revoked-session cache to the bus.
    pub fn new(ports: Ports, config: AuthConfig) -> Self {
        let revocations = Revocations {
            revoked: RevokedSessions::new(revocation_horizon(config.access_ttl)),
            listeners: Listeners::default(),
            clock: ports.clock.clone(),
        };
        let from_bus = revocations.clone();
        ports
            .bus
            .subscribe(Arc::new(move |id| from_bus.deliver(id)));
        let verified = Arc::new(VerifiedTokens::new(config.token_cache_size));
        Self {
            ports,
            config,
            revocations,
            verified,
        }
    }

    /// Loads the sessions revoked within one revocation horizon, so that a
    /// freshly started process refuses their tokens too. A process must not
    /// serve tokens before this succeeded.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn warm_revocations(&self) -> anyhow::Result<usize> {
        let now = self.ports.clock.now();
        let since = read_since(None, now, self.config.access_ttl);
        let ids = self.ports.sessions.revoked_since(since).await?;
        for id in &ids {
            self.revocations.revoked.insert(*id, now);
        }
        Ok(ids.len())
    }

    /// Registers a listener for revoked sessions (the WebSocket side closes
    /// sockets with it). It hears each session once, however many ways the
    /// news arrives.
    pub fn on_revocation(&self, listener: RevocationListener) {
        self.revocations
            .listeners
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// The state of the revocation feed.
    pub fn revocation_feed(&self) -> FeedStatus {
        self.ports.bus.status()
    }

    /// Whether the revocation feed has been down longer than
    /// [`domain::revocation::FEED_DOWN_GRACE`].
    pub fn revocations_degraded(&self) -> bool {
        feed_degraded(self.ports.bus.status().down_since, self.ports.clock.now())
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The keys access tokens are verified with, for the JWKS.
    pub fn published_keys(&self) -> Vec<crate::ports::PublishedKey> {
        self.ports.verifier.published_keys()
    }

    /// The current time from the clock port.
    pub fn now(&self) -> Timestamp {
        self.ports.clock.now()
    }

    /// Whether the database answers.
    pub async fn database_ok(&self) -> bool {
        self.ports.health.ping().await.is_ok()
    }

    /// Housekeeping: deletes sessions (with their tokens) that ended more than
    /// `keep` ago, in batches of `batch` so that no statement holds locks for
    /// long, the login-throttle windows that have closed and the `mfaToken`s
    /// that have ended.
    ///
    /// # Errors
    /// Storage failures (what was deleted before stays deleted).
    pub async fn prune(&self, keep: Duration, batch: u64) -> anyhow::Result<Pruned> {
        let now = self.ports.clock.now();
        let before = now.minus(keep);
        let sessions = in_batches(batch, || self.ports.sessions.prune(before, batch)).await?;
        let login_windows = self.ports.throttle.prune(now).await?;
        let mfa_tokens = self.ports.mfa.prune_challenges(now).await?;
        let audit_before = now.minus(self.config.audit_retention);
        let audit_events =
            in_batches(batch, || self.ports.events.prune(audit_before, batch)).await?;
        Ok(Pruned {
            sessions,
            login_windows,
            mfa_tokens,
            audit_events,
        })
    }

    /// Erases the grace seals that no replay can need any more (tokens rotated
    /// more than `REFRESH_REUSE_GRACE` ago); returns how many. The wiring runs
    /// it every second, so a seal outlives its grace by about a second.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn erase_stale_seals(&self) -> anyhow::Result<u64> {
        let before = self
            .config
            .token_policy
            .seals_needed_since(self.ports.clock.now());
        self.ports.sessions.erase_seals(before).await
    }

    /// Signs an access token for `user` in `session`; it expires after
    /// `ACCESS_TOKEN_EXPIRY`, or at the session's absolute end if that is sooner.
    pub(crate) async fn issue_access(
        &self,
        user: &User,
        session: &Session,
        now: Timestamp,
    ) -> anyhow::Result<IssuedAccessToken> {
        let iat = now.unix_seconds();
        let exp = access_token_exp(now, self.config.access_ttl, session.expires_at);
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: user.id,
            sid: session.id,
            jti: self.ports.random.uuid(),
            iat,
            nbf: iat,
            exp,
            username: user.username.as_str().to_owned(),
            amr: session.methods,
        };
        let token = self.ports.signer.sign(&claims).await?;
        Ok(IssuedAccessToken {
            token,
            expires_at: exp,
            expires_in: exp - iat,
        })
    }

    /// Hands `event` to the security-event port; a failure is logged, never
    /// returned: the audit trail must not make logins or refreshes fail.
    pub(crate) async fn report(&self, event: SecurityEvent) {
        if let Err(e) = self.ports.events.record(&event).await {
            tracing::error!(error = ?e, kind = event.kind.as_str(), "could not record a security event");
        }
    }

    /// A replayed rotated token got its family revoked (by a refresh or a
    /// logout): tells every process and the audit trail.
    pub(crate) async fn report_reuse(
        &self,
        session: &Session,
        now: Timestamp,
        client: &ClientInfo,
    ) {
        tracing::warn!(user = %session.user_id, session = %session.id, "refresh token reuse detected; family revoked");
        self.announce_revoked(&[session.id]).await;
        self.report(
            SecurityEvent::new(SecurityEventKind::ReuseDetected, now, client)
                .user(session.user_id)
                .session(session.id)
                .revoked(1),
        )
        .await;
    }

    /// Records revocations locally at once, then tells the other processes.
    pub(crate) async fn announce_revoked(&self, ids: &[SessionId]) {
        if ids.is_empty() {
            return;
        }
        for id in ids {
            self.revocations.deliver(*id);
        }
        if let Err(e) = self.ports.bus.publish(ids).await {
            // The sessions are revoked in storage: every process's periodic
            // read delivers them within its interval instead of at once.
            tracing::error!(error = ?e, sessions = ids.len(), "could not announce revoked sessions; the periodic read delivers them");
        }
    }
}

/// The service's own revocation listeners (the bus has one: the service).
#[derive(Clone, Default)]
struct Listeners(Arc<RwLock<Vec<RevocationListener>>>);

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.read().unwrap_or_else(PoisonError::into_inner).len();
        write!(f, "Listeners({n})")
    }
}

/// Passes each newly revoked session to the revoked-session cache and, the
/// first time only, to the listeners.
#[derive(Clone)]
pub(crate) struct Revocations {
    pub(crate) revoked: RevokedSessions,
    listeners: Listeners,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("revoked", &self.revoked.len())
            .field("listeners", &self.listeners)
            .finish_non_exhaustive()
    }
}

impl Revocations {
    fn deliver(&self, id: SessionId) {
        if !self.revoked.insert(id, self.clock.now()) {
            return;
        }
        // Called outside the lock, so that a listener may subscribe.
        let listeners = self
            .listeners
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for listener in &listeners {
            listener(id);
        }
    }
}

/// Runs `delete` (which removes at most `batch` rows) until a pass removes
/// fewer; returns the total.
async fn in_batches<F, Fut>(batch: u64, mut delete: F) -> anyhow::Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let mut total = 0;
    loop {
        let n = delete().await?;
        total += n;
        if n < batch {
            return Ok(total);
        }
    }
}
