//! The [`SecurityEvents`] port: counts every event, writes the audited ones
//! to the `audit` log target and, with a store, to the `audit_events` table.

use application::ports::{SecurityEvent, SecurityEventKind, SecurityEvents};
use async_trait::async_trait;
use domain::Timestamp;

use super::Metrics;
use crate::persistence::SeaAuditLog;

/// Records security events.
#[derive(Debug, Clone)]
pub struct EventRecorder {
    metrics: Metrics,
    store: Option<SeaAuditLog>,
}

impl EventRecorder {
    /// A recorder that counts into `metrics` and logs (no table).
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            store: None,
        }
    }

    /// Also persists audited events to `store` (and prunes it).
    #[must_use]
    pub fn with_store(mut self, store: SeaAuditLog) -> Self {
        self.store = Some(store);
        self
    }
}

#[async_trait]
impl SecurityEvents for EventRecorder {
    async fn record(&self, event: &SecurityEvent) -> anyhow::Result<()> {
        self.metrics.security_event(event);
        if !event.kind.is_audited() {
            return Ok(());
        }
        log(event);
        if let Some(store) = &self.store {
            store.append(event).await?;
        }
        Ok(())
    }

    async fn prune(&self, before: Timestamp, batch: u64) -> anyhow::Result<u64> {
        match &self.store {
            Some(store) => store.prune(before, batch).await,
            None => Ok(0),
        }
    }
}

/// One line on the `audit` target: `warn` for a reuse detection or a
/// throttled login (someone may be attacking), `info` otherwise.
fn log(event: &SecurityEvent) {
    macro_rules! audit {
        ($level:ident) => {
            tracing::$level!(
                target: "audit",
                kind = event.kind.as_str(),
                user = event.user.map(|u| u.to_string()),
                username = event.username.as_deref(),
                session = event.session.map(|s| s.to_string()),
                sessions_revoked = event.sessions_revoked,
                client_ip = event.client.ip.as_deref(),
                user_agent = event.client.user_agent.as_deref(),
                "security event"
            )
        };
    }
    match event.kind {
        SecurityEventKind::ReuseDetected | SecurityEventKind::LoginThrottled => audit!(warn),
        _ => audit!(info),
    }
}
