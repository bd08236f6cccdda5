//! WebSocket adapter: the async-tungstenite edge of the contract's
//! "WebSocket" section.
//!
//! - `admission`: path, `Origin` and access token at the handshake (refusals before the upgrade);
//! - `connection`: one task per socket, one timer per socket (expiry warning,
//!   expiry, ping, dead peer), live `reauth`;
//! - `registry`: session id -> connections, rung by the revocation bus;
//! - `protocol`: the JSON messages;
//! - `deflate`: permessage-deflate (RFC 7692) under tungstenite.

mod admission;
mod connection;
pub mod deflate;
mod first_message;
mod handshake;
mod kid_names;
mod limits;
mod protocol;
mod registry;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use application::AccessCheck;
use tungstenite::protocol::WebSocketConfig;

use self::connection::Shared;
use self::limits::Limits;
use self::registry::Registry;
use crate::telemetry::Metrics;

/// How long `serve` waits at shutdown for connections to finish their close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Read buffer per connection: messages are small JSON, and tungstenite
/// allocates this eagerly for every socket and keeps it (its default is
/// 128 KiB). A larger message grows it as far as that message needs.
const READ_BUFFER: usize = 512;
/// Writes below this size wait for the flush that every send ends with.
const WRITE_BUFFER: usize = 8 * 1024;
/// Settings of the WebSocket service.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// `WS_EXPIRY_WARNING`: when to send `token_expiring` before `exp`.
    pub expiry_warning: Duration,
    /// `CORS_ORIGINS`: browser origins allowed besides the request's own host.
    pub allowed_origins: Vec<String>,
    /// A connection that has not completed its handshake by then is
    /// dropped (10 s).
    pub handshake_timeout: Duration,
    /// Server ping interval (30 s).
    pub ping_interval: Duration,
    /// Drop a peer silent for this long (60 s).
    pub peer_timeout: Duration,
    /// Largest message after reassembly (64 KiB).
    pub max_message_size: usize,
    /// A connection idle this long (1 s) parks: it drops tungstenite's
    /// buffers and state and waits on the bare socket until something
    /// happens (see `connection`'s parking).
    pub park_after: Duration,
    /// `WS_MAX_CONNECTIONS_PER_USER` (100): one more is refused `429
    /// too_many_connections` before the upgrade.
    pub max_connections_per_user: usize,
    /// `WS_MAX_CONNECTIONS_PER_ADDRESS` (1000): the same per client address,
    /// except loopback and `trusted_proxies` (Nginx bounds its clients).
    pub max_connections_per_address: usize,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<crate::net::IpNet>,
    /// Connection, reauth and close counts go here.
    pub metrics: Metrics,
    /// DPoP proofs of bound tokens; without it, bound tokens are refused.
    pub dpop: Option<std::sync::Arc<application::DpopProofs>>,
    /// `PUBLIC_URL`: the base of the socket URL proofs name (`htu`, with
    /// `ws`/`wss` read as `http`/`https`); unset, the handshake's `Host`.
    pub public_url: Option<String>,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            expiry_warning: Duration::from_secs(60),
            allowed_origins: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            peer_timeout: Duration::from_secs(60),
            max_message_size: 64 * 1024,
            park_after: Duration::from_secs(1),
            max_connections_per_user: domain::sockets::DEFAULT_MAX_SOCKETS_PER_USER,
            max_connections_per_address: domain::sockets::DEFAULT_MAX_SOCKETS_PER_ADDRESS,
            trusted_proxies: Vec::new(),
            metrics: Metrics::disabled(),
            dpop: None,
            public_url: None,
        }
    }
}

/// How often the service looks whether the accepted signing keys changed.
const KEYS_CHECKED_EVERY: Duration = Duration::from_millis(500);

/// Rings every connection when the accepted signing keys change, so that
/// the sockets of tokens signed by a retired key close. Holds the shared
/// state only for a moment at each check (shutdown waits for its last holder).
async fn follow_keys(shared: std::sync::Weak<Shared>) {
    let mut seen = None;
    loop {
        let Some(now) = shared.upgrade() else { return };
        let version = now.auth.key_set_version();
        if seen.is_some_and(|seen| seen != version) {
            tracing::info!("the signing keys changed: every socket checks its key");
            now.registry.ring_all(registry::Rung::Keys);
        }
        seen = Some(version);
        drop(now);
        tokio::time::sleep(KEYS_CHECKED_EVERY).await;
    }
}

/// Serves WebSocket clients on `listener` until `shutdown` completes, then
/// closes every connection with code 1001.
///
/// # Errors
/// The listener failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    auth: Arc<AccessCheck>,
    config: WsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    crate::system::raise_open_file_limit();
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        // Sends flush anyway; the buffer lets an error and its close frame
        // leave in one write (it grows only as needed).
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size));
    let limits = Limits::new(
        config.max_connections_per_user,
        config.max_connections_per_address,
        config.trusted_proxies.clone(),
    );
    let shared = Arc::new(Shared {
        auth,
        config,
        registry: Registry::default(),
        ws_config,
        ping_keys: std::hash::RandomState::new(),
        limits,
        kids: kid_names::KidNames::default(),
    });
    tokio::spawn(follow_keys(Arc::downgrade(&shared)));
    let weak = Arc::downgrade(&shared);
    shared.auth.revocations.on_revocation(Arc::new(move |sid| {
        if let Some(shared) = weak.upgrade() {
            let closed = shared.registry.revoke(sid);
            if closed > 0 {
                tracing::info!(session = %sid, connections = closed, "revoked session: closing its sockets");
            }
        }
    }));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "websocket service listening");
    }

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(handshake::run(stream, shared.clone()));
                }
                Err(e) => {
                    // Out of descriptors or an aborted connection: the listener
                    // itself is fine, so back off briefly instead of failing.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }

    drop(listener);
    let open = shared.registry.len();
    tracing::info!(connections = open, "websocket service shutting down");
    shared.registry.shut_down();
    // Every connection's task (its handshake included) holds the shared
    // state: only ours left means all closed.
    let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while Arc::strong_count(&shared) > 1 {
        if tokio::time::Instant::now() >= grace {
            tracing::warn!(
                left = shared.registry.len(),
                "connections still closing at the end of the grace"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
