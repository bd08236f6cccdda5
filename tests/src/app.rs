//! The application under test: the REAL wiring of the `authd` library,
//! started in-process on port 0 (REST and WebSocket), on a fresh SQLite or
//! PostgreSQL database, with the configuration a test gives (a [`Config`],
//! usually `Config { <what the test is about>, ..Config::default() }`), the
//! fixed test key, a [`TestClock`] and cheap hashing. It derefs to its
//! [`ApiClient`].

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, OnceLock};

use adapters::crypto::keys::MIN_KEY_BITS;
use adapters::crypto::password::Argon2Cost;
use authd::wiring::KeyMaterial;
use authd::{Config, RunningApp, Seams, Services, ShutdownTrigger};

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

/// A loopback port the system picks: where a test app listens (and, given
/// as `METRICS_ADDR`, serves `GET /metrics`).
pub const ANY_LOOPBACK_PORT: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));

/// The argon2id cost of test apps: a millisecond, not tens.
pub const CHEAP_HASHING: Argon2Cost = Argon2Cost {
    m_kib: 1024,
    t: 1,
    p: 1,
};

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
    /// The metrics address (when the configuration has a `metrics_addr`).
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

/// Starts the app with `config` on a fresh `backend` database, listening on
/// loopback ports the system picks (`config`'s database and REST and
/// WebSocket addresses are replaced; the default `MAIL_DIR` becomes a fresh
/// directory of the test process's, removed when it exits), with the test [`Seams`]: a
/// [`TestClock`], [`CHEAP_HASHING`], the scheduled prune, RSA keys of
/// [`MIN_KEY_BITS`] (2048).
/// With `JWT_ALG=RS256` the key set starts with the fixed test key (as an
/// upgrade from key files would); another algorithm lets the service make
/// its first key.
///
/// # Panics
/// When it cannot start, or PostgreSQL was asked for and is not installed.
pub async fn spawn_app(backend: Backend, config: Config) -> TestApp {
    spawn_app_with_seams(backend, config, |_| {}).await
}

/// Another process of `app`'s deployment: the same database and keys, its
/// own loopback ports and [`TestClock`] (as a second `authd api` behind a
/// load balancer would be).
///
/// # Panics
/// When it cannot start.
pub async fn spawn_sibling(app: &TestApp) -> TestApp {
    let config = Config {
        api_addr: ANY_LOOPBACK_PORT,
        ws_addr: ANY_LOOPBACK_PORT,
        auto_migrate: false,
        ..app.config.clone()
    };
    let seams = Seams {
        argon2: Some(CHEAP_HASHING),
        rsa_key_bits: MIN_KEY_BITS,
        ..Seams::default()
    };
    start(config, &test_keys().clone(), seams).await
}

/// [`spawn_app`], with the test [`Seams`] changed by `change` (argon2id at
/// the OWASP cost, the scheduled prune off); the clock stays the app's
/// [`TestClock`].
///
/// # Panics
/// As [`spawn_app`].
pub async fn spawn_app_with_seams(
    backend: Backend,
    config: Config,
    change: impl FnOnce(&mut Seams),
) -> TestApp {
    init_test_log();
    let database_url = match backend {
        Backend::Sqlite => crate::postgres::fresh_sqlite_url(),
        Backend::Postgres => crate::postgres::fresh_migrated_postgres_url().await,
    };
    // A test may bind the API to an address of its own network namespace
    // (`crate::netns`), with port 0; any other choice becomes loopback.
    let api_addr = if config.api_addr.port() == 0 {
        config.api_addr
    } else {
        ANY_LOOPBACK_PORT
    };
    // Without `SMTP_URL` mail goes into files: never the default
    // `data/mail` under the working directory (the repository's `tests/`),
    // but a directory of the app's own that goes with the test process.
    let mail_dir = if config.mail_dir == Config::default().mail_dir {
        crate::postgres::fresh_temp_dir("mail")
    } else {
        config.mail_dir
    };
    let config = Config {
        database_url,
        api_addr,
        ws_addr: ANY_LOOPBACK_PORT,
        mail_dir,
        ..config
    };
    let mut keys = tokio::task::spawn_blocking(test_keys)
        .await
        .expect("key generation")
        .clone();
    if config.jwt_alg != domain::Algorithm::Rs256 {
        keys.import = None;
    }
    let mut seams = Seams {
        argon2: Some(CHEAP_HASHING),
        rsa_key_bits: MIN_KEY_BITS,
        ..Seams::default()
    };
    change(&mut seams);
    start(config, &keys, seams).await
}

/// Starts the real wiring with `config`, `keys` and `seams` (whose clock
/// becomes a fresh [`TestClock`]), on loopback ports the system picks.
async fn start(config: Config, keys: &KeyMaterial, mut seams: Seams) -> TestApp {
    let clock = TestClock::default();
    seams.clock = Arc::new(clock.clone());
    let running = authd::start_with(&config, keys, Services::Both, &seams)
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
