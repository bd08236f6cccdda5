//! News of revoked sessions, across processes.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{SessionId, Timestamp};

/// Called once per revoked session that the bus hears of, own publishes
/// included. The bus may hear of a session more than once (a push and a read
/// of recent revocations); the service passes on only the first.
pub type RevocationListener = Arc<dyn Fn(SessionId) + Send + Sync>;

/// Tells every process (REST and WebSocket) that sessions were revoked, so
/// that their access tokens stop working and their sockets close within 1 s.
///
/// A bus delivers what is stored, not only what is announced: besides any
/// push it reads the recently revoked sessions periodically
/// ([`domain::revocation::read_since`]), so a lost announcement is still
/// delivered, by every process, on every database.
#[async_trait]
pub trait RevocationBus: Send + Sync + 'static {
    /// Announces revoked sessions (already revoked in storage).
    ///
    /// # Errors
    /// The announcement could not be sent; the periodic read still delivers
    /// the sessions to every process.
    async fn publish(&self, sessions: &[SessionId]) -> anyhow::Result<()>;

    /// Registers a listener for every later announcement.
    fn subscribe(&self, listener: RevocationListener);

    /// Whether the bus currently hears revocations, and since when it does not.
    fn status(&self) -> FeedStatus {
        FeedStatus::default()
    }
}

/// The state of a process's revocation feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedStatus {
    /// Since when the feed has been unable to read or listen (`None`: it is up).
    pub down_since: Option<Timestamp>,
    /// When the feed last delivered or confirmed that it is current (a
    /// notification, or a successful read of recent revocations).
    pub last_current: Option<Timestamp>,
    /// Connections replaced after a failure.
    pub reconnects: u64,
    /// Reads after an outage that delivered what was missed.
    pub catch_ups: u64,
}

impl FeedStatus {
    /// Whether the feed is up.
    pub fn connected(&self) -> bool {
        self.down_since.is_none()
    }
}
