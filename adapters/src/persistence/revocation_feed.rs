//! What every revocation bus shares: the periodic read of recently revoked
//! sessions (the safety net under any push, and the catch-up after an
//! outage) and the state the health check and the metrics show.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use application::ports::{Clock, FeedStatus, RevocationListener};
use domain::revocation::read_since;
use domain::{SessionId, Timestamp};

use super::local_revocation_bus::dispatch;

/// How often a process reads the recently revoked sessions: two indexed
/// queries per second per process. It bounds the delay of a revocation whose
/// push was lost (a failed `NOTIFY`, a proxy that drops notifications,
/// separate processes on one SQLite file).
pub const READ_EVERY: Duration = Duration::from_millis(500);
/// How long a read may take before its connection counts as dead.
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// The feed's state: where the next read starts and what the health check sees.
pub(super) struct FeedState {
    access_ttl: Duration,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    status: FeedStatus,
    /// When the last successful read started.
    last_read: Option<Timestamp>,
    /// The next successful read is a catch-up after an outage.
    catching_up: bool,
}

impl std::fmt::Debug for FeedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedState")
            .field("access_ttl", &self.access_ttl)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// A read in progress: deliver its result with [`FeedState::finish_read`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Read {
    started: Timestamp,
    /// The first revocation instant it asks for.
    pub since: Timestamp,
}

impl FeedState {
    /// A feed that is up; reads reach back as far as a token of `access_ttl`
    /// matters, by `clock`.
    pub fn new(access_ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            access_ttl,
            clock,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn status(&self) -> FeedStatus {
        self.lock().status
    }

    /// Starts a read: from the domain's rule, covering every gap since the
    /// last successful read.
    pub fn begin_read(&self) -> Read {
        let started = self.clock.now();
        let since = read_since(self.lock().last_read, started, self.access_ttl);
        Read { started, since }
    }

    /// Delivers what a read found and marks the feed current.
    pub fn finish_read(
        &self,
        read: Read,
        ids: Vec<SessionId>,
        listeners: &RwLock<Vec<RevocationListener>>,
    ) {
        let found = ids.len();
        dispatch(listeners, ids.into_iter());
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.last_read = Some(read.started);
        inner.status.last_current = Some(now);
        if inner.catching_up {
            inner.catching_up = false;
            inner.status.catch_ups += 1;
            let down = inner.status.down_since.map(|at| now.since(at));
            tracing::info!(
                revoked = found,
                down_ms = down.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                "revocation feed: caught up after an outage"
            );
        }
        inner.status.down_since = None;
    }

    /// A notification arrived: the feed is current (unless it still has to catch up).
    pub fn heard(&self) {
        let mut inner = self.lock();
        if !inner.catching_up {
            inner.status.last_current = Some(self.clock.now());
        }
    }

    /// The feed cannot read or listen; the next successful read is a catch-up.
    pub fn down(&self) {
        let mut inner = self.lock();
        inner.catching_up = true;
        inner
            .status
            .down_since
            .get_or_insert_with(|| self.clock.now());
    }

    /// A failed connection was replaced.
    pub fn reconnected(&self) {
        self.lock().status.reconnects += 1;
    }
}
