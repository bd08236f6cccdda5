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
