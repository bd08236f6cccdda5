//! The application under test: the REAL wiring of the `authd` library,
//! started in-process on port 0 (REST and WebSocket), on a fresh SQLite or
//! PostgreSQL database, with a 2048-bit key generated once per process and
//! short, configurable durations; plus typed request helpers.
//!
//! Every response that passes through [`TestApp::send`] is checked: no
//! request of the suite may get a 5xx (except the documented `503` of the
//! health check), so a 500 anywhere fails the test that caused it.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use adapters::crypto::password::Argon2Cost;
use authd::wiring::KeyMaterial;
use authd::{RunningApp, Seams, Services};

use crate::clock::TestClock;
use authd::{Config, ShutdownTrigger};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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
    /// `http://127.0.0.1:<port>`.
    pub base: String,
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
    client: reqwest::Client,
    stop: ShutdownTrigger,
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
        ..Config::default()
    };
    let keys = tokio::task::spawn_blocking(test_keys)
        .await
        .expect("key generation");
    let clock = TestClock::default();
    let seams = Seams {
        clock: Arc::new(clock.clone()),
        argon2: (!options.production_hashing).then_some(CHEAP_HASHING),
    };
    let running = authd::start_with(&config, keys, Services::Both, &seams)
        .await
        .expect("starting the app");
    let api_addr = running.api_addr.expect("the API runs");
    let ws_addr = running.ws_addr.expect("the WebSocket service runs");
    let metrics_addr = running.metrics_addr;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let stop = running.shutdown_trigger();
    TestApp {
        base: format!("http://{api_addr}"),
        api_addr,
        ws_addr,
        metrics_addr,
        config,
        running,
        clock,
        client,
        stop,
    }
}

/// A response, read completely.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub text: String,
}

impl TestResponse {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// One header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Set-Cookie` header.
    pub fn set_cookie(&self) -> Option<&str> {
        self.header("set-cookie")
    }

    /// The value of the `refreshToken` cookie that was set.
    pub fn refresh_cookie(&self) -> Option<String> {
        let cookie = self.set_cookie()?;
        let first = cookie.split(';').next()?;
        first.strip_prefix("refreshToken=").map(str::to_owned)
    }

    /// The `accessToken` of a token response.
    pub fn access_token(&self) -> String {
        self.json()["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("no accessToken in {}", self.text))
            .to_owned()
    }

    /// Asserts a problem+json error with `status` and `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text);
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/problem+json")),
            "content type of a {status}: {:?}",
            self.header("content-type")
        );
        let body = self.json();
        assert_eq!(body["code"], code, "code in {}", self.text);
        assert_eq!(body["status"], status, "status field in {}", self.text);
        for field in ["type", "title", "detail"] {
            assert!(
                body[field].is_string(),
                "problem field {field} in {}",
                self.text
            );
        }
    }
}

/// A request being built.
#[derive(Debug)]
pub struct TestRequest<'a> {
    _app: &'a TestApp,
    builder: reqwest::RequestBuilder,
    path: String,
}

impl TestRequest<'_> {
    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// `Authorization: Bearer <token>`.
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        let value = format!("Bearer {token}");
        self.header("authorization", &value)
    }

    /// `Cookie: refreshToken=<token>`.
    #[must_use]
    pub fn refresh_cookie(self, token: &str) -> Self {
        let value = format!("refreshToken={token}");
        self.header("cookie", &value)
    }

    /// A JSON body.
    #[must_use]
    pub fn json(mut self, body: &Value) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    /// A raw body with a content type.
    #[must_use]
    pub fn body(mut self, content_type: &str, body: impl Into<reqwest::Body>) -> Self {
        self.builder = self.builder.header("content-type", content_type).body(body);
        self
    }

    /// Sends it; fails the test on a 5xx (other than the health check's 503).
    pub async fn send(self) -> TestResponse {
        let health = self.path == "/api/health";
        let response = self.send_unchecked().await;
        let allowed = response.status == StatusCode::SERVICE_UNAVAILABLE && health;
        assert!(
            !response.status.is_server_error() || allowed,
            "the server answered {} ({})",
            response.status,
            response.text
        );
        response
    }

    /// Sends it without the 5xx check (for the sabotage tests).
    pub async fn send_unchecked(self) -> TestResponse {
        let response = self
            .builder
            .send()
            .await
            .expect("the request reaches the server");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        TestResponse {
            status,
            headers,
            text,
        }
    }
}

impl TestApp {
    /// A request to `path` (e.g. `/api/login`).
    pub fn request(&self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest {
            _app: self,
            builder: self.client.request(method, format!("{}{path}", self.base)),
            path: path.into(),
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::POST, path)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::DELETE, path)
    }

    /// `POST /api/register`.
    pub async fn register(&self, username: &str, password: &str) -> TestResponse {
        self.post("/api/register")
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
    }

    /// `POST /api/login`.
    pub async fn login(&self, username: &str, password: &str) -> TestResponse {
        self.post("/api/login")
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
    }

    /// `POST /api/refresh` with this refresh token.
    pub async fn refresh(&self, refresh: &str) -> TestResponse {
        self.post("/api/refresh")
            .refresh_cookie(refresh)
            .send()
            .await
    }

    /// `GET /api/protected` with this access token.
    pub async fn protected(&self, access: &str) -> TestResponse {
        self.get("/api/protected").bearer(access).send().await
    }

    /// Registers and logs in a fresh user; returns (access token, refresh token, user id).
    pub async fn signed_in(&self, username: &str) -> Session {
        let r = self.register(username, PASSWORD).await;
        assert_eq!(r.status, StatusCode::CREATED, "register: {}", r.text);
        let user_id = r.json()["id"].as_str().expect("id").to_owned();
        let r = self.login(username, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "login: {}", r.text);
        Session {
            access: r.access_token(),
            refresh: r.refresh_cookie().expect("refresh cookie"),
            user_id,
        }
    }
}

/// The password the helpers register users with.
pub const PASSWORD: &str = "correct horse battery staple";

/// A logged-in user's tokens.
#[derive(Debug, Clone)]
pub struct Session {
    /// Access token.
    pub access: String,
    /// Refresh token (the cookie's value).
    pub refresh: String,
    /// The user's id.
    pub user_id: String,
}

/// The `refreshToken` value from a response's `Set-Cookie`, with the raw
/// header (for tests that drive the service with their own `reqwest` client).
pub fn refresh_cookie_of(resp: &reqwest::Response) -> Option<(String, String)> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("refreshToken="))
        .map(|raw| {
            let value = raw["refreshToken=".len()..]
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned();
            (value, raw.to_owned())
        })
}
