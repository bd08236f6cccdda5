//! The life of a running process: wait for the database and the revoked
//! sessions, bind the listeners, serve, and stop gracefully.
//!
//! Tests start the real lifecycle in-process: [`start_with`] with port-0
//! addresses, their own [`Seams`] and a key from [`KeyMaterial::generate`],
//! then talk to [`RunningApp::api_addr`] / [`RunningApp::ws_addr`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::crypto::key_seal::KeyDoesNotOpen;
use adapters::http::{self, ConnectionLimits};
use adapters::persistence::Database;
use adapters::telemetry::Metrics;
use adapters::ws;
use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::config::Config;
use crate::key_files::KeyMaterial;
use crate::wiring::{self, Seams, UseCases};

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
    /// The use cases (tests call them directly).
    pub use_cases: UseCases,
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
    trusted_proxies: Vec<adapters::net::IpNet>,
    stop: &watch::Sender<bool>,
    what: &'static str,
) -> JoinHandle<anyhow::Result<()>>
where
    E: http::IntoEndpoint + Send + 'static,
    E::Endpoint: 'static,
{
    let shutdown = stopped(stop.subscribe());
    tokio::spawn(async move {
        http::serve(listener, endpoint, limits, trusted_proxies, shutdown)
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
///
/// # Errors
/// A signing key the server secret does not open: no retry mends that.
async fn until_ready(
    config: &Config,
    keys: &KeyMaterial,
    metrics: &Metrics,
    seams: &Seams,
    services: Services,
) -> anyhow::Result<(Database, UseCases)> {
    let mut backoff = Duration::from_millis(250);
    tracing::info!("not serving yet: connecting to the database to load the revoked sessions");
    loop {
        let attempt = async {
            let database = wiring::connect(config).await?;
            let signs = services.api();
            let auth =
                wiring::build_service(config, &database, keys, metrics.clone(), seams, signs)
                    .await?;
            let revoked = auth
                .revocations
                .warm()
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
                return Ok((database, auth));
            }
            Ok(Err(e)) if KeyDoesNotOpen::in_chain(&e).is_some() => {
                return Err(e.context(format!(
                    "the server secret {} opens no signing key of this database: \
                     it is another deployment's secret (restore the right file, or \
                     set REFRESH_SEAL_KEY_PATH to it)",
                    config.seal_key_path().display()
                )));
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
/// (and the housekeeping). Returns once they accept connections.
///
/// # Errors
/// Database, key or listener failures.
pub async fn start(
    config: &Config,
    keys: &KeyMaterial,
    services: Services,
) -> anyhow::Result<RunningApp> {
    start_with(config, keys, services, &Seams::default()).await
}

/// [`start`] with a clock and a hashing cost of the caller's (tests).
///
/// # Errors
/// Database, key or listener failures.
pub async fn start_with(
    config: &Config,
    keys: &KeyMaterial,
    services: Services,
    seams: &Seams,
) -> anyhow::Result<RunningApp> {
    let metrics = if config.metrics_addr.is_some() || config.otlp.is_some() {
        Metrics::new(config.otlp.as_ref()).context("setting up metrics")?
    } else {
        Metrics::disabled()
    };
    let (database, auth) = until_ready(config, keys, &metrics, seams, services).await?;
    let pool = database.clone();
    metrics.observe_pool(Arc::new(move || pool.pool_stats()));
    let feed = auth.revocations.clone();
    metrics.observe_revocation_feed(Arc::new(move || feed.feed()));

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
        let endpoint = http::routes(
            wiring::rest(&auth),
            wiring::http_config(config, metrics.clone()),
        )?;
        let limits = ConnectionLimits {
            max_connections: config.api_max_connections.unwrap_or_else(|| {
                ConnectionLimits::cap_for(adapters::system::raise_open_file_limit())
            }),
            request_deadline: config.api_request_timeout,
            max_per_address: config.api_max_connections_per_address,
        };
        tasks.push((
            "api",
            serve_http(
                listener,
                endpoint,
                limits,
                config.trusted_proxies.clone(),
                &stop,
                "REST server",
            ),
        ));
        tracing::info!(%addr, "REST API listening");
        api_addr = Some(addr);
    }
    if services.ws() {
        let listener = bind_ws(config.ws_addr, config.ws_reuse_port)
            .with_context(|| format!("binding WS_ADDR {}", config.ws_addr))?;
        let addr = listener.local_addr()?;
        let shutdown = stopped(stop.subscribe());
        let (access, ws_config) = (
            auth.access.clone(),
            adapters::ws::WsConfig {
                dpop: Some(auth.dpop.clone()),
                ..wiring::ws_config(config, metrics.clone())
            },
        );
        tasks.push((
            "ws",
            tokio::spawn(async move { ws::serve(listener, access, ws_config, shutdown).await }),
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
                Vec::new(),
                &stop,
                "metrics server",
            ),
        ));
        tracing::info!(%addr, "metrics listening (GET /metrics)");
        metrics_addr = Some(addr);
    }

    crate::housekeeping::spawn(
        &auth.housekeeping,
        &stop,
        services.api(),
        seams.scheduled_prune,
    );
    if services.api() {
        crate::outbox::spawn(&auth.outbox, &seams.outbox_wake, &stop);
    }

    Ok(RunningApp {
        api_addr,
        ws_addr,
        metrics_addr,
        metrics,
        use_cases: auth,
        database,
        stop,
        tasks,
    })
}

/// Binds the WebSocket listener, with `SO_REUSEPORT` when several processes
/// are to share the port (`WS_REUSE_PORT`).
fn bind_ws(
    addr: std::net::SocketAddr,
    reuse_port: bool,
) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind`: a restarted process rebinds past TIME_WAIT.
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    // The kernel caps it at net.core.somaxconn.
    socket.listen(4096)
}
