//! WebSocket adapter (in progress; the signature of `serve` is agreed).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use application::AuthService;

/// Settings of the WebSocket service.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// `WS_EXPIRY_WARNING`: when to send `token_expiring` before `exp`.
    pub expiry_warning: Duration,
    /// `CORS_ORIGINS`: browser origins allowed besides the request's own host.
    pub allowed_origins: Vec<String>,
    /// Server ping interval (30 s).
    pub ping_interval: Duration,
    /// Drop a peer silent for this long (60 s).
    pub peer_timeout: Duration,
    /// Largest message after reassembly (64 KiB).
    pub max_message_size: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            expiry_warning: Duration::from_secs(60),
            allowed_origins: Vec::new(),
            ping_interval: Duration::from_secs(30),
            peer_timeout: Duration::from_secs(60),
            max_message_size: 64 * 1024,
        }
    }
}

/// Serves WebSocket clients on `listener` until `shutdown` completes, then
/// closes every connection with code 1001.
///
/// # Errors
/// The listener failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    auth: Arc<AuthService>,
    config: WsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _ = (listener, auth, config);
    shutdown.await;
    Ok(())
}
