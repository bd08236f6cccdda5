//! The revocation bus of SQLite deployments: calls inside the process, and a
//! read of recent revocations every second, which is how separate processes
//! on one SQLite file hear each other.

use std::sync::Arc;
use std::time::Duration;

use application::ports::{Clock, FeedStatus, RevocationBus, RevocationListener, SessionStore};
use async_trait::async_trait;
use domain::SessionId;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::LocalRevocationBus;
use super::revocation_feed::{FeedState, READ_EVERY, READ_TIMEOUT};

/// [`RevocationBus`] that delivers this process's publishes at once and
/// everyone's (other processes on the same database included) within
/// [`READ_EVERY`], by reading the recently revoked sessions from `sessions`.
/// Works on any database; on PostgreSQL, `PgRevocationBus` adds `NOTIFY`.
#[derive(Clone)]
pub struct PollingRevocationBus {
    inner: Arc<Inner>,
}

struct Inner {
    local: LocalRevocationBus,
    state: Arc<FeedState>,
    task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for PollingRevocationBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollingRevocationBus")
            .field("local", &self.inner.local)
            .field("status", &self.inner.state.status())
            .finish_non_exhaustive()
    }
}

impl PollingRevocationBus {
    /// Starts reading `store` every [`READ_EVERY`] (the first read at once);
    /// reads reach back as far as an access token of `access_ttl` matters,
    /// by `clock`.
    pub fn start(
        store: Arc<dyn SessionStore>,
        access_ttl: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let local = LocalRevocationBus::new();
        let state = Arc::new(FeedState::new(access_ttl, clock));
        let task = tokio::spawn(read_forever(store, local.clone(), state.clone()));
        Self {
            inner: Arc::new(Inner { local, state, task }),
        }
    }
}

async fn read_forever(
    store: Arc<dyn SessionStore>,
    local: LocalRevocationBus,
    state: Arc<FeedState>,
) {
    let mut every = tokio::time::interval(READ_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let read = state.begin_read();
        match timeout(READ_TIMEOUT, store.revoked_since(read.since)).await {
            Ok(Ok(ids)) => state.finish_read(read, ids, local.listeners()),
            failed => {
                let was_up = state.status().connected();
                state.down();
                if was_up {
                    let reason = match failed {
                        Ok(Err(e)) => format!("{e:#}"),
                        _ => format!("no answer within {} ms", READ_TIMEOUT.as_millis()),
                    };
                    tracing::warn!(
                        reason,
                        "revocation feed: reading recent revocations failed; retrying"
                    );
                }
            }
        }
    }
}

#[async_trait]
impl RevocationBus for PollingRevocationBus {
    async fn publish(&self, sessions: &[SessionId]) -> anyhow::Result<()> {
        self.inner.local.publish(sessions).await
    }

    fn subscribe(&self, listener: RevocationListener) {
        self.inner.local.subscribe(listener);
    }

    fn status(&self) -> FeedStatus {
        self.inner.state.status()
    }
}
