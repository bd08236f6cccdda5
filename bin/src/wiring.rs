//! Builds the adapters and the [`AuthService`], and starts the servers.
//!
//! Tests start the real wiring in-process: [`start`] with port-0 addresses
//! and a key from [`KeyMaterial::generate`], then talk to
//! [`RunningApp::api_addr`] / [`RunningApp::ws_addr`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::crypto::jwt::{JwtSigner, JwtVerifier};
use adapters::crypto::password::Argon2Hasher;
use adapters::http::{self, ConnectionLimits, HttpConfig};
use adapters::persistence::{
    Database, PgRevocationBus, PollingRevocationBus, SeaAuditLog, SeaLoginThrottle,
    SeaSessionStore, SeaUserRepository,
};
use adapters::system::{OsRandom, SystemClock};
use adapters::telemetry::metrics::PasswordQueueStatus;
use adapters::telemetry::{EventRecorder, Metrics};
use adapters::ws::{self, WsConfig};
use anyhow::Context;
use application::ports::{Clock, RevocationBus, SessionStore, ThrottlePolicy};
use application::use_cases::UserAccounts;
use application::{AuthConfig, AuthService, Ports, Pruned};
use domain::TokenPolicy;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::config::Config;
pub use crate::key_files::{DEFAULT_KEY_BITS, KeyMaterial};

/// How often ended sessions are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long ended sessions are kept before pruning.
const PRUNE_KEEP: Duration = Duration::from_secs(7 * 86_400);
/// Rows deleted per prune statement.
const PRUNE_BATCH: u64 = 1000;
/// How often the refresh-grace seals whose grace has passed are erased.
const SEAL_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Which servers to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Services {
    /// REST and WebSocket in one process (`authd serve`).
    Both,
    /// REST only (`authd api`).
    Api,
    /// WebSocket only (`authd ws`).
    Ws,
}

impl Services {
    fn api(self) -> bool {
        matches!(self, Self::Both | Self::Api)
    }

    fn ws(self) -> bool {
        matches!(self, Self::Both | Self::Ws)
    }
}

/// Connects to the configured database and applies migrations unless `AUTO_MIGRATE=false`.
///
/// # Errors
/// The database cannot be reached, or a migration failed.
pub async fn connect(config: &Config) -> anyhow::Result<Database> {
    let db = Database::connect(&config.database_url)
        .await
        .context("connecting to DATABASE_URL")?;
    if config.auto_migrate {
        db.migrate().await.context("applying migrations")?;
    }
    Ok(db)
}

/// What `authd user add` needs: the users table and the password hasher,
/// on a connected (and, unless `AUTO_MIGRATE=false`, migrated) database.
/// No key is read or created, no revocation feed started.
///
/// # Errors
/// The database cannot be reached, or the hasher cannot start.
pub async fn user_accounts(config: &Config) -> anyhow::Result<UserAccounts> {
    let db = connect(config).await?;
    Ok(UserAccounts {
        users: Arc::new(SeaUserRepository::new(db)),
        hasher: Arc::new(Argon2Hasher::with_queue_limit(config.password_queue_limit)?),
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
    })
}

/// Builds every adapter and the service on `db`; security events count into `metrics`.
///
/// # Errors
/// The revocation bus could not start.
pub async fn build_service_with_metrics(
    config: &Config,
    db: &Database,
    keys: &KeyMaterial,
    metrics: Metrics,
) -> anyhow::Result<Arc<AuthService>> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sessions: Arc<dyn SessionStore> = Arc::new(SeaSessionStore::new(db.clone()));
    // Both read the recent revocations every second: a lost NOTIFY, or another
    // process on the same SQLite file, is still heard.
    let bus: Arc<dyn RevocationBus> = if db.is_postgres() {
        Arc::new(
            PgRevocationBus::start(
                &config.database_url,
                config.access_token_expiry,
                clock.clone(),
            )
            .await
            .context("starting the revocation bus")?,
        )
    } else {
        Arc::new(PollingRevocationBus::start(
            sessions.clone(),
            config.access_token_expiry,
            clock.clone(),
        ))
    };
    let throttle_policy = ThrottlePolicy {
        max_failures: config.login_max_failures,
        window: config.login_failure_window,
    };
    let hasher = Arc::new(Argon2Hasher::with_queue_limit(config.password_queue_limit)?);
    let queue = Arc::clone(&hasher);
    metrics.observe_password_queue(Arc::new(move || {
        let stats = queue.queue_stats();
        PasswordQueueStatus {
            waiting: stats.waiting as u64,
            shed: stats.shed,
            skipped: stats.skipped,
        }
    }));
    let ports = Ports {
        users: Arc::new(SeaUserRepository::new(db.clone())),
        sessions,
        hasher,
        signer: Arc::new(JwtSigner::new(keys.private.clone())),
        verifier: Arc::new(JwtVerifier::new(
            keys.public.clone(),
            config.jwt_issuer.clone(),
            config.jwt_audience.clone(),
        )),
        clock,
        random: Arc::new(OsRandom),
        bus,
        throttle: Arc::new(SeaLoginThrottle::new(db.clone(), throttle_policy)),
        health: Arc::new(db.clone()),
        events: Arc::new(EventRecorder::new(metrics).with_store(SeaAuditLog::new(db.clone()))),
    };
    let auth_config = AuthConfig {
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
        access_ttl: config.access_token_expiry,
        token_policy: TokenPolicy {
            refresh_ttl: config.refresh_token_expiry,
            reuse_grace: config.refresh_reuse_grace,
            session_max_age: config.session_max_age,
        },
        allow_registration: config.allow_registration,
        token_cache_size: config.token_cache_size,
        audit_retention: config.audit_retention,
        seal_key: keys.seal.clone(),
    };
    Ok(Arc::new(AuthService::new(ports, auth_config)))
}

/// The REST settings of `config`; request counts go to `metrics`.
pub fn http_config(config: &Config, metrics: Metrics) -> HttpConfig {
    HttpConfig {
        cookie_secure: config.cookie_secure,
        trusted_proxies: config.trusted_proxies.clone(),
        cors_origins: config.cors_origins.clone(),
        demo_dir: config.demo_dir.clone(),
        docs: config.api_docs,
        metrics,
    }
}

/// The WebSocket settings of `config`; connection counts go to `metrics`.
pub fn ws_config(config: &Config, metrics: Metrics) -> WsConfig {
    WsConfig {
        expiry_warning: config.ws_expiry_warning,
        allowed_origins: config.cors_origins.clone(),
        max_connections_per_user: config.ws_max_connections_per_user,
        max_connections_per_address: config.ws_max_connections_per_address,
        trusted_proxies: config.trusted_proxies.clone(),
        metrics,
        ..WsConfig::default()
    }
}

/// Running servers.
#[derive(Debug)]
pub struct RunningApp {
    /// Where the REST API listens, if it runs.
    pub api_addr: Option<SocketAddr>,
    /// Where the WebSocket service listens, if it runs.
    pub ws_addr: Option<SocketAddr>,
    /// Where `GET /metrics` listens (`METRICS_ADDR`), if set.
    pub metrics_addr: Option<SocketAddr>,
    /// The metric instruments (disabled without `METRICS_ADDR` and OTLP).
    pub metrics: Metrics,
    /// The service (tests call use cases directly with it).
    pub auth: Arc<AuthService>,
    /// The database (tests close it to sabotage).
    pub database: Database,
    stop: Arc<watch::Sender<bool>>,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
}

/// Triggers a graceful shutdown of a [`RunningApp`].
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(Arc<watch::Sender<bool>>);

impl ShutdownTrigger {
    /// Asks every server to stop (idempotent).
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl RunningApp {
    /// A handle that stops the servers.
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.stop.clone())
    }

    /// Asks every server to stop.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until every server has stopped.
    ///
    /// # Errors
    /// A server failed.
    pub async fn wait(self) -> anyhow::Result<()> {
        let mut first_error = None;
        for (name, task) in self.tasks {
            let result = task.await.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = result {
                tracing::error!(error = ?e, server = name, "server failed");
                first_error.get_or_insert(e.context(format!("the {name} server failed")));
            }
        }
        // Exports what OTLP has not sent yet.
        self.metrics.shutdown().await;
        first_error.map_or(Ok(()), Err)
    }
}

/// Runs a poem server on `listener` until `stop` says so.
fn serve_http<E>(
    listener: tokio::net::TcpListener,
    endpoint: E,
    limits: ConnectionLimits,
    stop: &watch::Sender<bool>,
    what: &'static str,
) -> JoinHandle<anyhow::Result<()>>
where
    E: http::IntoEndpoint + Send + 'static,
    E::Endpoint: 'static,
{
    let shutdown = stopped(stop.subscribe());
    tokio::spawn(async move {
        http::serve(listener, endpoint, limits, shutdown)
            .await
            .context(what)
    })
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    // A dropped sender also means stop.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Longest wait between two start-up attempts.
const START_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long one start-up attempt (connect, migrate, listen, load) may take.
const START_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects, migrates, builds the service and loads the revoked sessions,
/// retrying until all of it succeeds. Nothing listens before: a process that
/// has not loaded the revocation set serves no token (it would accept the
/// access tokens of sessions revoked before it started).
async fn until_ready(
    config: &Config,
    keys: &KeyMaterial,
    metrics: &Metrics,
) -> (Database, Arc<AuthService>) {
    let mut backoff = Duration::from_millis(250);
    tracing::info!("not serving yet: connecting to the database to load the revoked sessions");
    loop {
        let attempt = async {
            let database = connect(config).await?;
            let auth = build_service_with_metrics(config, &database, keys, metrics.clone()).await?;
            let revoked = auth
                .warm_revocations()
                .instrument(tracing::info_span!("warm_revocations"))
                .await
                .context("loading the revoked sessions")?;
            anyhow::Ok((database, auth, revoked))
        };
        match tokio::time::timeout(START_ATTEMPT_TIMEOUT, attempt).await {
            Ok(Ok((database, auth, revoked))) => {
                tracing::info!(
                    backend = if database.is_postgres() {
                        "postgres"
                    } else {
                        "sqlite"
                    },
                    migrated = config.auto_migrate,
                    revoked_sessions = revoked,
                    "database ready, revoked sessions loaded"
                );
                return (database, auth);
            }
            Ok(Err(e)) => tracing::warn!(
                error = ?e,
                retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                "not serving yet: the database is needed to load the revoked sessions"
            ),
            Err(_) => tracing::warn!(
                timeout_s = START_ATTEMPT_TIMEOUT.as_secs(),
                retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                "not serving yet: the database did not answer in time"
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(START_BACKOFF_MAX);
    }
}

/// Connects, builds the service, binds the listeners and starts the servers
/// (and the prune task). Returns once they accept connections.
///
/// # Errors
/// Database, key or listener failures.
pub async fn start(
    config: &Config,
    keys: &KeyMaterial,
    services: Services,
) -> anyhow::Result<RunningApp> {
    let metrics = if config.metrics_addr.is_some() || config.otlp.is_some() {
        Metrics::new(config.otlp.as_ref()).context("setting up metrics")?
    } else {
        Metrics::disabled()
    };
    let (database, auth) = until_ready(config, keys, &metrics).await;
    let pool = database.clone();
    metrics.observe_pool(Arc::new(move || pool.pool_stats()));
    let feed = auth.clone();
    metrics.observe_revocation_feed(Arc::new(move || feed.revocation_feed()));

    let (stop, _) = watch::channel(false);
    let stop = Arc::new(stop);
    let mut tasks = Vec::new();
    let mut api_addr = None;
    let mut ws_addr = None;

    if services.api() {
        let listener = tokio::net::TcpListener::bind(config.api_addr)
            .await
            .with_context(|| format!("binding API_ADDR {}", config.api_addr))?;
        let addr = listener.local_addr()?;
        let endpoint = http::routes(auth.clone(), http_config(config, metrics.clone()))?;
        let limits = ConnectionLimits {
            max_connections: config.api_max_connections.unwrap_or_else(|| {
                ConnectionLimits::cap_for(adapters::system::raise_open_file_limit())
            }),
            request_deadline: config.api_request_timeout,
        };
        tasks.push((
            "api",
            serve_http(listener, endpoint, limits, &stop, "REST server"),
        ));
        tracing::info!(%addr, "REST API listening");
        api_addr = Some(addr);
    }
    if services.ws() {
        let listener = tokio::net::TcpListener::bind(config.ws_addr)
            .await
            .with_context(|| format!("binding WS_ADDR {}", config.ws_addr))?;
        let addr = listener.local_addr()?;
        let shutdown = stopped(stop.subscribe());
        let (auth, ws_config) = (auth.clone(), ws_config(config, metrics.clone()));
        tasks.push((
            "ws",
            tokio::spawn(async move { ws::serve(listener, auth, ws_config, shutdown).await }),
        ));
        tracing::info!(%addr, "WebSocket service listening");
        ws_addr = Some(addr);
    }
    let mut metrics_addr = None;
    if let Some(bind) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding METRICS_ADDR {bind}"))?;
        let addr = listener.local_addr()?;
        let endpoint = adapters::telemetry::metrics::endpoint(metrics.clone());
        tasks.push((
            "metrics",
            serve_http(
                listener,
                endpoint,
                ConnectionLimits::default(),
                &stop,
                "metrics server",
            ),
        ));
        tracing::info!(%addr, "metrics listening (GET /metrics)");
        metrics_addr = Some(addr);
    }

    if services.api() {
        tokio::spawn(sweep_seals(auth.clone(), stop.subscribe()));
    }

    let prune_auth = auth.clone();
    let mut prune_stop = stop.subscribe();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = prune_stop.wait_for(|s| *s) => break,
            }
            // One trace per housekeeping pass, its statements below it.
            let pass = prune_auth
                .prune(PRUNE_KEEP, PRUNE_BATCH)
                .instrument(tracing::info_span!("housekeeping"));
            match pass.await {
                Ok(pruned) if pruned == Pruned::default() => {}
                Ok(pruned) => tracing::info!(
                    sessions = pruned.sessions,
                    login_windows = pruned.login_windows,
                    audit_events = pruned.audit_events,
                    "pruned ended sessions, closed throttle windows and old security events"
                ),
                Err(e) => tracing::warn!(error = ?e, "housekeeping failed"),
            }
        }
    });

    Ok(RunningApp {
        api_addr,
        ws_addr,
        metrics_addr,
        metrics,
        auth,
        database,
        stop,
        tasks,
    })
}

/// Erases the refresh-grace seals whose grace has passed, every
/// [`SEAL_SWEEP_EVERY`] until `stop` (one indexed statement, usually a no-op).
async fn sweep_seals(auth: Arc<AuthService>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(SEAL_SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        match auth.erase_stale_seals().await {
            Ok(_) => failing = false,
            // Once per outage, not every second; the next pass catches up.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = ?e, "erasing stale refresh-grace seals failed");
            }
            Err(_) => {}
        }
    }
}
