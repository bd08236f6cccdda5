//! The application under test: the REAL wiring of the `authd` library,
//! started in-process on port 0 (REST and WebSocket), on a fresh SQLite or
//! PostgreSQL database, with a 2048-bit key generated once per process and
//! short, configurable durations, a [`TestClock`] and cheap hashing. It
//! derefs to its [`ApiClient`].

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use adapters::crypto::password::Argon2Cost;
use authd::wiring::KeyMaterial;
use authd::{RunningApp, Seams, Services};

use authd::{Config, ShutdownTrigger};

pub use crate::client::{ApiClient, PASSWORD, SignedIn, TestRequest, TestResponse};
use crate::clock::TestClock;

/// Which database the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// Knobs of a test app; [`TestOptions::new`] starts from the service's defaults.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// The database.
    pub backend: Backend,
    /// `ACCESS_TOKEN_EXPIRY`.
    pub access_ttl: Duration,
    /// `REFRESH_TOKEN_EXPIRY`.
    pub refresh_ttl: Duration,
    /// `REFRESH_REUSE_GRACE`.
    pub reuse_grace: Duration,
    /// `SESSION_MAX_AGE`.
    pub session_max_age: Duration,
    /// `ALLOW_REGISTRATION`.
    pub allow_registration: bool,
    /// `LOGIN_MAX_FAILURES`.
    pub login_max_failures: u32,
    /// `LOGIN_FAILURE_WINDOW`.
    pub login_failure_window: Duration,
    /// `PASSWORD_QUEUE_LIMIT`.
    pub password_queue_limit: usize,
    /// `API_MAX_CONNECTIONS`.
    pub api_max_connections: Option<usize>,
    /// `WS_MAX_CONNECTIONS_PER_USER`.
    pub ws_max_connections_per_user: usize,
    /// `API_REQUEST_TIMEOUT`.
    pub api_request_timeout: Duration,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<String>,
    /// `CORS_ORIGINS`.
    pub cors_origins: Vec<String>,
    /// `COOKIE_SECURE`.
    pub cookie_secure: bool,
    /// `WS_EXPIRY_WARNING`.
    pub ws_expiry_warning: Duration,
    /// `METRICS_ADDR=127.0.0.1:0`: serve `GET /metrics` (off by default).
    pub metrics: bool,
    /// `DEMO_DIR`.
    pub demo_dir: Option<std::path::PathBuf>,
    /// `API_DOCS`.
    pub api_docs: bool,
    /// argon2id at the OWASP cost instead of [`CHEAP_HASHING`] (for the
    /// tests that need hashing to take as long as in production).
    pub production_hashing: bool,
    /// Housekeeping's prune on its schedule (off for a test that calls
    /// `prune` itself: the first pass at start could take its rows).
    pub scheduled_prune: bool,
    /// `JWT_ALG`. RS256 starts the key set with the fixed test key (as an
    /// upgrade from key files would); another algorithm lets the service
    /// make its first key (RSA keys of 2048 bits).
    pub jwt_alg: domain::Algorithm,
}

/// The argon2id cost of test apps: a millisecond, not tens.
pub const CHEAP_HASHING: Argon2Cost = Argon2Cost {
    m_kib: 1024,
    t: 1,
    p: 1,
};

impl TestOptions {
    /// The service's own defaults (`Config::default()`) on `backend`.
    pub fn new(backend: Backend) -> Self {
        let d = Config::default();
        Self {
            backend,
            access_ttl: d.access_token_expiry,
            refresh_ttl: d.refresh_token_expiry,
            reuse_grace: d.refresh_reuse_grace,
            session_max_age: d.session_max_age,
            allow_registration: d.allow_registration,
            login_max_failures: d.login_max_failures,
            login_failure_window: d.login_failure_window,
            password_queue_limit: d.password_queue_limit,
            api_max_connections: d.api_max_connections,
            ws_max_connections_per_user: d.ws_max_connections_per_user,
            api_request_timeout: d.api_request_timeout,
            trusted_proxies: d.trusted_proxies.iter().map(ToString::to_string).collect(),
            cors_origins: d.cors_origins,
            cookie_secure: d.cookie_secure,
            ws_expiry_warning: d.ws_expiry_warning,
            metrics: d.metrics_addr.is_some(),
            demo_dir: d.demo_dir,
            api_docs: d.api_docs,
            production_hashing: false,
            scheduled_prune: true,
            jwt_alg: d.jwt_alg,
        }
    }
}

/// The test signing key ([`crate::keys::SERVICE`]) with a seal key of
/// this process.
pub fn test_keys() -> &'static KeyMaterial {
    static KEYS: OnceLock<KeyMaterial> = OnceLock::new();
    KEYS.get_or_init(|| {
        KeyMaterial::from_private(
            crate::keys::fixed_key(crate::keys::SERVICE),
            application::SealKey::generate(&adapters::system::OsRandom),
        )
    })
}

/// The test signing key, which every test app's key set starts with.
pub fn test_signing_key() -> &'static adapters::crypto::keys::PrivateKey {
    test_keys()
        .import
        .as_ref()
        .expect("the test keys carry a key to import")
}

/// Installs a log subscriber when `TEST_LOG` is set (once per process).
fn init_test_log() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                ))
                .with_test_writer()
                .try_init();
        }
    });
}

/// A running app and a client for it.
#[derive(Debug)]
pub struct TestApp {
    /// The REST client (`http://127.0.0.1:<port>`); the app derefs to it.
    pub api: ApiClient,
    /// The REST address.
    pub api_addr: SocketAddr,
    /// The WebSocket address.
    pub ws_addr: SocketAddr,
    /// The metrics address (`TestOptions::metrics`).
    pub metrics_addr: Option<SocketAddr>,
    /// The configuration the app runs with.
    pub config: Config,
    /// The running wiring (service, database).
    pub running: RunningApp,
    /// The time every use case and store of the app reads.
    pub clock: TestClock,
    stop: ShutdownTrigger,
}

impl std::ops::Deref for TestApp {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

/// Starts the app on a fresh database.
///
/// # Panics
/// When it cannot start, or PostgreSQL was asked for and is not installed.
pub async fn spawn_app(options: TestOptions) -> TestApp {
    init_test_log();
    let database_url = match options.backend {
        Backend::Sqlite => crate::postgres::fresh_sqlite_url(),
        Backend::Postgres => crate::postgres::fresh_migrated_postgres_url().await,
    };
    let config = Config {
        database_url,
        api_addr: "127.0.0.1:0".parse().expect("address"),
        ws_addr: "127.0.0.1:0".parse().expect("address"),
        access_token_expiry: options.access_ttl,
        refresh_token_expiry: options.refresh_ttl,
        refresh_reuse_grace: options.reuse_grace,
        session_max_age: options.session_max_age,
        allow_registration: options.allow_registration,
        login_max_failures: options.login_max_failures,
        login_failure_window: options.login_failure_window,
        password_queue_limit: options.password_queue_limit,
        api_max_connections: options.api_max_connections,
        ws_max_connections_per_user: options.ws_max_connections_per_user,
        api_request_timeout: options.api_request_timeout,
        trusted_proxies: options
            .trusted_proxies
            .iter()
            .map(|p| p.parse().expect("proxy"))
            .collect(),
        cors_origins: options.cors_origins.clone(),
        cookie_secure: options.cookie_secure,
        ws_expiry_warning: options.ws_expiry_warning,
        metrics_addr: options
            .metrics
            .then(|| "127.0.0.1:0".parse().expect("address")),
        demo_dir: options.demo_dir.clone(),
        api_docs: options.api_docs,
        jwt_alg: options.jwt_alg,
        ..Config::default()
    };
    let mut keys = tokio::task::spawn_blocking(test_keys)
        .await
        .expect("key generation")
        .clone();
    if options.jwt_alg != domain::Algorithm::Rs256 {
        keys.import = None;
    }
    let clock = TestClock::default();
    let seams = Seams {
        clock: Arc::new(clock.clone()),
        argon2: (!options.production_hashing).then_some(CHEAP_HASHING),
        scheduled_prune: options.scheduled_prune,
        rsa_key_bits: 2048,
    };
    let running = authd::start_with(&config, &keys, Services::Both, &seams)
        .await
        .expect("starting the app");
    let api_addr = running.api_addr.expect("the API runs");
    let ws_addr = running.ws_addr.expect("the WebSocket service runs");
    let metrics_addr = running.metrics_addr;
    let stop = running.shutdown_trigger();
    TestApp {
        api: ApiClient::new(format!("http://{api_addr}")),
        api_addr,
        ws_addr,
        metrics_addr,
        config,
        running,
        clock,
        stop,
    }
}
