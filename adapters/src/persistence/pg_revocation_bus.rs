//! The revocation bus across processes: PostgreSQL `LISTEN/NOTIFY`, with the
//! periodic read of recent revocations on the listening connection itself.

use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context;
use application::ports::{Clock, FeedStatus, RevocationBus, RevocationListener};
use async_trait::async_trait;
use domain::{SessionId, Timestamp};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use uuid::Uuid;

use super::local_revocation_bus::dispatch;
use super::revocation_feed::{FeedState, READ_EVERY, READ_TIMEOUT};

/// The notification channel.
pub const REVOCATION_CHANNEL: &str = "authd_session_revoked";
/// The `application_name` of the listening connection (`pg_stat_activity`).
pub const FEED_APPLICATION_NAME: &str = "authd-revocation-feed";
/// Session ids per `NOTIFY` (37 bytes each with the comma: under PostgreSQL's 8000-byte payload limit).
const IDS_PER_NOTIFY: usize = 200;
/// Longest wait between two reconnection attempts of the listener.
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// How long connecting the listener may take (a frozen flow never answers).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long one `NOTIFY` may take; past it the periodic reads deliver.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// [`RevocationBus`] over PostgreSQL `LISTEN/NOTIFY` on [`REVOCATION_CHANNEL`],
/// payload: comma-separated session UUIDs.
///
/// Every instance (in any process) hears every publish, its own included.
///
/// Notifications alone can be lost (a `NOTIFY` that failed, a proxy that drops
/// them, a flow that dies without a word), so the listening connection also
/// reads the sessions revoked recently every [`READ_EVERY`]. That read is its
/// liveness check too: when it does not answer within [`READ_TIMEOUT`] the
/// connection is replaced, and the first read on the new one catches up on
/// everything since the last successful read (the domain's `read_since`).
#[derive(Clone)]
pub struct PgRevocationBus {
    inner: Arc<Inner>,
}

struct Inner {
    publisher: PgPool,
    listeners: Arc<RwLock<Vec<RevocationListener>>>,
    state: Arc<FeedState>,
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
    /// Connects to the PostgreSQL at `url` and starts listening (done when
    /// this returns); reads reach back as far as an access token of
    /// `access_ttl` matters by `clock`.
    ///
    /// # Errors
    /// The database cannot be reached.
    pub async fn start(
        url: &str,
        access_ttl: Duration,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let publisher = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .context("connecting the revocation publisher")?;
        let listener = timeout(CONNECT_TIMEOUT, listen(url))
            .await
            .context("listening for revocations: the database did not answer")?
            .context("listening for revocations")?;
        let listeners: Arc<RwLock<Vec<RevocationListener>>> = Arc::default();
        let state = Arc::new(FeedState::new(access_ttl, clock));
        let task = tokio::spawn(receive(
            url.to_owned(),
            listener,
            listeners.clone(),
            state.clone(),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                publisher,
                listeners,
                state,
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
            let notify = sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVOCATION_CHANNEL)
                .bind(payload)
                .execute(&self.inner.publisher);
            timeout(PUBLISH_TIMEOUT, notify)
                .await
                .context("notifying revoked sessions: the database did not answer")?
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

    fn status(&self) -> FeedStatus {
        self.inner.state.status()
    }
}

async fn listen(url: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name(FEED_APPLICATION_NAME);
    // A pool of one, as `PgListener::connect` makes, named for operators.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.ignore_pool_close_event(true);
    // A lost connection is replaced here, with timeouts, not inside sqlx.
    listener.eager_reconnect(false);
    listener.listen(REVOCATION_CHANNEL).await?;
    Ok(listener)
}

/// Delivers notifications and reads until the bus is dropped, replacing the
/// listening connection whenever it fails or stops answering.
async fn receive(
    url: String,
    first: PgListener,
    listeners: Arc<RwLock<Vec<RevocationListener>>>,
    state: Arc<FeedState>,
) {
    let mut listener = Some(first);
    loop {
        let mut conn = match listener.take() {
            Some(conn) => conn,
            None => reconnect(&url, &state).await,
        };
        let why = serve(&mut conn, &listeners, &state).await;
        state.down();
        tracing::warn!(
            reason = %why,
            "revocation feed: the listening connection is dead; replacing it"
        );
        // Dropping it closes it in the background (a frozen flow lets that
        // task wait until the kernel gives up on the flow).
        drop(conn);
    }
}

/// Serves one connection: notifications as they come, a read every
/// [`READ_EVERY`] (the first at once: the catch-up). Returns why it stopped.
async fn serve(
    conn: &mut PgListener,
    listeners: &RwLock<Vec<RevocationListener>>,
    state: &FeedState,
) -> String {
    let mut next_read = Instant::now();
    loop {
        let wait = next_read.saturating_duration_since(Instant::now());
        // `try_recv` is cancel-safe: a timeout loses no notification.
        match timeout(wait, conn.try_recv()).await {
            Ok(Ok(Some(note))) => {
                state.heard();
                dispatch(listeners, parse(note.payload()).into_iter());
            }
            Ok(Ok(None)) => return "the database closed it".to_owned(),
            Ok(Err(e)) => return format!("listening failed: {e}"),
            Err(_) => {
                let read = state.begin_read();
                match timeout(READ_TIMEOUT, revoked_since(conn, read.since)).await {
                    Ok(Ok(ids)) => state.finish_read(read, ids, listeners),
                    Ok(Err(e)) => return format!("reading revocations failed: {e}"),
                    Err(_) => {
                        return format!(
                            "reading revocations took longer than {} ms",
                            READ_TIMEOUT.as_millis()
                        );
                    }
                }
                next_read = Instant::now() + READ_EVERY;
            }
        }
    }
}

fn parse(payload: &str) -> Vec<SessionId> {
    payload
        .split(',')
        .filter_map(|s| match Uuid::parse_str(s.trim()) {
            Ok(id) => Some(SessionId::from_uuid(id)),
            Err(_) => {
                tracing::warn!("ignoring a malformed revocation notification");
                None
            }
        })
        .collect()
}

/// The sessions revoked at or after `since`, read on the listening
/// connection: those with a row, and those of deleted accounts.
async fn revoked_since(
    conn: &mut PgListener,
    since: Timestamp,
) -> Result<Vec<SessionId>, sea_orm::sqlx::Error> {
    let rows: Vec<(Uuid,)> = sea_orm::sqlx::query_as(
        "SELECT id FROM sessions WHERE revoked_at >= $1 \
         UNION ALL SELECT session_id FROM revoked_sessions WHERE revoked_at >= $1",
    )
    .bind(since.unix_millis())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id,)| SessionId::from_uuid(id))
        .collect())
}

/// A fresh listener, retrying with backoff until the database answers.
async fn reconnect(url: &str, state: &FeedState) -> PgListener {
    let mut backoff = Duration::from_millis(100);
    loop {
        match timeout(CONNECT_TIMEOUT, listen(url)).await {
            Ok(Ok(listener)) => {
                state.reconnected();
                tracing::warn!("revocation feed: listening on a new connection; catching up");
                return listener;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "revocation feed: database not reachable yet");
            }
            Err(_) => tracing::debug!("revocation feed: connecting timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
