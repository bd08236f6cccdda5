//! Readiness: what `GET /api/health` reports.

use std::sync::Arc;

use crate::Revocations;
use crate::ports::HealthCheck;

/// Whether this process can serve, on the ports that tell.
#[derive(Clone)]
pub struct Readiness {
    /// Probes the database.
    pub health: Arc<dyn HealthCheck>,
    /// The revocation feed's state.
    pub revocations: Revocations,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness").finish_non_exhaustive()
    }
}

impl Readiness {
    /// Whether the database answers.
    pub async fn database_ok(&self) -> bool {
        self.health.ping().await.is_ok()
    }

    /// Whether the revocation feed has been down longer than
    /// [`domain::revocation::FEED_DOWN_GRACE`].
    pub fn revocations_degraded(&self) -> bool {
        self.revocations.degraded()
    }
}
