//! The revocation bus inside one process (SQLite deployments).

use std::sync::{Arc, PoisonError, RwLock};

use application::ports::{RevocationBus, RevocationListener};
use async_trait::async_trait;
use domain::SessionId;

/// [`RevocationBus`] that calls this process's listeners synchronously on
/// publish. Enough when one process serves both REST and WebSocket.
#[derive(Clone, Default)]
pub struct LocalRevocationBus {
    listeners: Arc<RwLock<Vec<RevocationListener>>>,
}

impl std::fmt::Debug for LocalRevocationBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("LocalRevocationBus")
            .field("listeners", &n)
            .finish()
    }
}

impl LocalRevocationBus {
    /// A bus without listeners.
    pub fn new() -> Self {
        Self::default()
    }

    /// The listeners, for buses that deliver through this one.
    pub(super) fn listeners(&self) -> &RwLock<Vec<RevocationListener>> {
        &self.listeners
    }
}

#[async_trait]
impl RevocationBus for LocalRevocationBus {
    async fn publish(&self, sessions: &[SessionId]) -> anyhow::Result<()> {
        dispatch(&self.listeners, sessions.iter().copied());
        Ok(())
    }

    fn subscribe(&self, listener: RevocationListener) {
        self.listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }
}

/// Calls every listener for every id (outside the lock, so a listener may subscribe).
pub(super) fn dispatch(
    listeners: &RwLock<Vec<RevocationListener>>,
    ids: impl Iterator<Item = SessionId> + Clone,
) {
    let listeners = listeners
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for id in ids {
        for listener in &listeners {
            listener(id);
        }
    }
}
