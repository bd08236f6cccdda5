//! The revocation bus across processes: PostgreSQL `LISTEN/NOTIFY`.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context;
use application::ports::Clock;
use application::ports::{RevocationBus, RevocationListener};
use async_trait::async_trait;
use domain::{SessionId, Timestamp};
use sea_orm::sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::local_revocation_bus::dispatch;
use crate::system::SystemClock;

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
/// When the connection goes away the listener reconnects by itself, and since
/// PostgreSQL keeps no backlog of notifications it then reads the sessions
/// revoked while it was away from the `sessions` table and delivers those too.
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
        let task = tokio::spawn(receive(
            url.to_owned(),
            listener,
            publisher.clone(),
            listeners.clone(),
        ));
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

/// How far back a catch-up after a reconnection looks at most: older
/// revocations only matter to access tokens that have expired by now.
const MAX_CATCH_UP: Duration = Duration::from_secs(3600);
/// Overlap of a catch-up with the time the listener was last known to be up.
const CATCH_UP_OVERLAP: Duration = Duration::from_secs(5);

/// Delivers notifications until the bus is dropped, reconnecting after
/// failures and catching up on what was missed meanwhile.
async fn receive(
    url: String,
    mut listener: PgListener,
    publisher: PgPool,
    listeners: Arc<RwLock<Vec<RevocationListener>>>,
) {
    // When the listener was last known to be connected.
    let mut up_at = SystemClock.now();
    loop {
        match listener.try_recv().await {
            Ok(Some(note)) => {
                up_at = SystemClock.now();
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
            Ok(None) => {
                tracing::warn!("revocation bus: connection lost and re-established; catching up");
                up_at = catch_up(&publisher, &listeners, up_at).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "revocation bus: listening failed, reconnecting");
                listener = reconnect(&url).await;
                tracing::info!("revocation bus: listening again; catching up");
                up_at = catch_up(&publisher, &listeners, up_at).await;
            }
        }
    }
}

/// Delivers the sessions revoked since shortly before `up_at` (what the
/// listener may have missed); returns the new "last known up" instant.
async fn catch_up(
    publisher: &PgPool,
    listeners: &Arc<RwLock<Vec<RevocationListener>>>,
    up_at: Timestamp,
) -> Timestamp {
    let now = SystemClock.now();
    let since = up_at.minus(CATCH_UP_OVERLAP).max(now.minus(MAX_CATCH_UP));
    let rows: Result<Vec<(Uuid,)>, _> =
        sea_orm::sqlx::query_as("SELECT id FROM sessions WHERE revoked_at >= $1")
            .bind(since.unix_millis())
            .fetch_all(publisher)
            .await;
    match rows {
        Ok(rows) => {
            tracing::info!(sessions = rows.len(), "revocation bus: caught up");
            dispatch(
                listeners,
                rows.into_iter().map(|(id,)| SessionId::from_uuid(id)),
            );
            now
        }
        Err(e) => {
            // Keep the old instant so that the next catch-up covers this gap too.
            tracing::warn!(error = %e, "revocation bus: catching up failed");
            up_at
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
