//! Revoked sessions in this process: the cache every token check reads, kept
//! current by the revocation bus, and the listeners it passes news on to.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use domain::SessionId;
use domain::revocation::{feed_degraded, read_since, revocation_horizon};

use crate::RevokedSessions;
use crate::ports::{Clock, FeedStatus, RevocationBus, RevocationListener, SessionStore};

/// The revoked-session cache, the bus that fills it, and its listeners.
///
/// Cheap to clone: every clone shares the cache and the listeners.
#[derive(Clone)]
pub struct Revocations {
    heard: Heard,
    bus: Arc<dyn RevocationBus>,
    sessions: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    access_ttl: Duration,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("revoked", &self.heard.revoked.len())
            .field("listeners", &self.heard.listeners)
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// A cache that remembers revoked sessions for one revocation horizon of
    /// `access_ttl`, subscribed to `bus`. `sessions` is read at
    /// [`Self::warm`] only.
    pub fn new(
        bus: Arc<dyn RevocationBus>,
        sessions: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
        access_ttl: Duration,
    ) -> Self {
        let heard = Heard {
            revoked: RevokedSessions::new(revocation_horizon(access_ttl)),
            listeners: Listeners::default(),
            clock: clock.clone(),
        };
        // The bus holds what it delivers to, not the bus itself (nor the
        // store): a cycle would keep every adapter alive after its process.
        let from_bus = heard.clone();
        bus.subscribe(Arc::new(move |id| from_bus.deliver(id)));
        Self {
            heard,
            bus,
            sessions,
            clock,
            access_ttl,
        }
    }

    /// Loads the sessions revoked within one revocation horizon, so that a
    /// freshly started process refuses their tokens too. A process must not
    /// serve tokens before this succeeded.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn warm(&self) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let since = read_since(None, now, self.access_ttl);
        let ids = self.sessions.revoked_since(since).await?;
        for id in &ids {
            self.heard.revoked.insert(*id, now);
        }
        Ok(ids.len())
    }

    /// Registers a listener for revoked sessions (the WebSocket side closes
    /// sockets with it). It hears each session once, however many ways the
    /// news arrives.
    pub fn on_revocation(&self, listener: RevocationListener) {
        self.heard
            .listeners
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// Whether a session was revoked (as far as this process has heard).
    pub fn is_revoked(&self, id: &SessionId) -> bool {
        self.heard.revoked.contains(id)
    }

    /// The state of the revocation feed.
    pub fn feed(&self) -> FeedStatus {
        self.bus.status()
    }

    /// Whether the revocation feed has been down longer than
    /// [`domain::revocation::FEED_DOWN_GRACE`].
    pub fn degraded(&self) -> bool {
        feed_degraded(self.bus.status().down_since, self.clock.now())
    }

    /// Records revocations locally at once, then tells the other processes.
    pub async fn announce(&self, ids: &[SessionId]) {
        if ids.is_empty() {
            return;
        }
        for id in ids {
            self.heard.deliver(*id);
        }
        if let Err(e) = self.bus.publish(ids).await {
            // The sessions are revoked in storage: every process's periodic
            // read delivers them within its interval instead of at once.
            tracing::error!(error = ?e, sessions = ids.len(), "could not announce revoked sessions; the periodic read delivers them");
        }
    }
}

/// The revoked-session cache and the listeners it passes news on to: what
/// the bus delivers to.
#[derive(Clone)]
struct Heard {
    revoked: RevokedSessions,
    listeners: Listeners,
    clock: Arc<dyn Clock>,
}

impl Heard {
    /// Passes a newly revoked session to the cache and, the first time
    /// only, to the listeners.
    fn deliver(&self, id: SessionId) {
        if !self.revoked.insert(id, self.clock.now()) {
            return;
        }
        // Called outside the lock, so that a listener may subscribe.
        let listeners = self
            .listeners
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for listener in &listeners {
            listener(id);
        }
    }
}

/// The listeners of revoked sessions.
#[derive(Clone, Default)]
struct Listeners(Arc<RwLock<Vec<RevocationListener>>>);

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.read().unwrap_or_else(PoisonError::into_inner).len();
        write!(f, "Listeners({n})")
    }
}
