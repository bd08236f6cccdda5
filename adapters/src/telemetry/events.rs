//! The [`SecurityEvents`] port: counts every event, and writes the audited
//! ones to the `audit` log target.

use application::ports::{SecurityEvent, SecurityEvents};
use async_trait::async_trait;
use domain::Timestamp;

use super::Metrics;

/// Records security events.
#[derive(Debug, Clone)]
pub struct EventRecorder {
    metrics: Metrics,
}

impl EventRecorder {
    /// A recorder that counts into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

#[async_trait]
impl SecurityEvents for EventRecorder {
    async fn record(&self, event: &SecurityEvent) -> anyhow::Result<()> {
        self.metrics.security_event(event);
        if event.kind.is_audited() {
            tracing::info!(
                target: "audit",
                kind = event.kind.as_str(),
                user = event.user.map(|u| u.to_string()),
                username = event.username.as_deref(),
                session = event.session.map(|s| s.to_string()),
                sessions_revoked = event.sessions_revoked,
                client_ip = event.client.ip.as_deref(),
                user_agent = event.client.user_agent.as_deref(),
                "security event"
            );
        }
        Ok(())
    }

    async fn prune(&self, _before: Timestamp, _batch: u64) -> anyhow::Result<u64> {
        Ok(0)
    }
}
