//! Whether the storage answers.

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
