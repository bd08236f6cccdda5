//! The revocation bus across processes: PostgreSQL `LISTEN/NOTIFY`.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context;
use application::ports::{RevocationBus, RevocationListener};
use async_trait::async_trait;
use domain::SessionId;
use sea_orm::sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::local_revocation_bus::dispatch;

/// The notification channel.
pub const REVOCATION_CHANNEL: &str = "authd_session_revoked";
/// Session ids per `NOTIFY` (37 bytes each with the comma: under PostgreSQL's 8000-byte payload limit).
const IDS_PER_NOTIFY: usize = 200;
/// Longest wait between two reconnection attempts of the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// [`RevocationBus`] over PostgreSQL `LISTEN/NOTIFY` on [`REVOCATION_CHANNEL`],
/// payload: comma-separated session UUIDs.
///
/// Every instance (in any process) hears every publish, its own included.
/// When the database goes away the listener reconnects by itself; ids
/// published while it was away are not redelivered (PostgreSQL keeps no
/// backlog), which is why [`application::AuthService::warm_revocations`] exists.
#[derive(Clone)]
pub struct PgRevocationBus {
    inner: Arc<Inner>,
}

struct Inner {
    publisher: PgPool,
    listeners: Arc<RwLock<Vec<RevocationListener>>>,
    task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for PgRevocationBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .inner
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("PgRevocationBus")
            .field("listeners", &n)
            .finish_non_exhaustive()
    }
}

impl PgRevocationBus {
    /// Connects to the PostgreSQL at `url` and starts listening (done when this returns).
    ///
    /// # Errors
    /// The database cannot be reached.
    pub async fn start(url: &str) -> anyhow::Result<Self> {
        let publisher = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .context("connecting the revocation publisher")?;
        let listener = listen(url).await.context("listening for revocations")?;
        let listeners: Arc<RwLock<Vec<RevocationListener>>> = Arc::default();
        let task = tokio::spawn(receive(url.to_owned(), listener, listeners.clone()));
        Ok(Self {
            inner: Arc::new(Inner {
                publisher,
                listeners,
                task,
            }),
        })
    }
}

#[async_trait]
impl RevocationBus for PgRevocationBus {
    #[tracing::instrument(skip_all, fields(sessions = sessions.len()))]
    async fn publish(&self, sessions: &[SessionId]) -> anyhow::Result<()> {
        for chunk in sessions.chunks(IDS_PER_NOTIFY) {
            let payload = chunk
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVOCATION_CHANNEL)
                .bind(payload)
                .execute(&self.inner.publisher)
                .await
                .context("notifying revoked sessions")?;
        }
        Ok(())
    }

    fn subscribe(&self, listener: RevocationListener) {
        self.inner
            .listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }
}

async fn listen(url: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(REVOCATION_CHANNEL).await?;
    Ok(listener)
}

/// Delivers notifications until the bus is dropped, reconnecting after failures.
async fn receive(
    url: String,
    mut listener: PgListener,
    listeners: Arc<RwLock<Vec<RevocationListener>>>,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(note)) => {
                let ids =
                    note.payload()
                        .split(',')
                        .filter_map(|s| match Uuid::parse_str(s.trim()) {
                            Ok(id) => Some(SessionId::from_uuid(id)),
                            Err(_) => {
                                tracing::warn!("ignoring a malformed revocation notification");
                                None
                            }
                        });
                dispatch(&listeners, ids);
            }
            // sqlx noticed the lost connection and reconnected already.
            Ok(None) => tracing::warn!(
                "revocation bus: connection lost and re-established; announcements in between were missed"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "revocation bus: listening failed, reconnecting");
                listener = reconnect(&url).await;
                tracing::info!("revocation bus: listening again");
            }
        }
    }
}

/// A fresh listener, retrying with backoff until the database answers.
async fn reconnect(url: &str) -> PgListener {
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::time::sleep(backoff).await;
        match listen(url).await {
            Ok(listener) => return listener,
            Err(e) => {
                tracing::debug!(error = %e, "revocation bus: database not reachable yet");
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
