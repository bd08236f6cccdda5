//! Whether the storage answers, and how busy its connection pool is.

use async_trait::async_trait;

/// A cheap liveness probe of the storage behind the ports.
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// Round-trips to the database.
    ///
    /// # Errors
    /// The database does not answer.
    async fn ping(&self) -> anyhow::Result<()>;
}

/// In the chain of a port's error: the storage could not be reached (no
/// connection within the pool's acquire timeout, or the connection broke),
/// with the storage's own error as its source. The HTTP edge answers `503
/// database_unavailable` for it instead of a `500`: retrying is
/// worthwhile. It is an error of the chain, not a context, so that it is
/// found through any error that wraps it (`error.chain()`).
#[derive(Debug, thiserror::Error)]
#[error("the database cannot be reached")]
pub struct StorageUnavailable(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl StorageUnavailable {
    /// Whether `error`'s chain says the storage could not be reached.
    pub fn in_chain(error: &anyhow::Error) -> bool {
        error.chain().any(|e| e.is::<Self>())
    }
}

/// Connection counts of a database pool (read by the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections (idle and in use).
    pub size: u32,
    /// Open connections nobody holds.
    pub idle: u32,
    /// The pool's maximum.
    pub max: u32,
}

impl PoolStats {
    /// Connections held by someone.
    pub fn in_use(self) -> u32 {
        self.size.saturating_sub(self.idle)
    }
}
