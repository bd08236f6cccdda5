//! The metric instruments of the service.

use std::time::Duration;

use application::ports::SecurityEvent;

/// Every instrument of the service (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Metrics {}

impl Metrics {
    /// Instruments that record nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Counts a security event (login and refresh outcomes, revocations).
    pub fn security_event(&self, _event: &SecurityEvent) {}

    /// Counts one HTTP request and records its latency.
    pub fn http_request(&self, _method: &str, _route: &str, _status: u16, _elapsed: Duration) {}
}
