//! News of revoked sessions, across processes.

use std::sync::Arc;

use async_trait::async_trait;
use domain::SessionId;

/// Called once per revoked session that the bus hears of, own publishes included.
pub type RevocationListener = Arc<dyn Fn(SessionId) + Send + Sync>;

/// Tells every process (REST and WebSocket) that sessions were revoked, so
/// that their access tokens stop working and their sockets close within 1 s.
#[async_trait]
pub trait RevocationBus: Send + Sync + 'static {
    /// Announces revoked sessions.
    ///
    /// # Errors
    /// The announcement could not be sent.
    async fn publish(&self, sessions: &[SessionId]) -> anyhow::Result<()>;

    /// Registers a listener for every later announcement.
    fn subscribe(&self, listener: RevocationListener);
}
